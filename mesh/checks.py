"""Lesson expectations evaluated over RequestRecords: measured value, bounds, verdict.

``promql`` and ``alert`` expectations are measured on the step's Prometheus metrics instead (a
:class:`~mesh.observe.query.StepMetrics` the engine gets from the executor), with the same
bounds and verdicts; without metrics they have no data.

Selection is the same on every runner: ``edge``/``service`` pick the requests, ``version``,
``subset`` and ``workload`` say where they should land (``share``), ``status``/``flag`` say what
``rate`` counts. Expectations on traffic from ``outside`` the mesh read the server side's
records, since such a client has no proxy to report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mesh.envoy_api.names import parse_cluster_name
from mesh.lesson import Expectation, Selector
from mesh.metrics import OUTSIDE, edge_key, percentile
from mesh.observe.query import QueryError, StepMetrics
from mesh.observe.rules import AlertRule, find_rule, firing
from mesh.records import Reporter, RequestRecord

__all__ = ["CheckResult", "ConfigMeasure", "Verdict", "evaluate", "evaluate_all", "select"]


class Verdict(StrEnum):
    """Outcome of one expectation."""

    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """An expectation with its measured value, the sample size and the verdict."""

    expectation: Expectation
    value: float
    samples: int
    verdict: Verdict

    @property
    def passed(self) -> bool:
        """Verdict is PASS."""
        return self.verdict is Verdict.PASS

    def describe(self) -> str:
        """``share(product v2) in [0.07, 0.13]: 0.102 (n=500) pass``"""
        shown = "-" if math.isnan(self.value) else f"{self.value:.4g}"
        return f"{self.expectation.describe()}: {shown} (n={self.samples}) {self.verdict.value}"


def _subset(record: RequestRecord) -> str:
    parsed = parse_cluster_name(record.upstream_cluster)  # other clusters have no subset
    return parsed.subset if parsed is not None else ""


def _path_matches(pattern: str, path: str) -> bool:
    path = path.split("?", 1)[0]
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def select(records: Sequence[RequestRecord], sel: Selector) -> list[RequestRecord]:
    """Records on the selector's edge/service/path/method, from the right reporter."""
    client = service = ""
    if sel.edge:
        client, _, service = (p.strip() for p in sel.edge.partition("->"))
    service = service or sel.service
    want_destination = sel.reporter == "destination" or client == OUTSIDE
    out = []
    for r in records:
        if want_destination:
            if r.reporter is not Reporter.DESTINATION:
                continue
        elif r.reporter is not Reporter.SOURCE:
            continue
        r_client, r_service = edge_key(r)
        if client and r_client != client:
            continue
        if service and r_service != service:
            continue
        if sel.path and not _path_matches(sel.path, r.path):
            continue
        if sel.method and r.method != sel.method.upper():
            continue
        out.append(r)
    return out


def _status_matches(sel: Selector, r: RequestRecord) -> bool:
    if sel.status is not None and r.response_code != sel.status:
        return False
    if sel.status_class and str(r.response_code)[:1] != sel.status_class[:1]:
        return False
    return not (sel.flag and sel.flag not in r.response_flags)


def _lands(sel: Selector, r: RequestRecord) -> bool:
    if sel.version and r.destination_version != sel.version:
        return False
    if sel.subset and _subset(r) != sel.subset:
        return False
    return not (sel.workload and r.destination_workload != sel.workload)


def _on_metrics(
    exp: Expectation,
    metrics: StepMetrics | None,
    rules: Sequence[AlertRule],
) -> float:
    """The value of a ``promql`` or ``alert`` expectation (NaN: no data)."""
    if metrics is None:
        return math.nan
    try:
        if exp.promql is not None:
            return metrics.query(exp.promql).single()
        rule = find_rule(rules, exp.alert or "")
        if rule is None:
            return math.nan
        fires, _ = firing(rule, metrics)
    except QueryError:
        return math.nan
    return 1.0 if fires else 0.0


ConfigMeasure = Callable[[str, str], float]
"""(workload, measure) -> the size of that workload's proxy configuration in the step's state
(see ``proxy_config`` expectations); NaN when the workload has no proxy."""


def evaluate(
    exp: Expectation,
    records: Sequence[RequestRecord],
    duration_s: float,
    metrics: StepMetrics | None = None,
    rules: Sequence[AlertRule] = (),
    *,
    config: ConfigMeasure | None = None,
) -> CheckResult:
    """Measure one expectation over a step's records (``promql`` and ``alert`` over the step's
    metrics, ``proxy_config`` over the step's translated configuration; ``no data`` when the run
    has none)."""
    if exp.proxy_config is not None:
        wanted = exp.proxy_config
        value = config(wanted.workload, wanted.measure) if config is not None else math.nan
        return _verdict(exp, value, 0 if math.isnan(value) else 1)
    if exp.on_metrics:
        value = _on_metrics(exp, metrics, rules)
        return _verdict(exp, value, len(records))
    sel = exp.selector
    base = select(records, sel)
    metric = exp.metric
    value = math.nan
    samples = len(base)
    if metric == "share":
        value = sum(1 for r in base if _lands(sel, r)) / samples if samples else math.nan
    elif metric == "success_rate":
        value = sum(1 for r in base if r.ok) / samples if samples else math.nan
    elif metric == "error_rate":
        value = sum(1 for r in base if not r.ok) / samples if samples else math.nan
    elif metric == "rate":
        value = sum(1 for r in base if _status_matches(sel, r)) / samples if samples else math.nan
    else:
        chosen = [r for r in base if _status_matches(sel, r) and _lands(sel, r)]
        samples = len(chosen)
        if metric == "count":
            value = float(samples)
        elif metric == "rps":
            value = samples / duration_s if duration_s > 0 else math.nan
        elif metric == "attempts_mean":
            value = sum(r.attempts for r in chosen) / samples if samples else math.nan
        else:
            durations = [r.duration_ms for r in chosen]
            if metric == "latency_p50_ms":
                value = percentile(durations, 50)
            elif metric == "latency_p99_ms":
                value = percentile(durations, 99)
            elif durations:
                value = sum(durations) / len(durations)
    return _verdict(exp, value, samples)


def _verdict(exp: Expectation, value: float, samples: int) -> CheckResult:
    if math.isnan(value):
        return CheckResult(exp, value, samples, Verdict.NO_DATA)
    low, high = exp.bounds
    verdict = Verdict.PASS if low - 1e-12 <= value <= high + 1e-12 else Verdict.FAIL
    return CheckResult(exp, value, samples, verdict)


def evaluate_all(
    expectations: Sequence[Expectation],
    records: Sequence[RequestRecord],
    duration_s: float,
    metrics: StepMetrics | None = None,
    rules: Sequence[AlertRule] = (),
    *,
    config: ConfigMeasure | None = None,
) -> tuple[CheckResult, ...]:
    """Evaluate every expectation of a step (``metrics``: the step's Prometheus metrics, for
    ``promql`` and ``alert`` expectations; ``rules``: the lesson's alerting rules; ``config``:
    the step's proxy configuration sizes, for ``proxy_config``)."""
    return tuple(evaluate(e, records, duration_s, metrics, rules, config=config) for e in expectations)
