"""Prometheus alerting rules, and whether an alert fires at the end of a lesson step.

A rule file is Prometheus' own format (``groups: [{name, rules: [{alert, expr, for, labels,
annotations}]}]``), so the same file loads into a real Prometheus, passes ``promtool check
rules`` / ``promtool test rules``, and grades a lesson's ``alert:`` expectation here.

Prometheus evaluates a rule every ``evaluation_interval``: while ``expr`` returns a series the
alert is *pending*, and once it has returned that series at every evaluation for ``for``, the
alert *fires*; when the series disappears the alert *resolves*. :func:`firing` asks the same of
a step's metrics: does some series of ``expr`` exist at every evaluation over the last ``for``
of the step (with ``for: 0``, at the end of the step)? It evaluates the rule over the step's
data rather than relying on a Prometheus having evaluated it live, so it means the same for a
simulated run served from a TSDB built after the fact (where Prometheus evaluates no rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from mesh.observe.query import StepMetrics, parse_duration

__all__ = ["EVALUATION_INTERVAL_S", "AlertRule", "RuleError", "find_rule", "firing", "parse_rules"]

EVALUATION_INTERVAL_S = 1.0
"""How often rules are evaluated (meshplay's Prometheus evaluates every second)."""


class RuleError(ValueError):
    """A rule file that Prometheus would not load."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alerting rule."""

    name: str
    expr: str
    for_s: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    group: str = ""


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuleError(f"{where}: expected a mapping of strings")
    return {str(k): str(v) for k, v in value.items()}


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")


def inline_recorded(expr: str, recorded: Mapping[str, str], where: str) -> str:
    """``expr`` with each bare use of a recorded series replaced by its rule's expression in
    parentheses: the value Prometheus would have recorded at that evaluation, computed in place
    (a step's metrics come from a TSDB in which no rule was ever evaluated). A recorded series
    used with a label selector or a range (``name{...}``, ``name[5m]``) is refused: its history
    would need the rule evaluated over time."""
    for name, body in recorded.items():
        out: list[str] = []
        i = 0
        while (j := expr.find(name, i)) >= 0:
            end = j + len(name)
            before = expr[j - 1] if j > 0 else ""
            after = expr[end:].lstrip()[:1]
            if before in _NAME_CHARS or (end < len(expr) and expr[end] in _NAME_CHARS):
                out.append(expr[i:end])
                i = end
                continue
            if after in ("{", "["):
                raise RuleError(
                    f"{where}: the recorded series {name} is used with a selector or range; "
                    "meshplay evaluates recording rules in place and models only their bare use"
                )
            out.append(expr[i:j] + f"({body})")
            i = end
        expr = "".join(out) + expr[i:]
    return expr


def parse_rules(text: str, source: str = "rules") -> tuple[AlertRule, ...]:
    """The alerting rules of a Prometheus rule file. Recording rules are not rules of their own
    here: an alert (or a later recording rule) that uses a recorded series gets the recording
    rule's expression in its place (:func:`inline_recorded`)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise RuleError(f"{source}: a rule file is a mapping with a list of groups")
    out: list[AlertRule] = []
    recorded: dict[str, str] = {}
    for i, group in enumerate(doc["groups"]):
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise RuleError(f"{source}: groups[{i}] needs a name and a list of rules")
        name = str(group.get("name", ""))
        for j, rule in enumerate(group["rules"]):
            where = f"{source}: groups[{i}].rules[{j}]"
            if not isinstance(rule, dict):
                raise RuleError(f"{where}: a rule is a mapping")
            if "alert" not in rule:
                if "record" in rule and isinstance(rule.get("expr"), str | int | float):
                    body = inline_recorded(str(rule["expr"]), recorded, where)
                    recorded[str(rule["record"])] = " ".join(body.split())
                continue
            if not isinstance(rule.get("expr"), str | int | float):
                raise RuleError(f"{where}: alert {rule['alert']} has no expr")
            try:
                for_s = parse_duration(str(rule.get("for", "0s")))
            except ValueError as exc:
                raise RuleError(f"{where}: for: {exc}") from exc
            out.append(
                AlertRule(
                    name=str(rule["alert"]),
                    expr=inline_recorded(str(rule["expr"]), recorded, where),
                    for_s=for_s,
                    labels=_strings(rule.get("labels"), f"{where}.labels"),
                    annotations=_strings(rule.get("annotations"), f"{where}.annotations"),
                    group=name,
                )
            )
    return tuple(out)


def firing(
    rule: AlertRule, metrics: StepMetrics, interval_s: float = EVALUATION_INTERVAL_S
) -> tuple[bool, int]:
    """(whether ``rule`` fires at the end of the step, how many series of its expression
    exist there)."""
    now = metrics.query(rule.expr)
    if not now.samples:
        return False, 0
    if rule.for_s <= 0:
        return True, len(now.samples)
    series = metrics.query_range(rule.expr, rule.for_s, interval_s)
    needed = round(rule.for_s / interval_s) + 1
    held = any(len(points) >= needed for points in series.values())
    return held, len(now.samples)


def find_rule(rules: Sequence[AlertRule], name: str) -> AlertRule | None:
    """The rule called ``name`` (the first one: Prometheus keeps both, they fire together)."""
    return next((r for r in rules if r.name == name), None)
