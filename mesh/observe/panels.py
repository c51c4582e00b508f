"""Dashboard panels (Grafana's dashboard model): each panel's PromQL, and what it shows at a step.

A dashboard file is Grafana's own dashboard model (the JSON a dashboard exports, or the same in
YAML): ``panels``, each with a ``title`` and ``targets`` whose ``expr`` is a PromQL query; a
``row`` panel's own ``panels`` count too. meshplay reads nothing else of it (layout, units,
thresholds are Grafana's business), so a file exported from Grafana loads unchanged, and a
``panel:`` expectation grades what one panel would plot at the end of a step.

Grafana's interval variables are the step's window here: ``$__rate_interval``, ``$__interval``
and ``$__range`` all stand for it (:func:`panel_query`), so a panel means "during this step" on
every runner, as a dashboard set to the step's time range would show it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from mesh.observe.query import RANGE_PLACEHOLDER, QueryResult

__all__ = ["DashboardError", "Panel", "find_panel", "panel_query", "panel_value", "parse_dashboard"]

INTERVAL_VARIABLES = ("$__rate_interval", "$__interval")
"""Grafana's interval variables, which a panel's query may use for its rate windows."""


class DashboardError(ValueError):
    """A dashboard file meshplay cannot read panels from."""


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel's title and the PromQL of its first query (its ``targets[0].expr``)."""

    title: str
    expr: str
    file: str = ""


def _panels_of(items: Any, where: str) -> list[Panel]:
    if not isinstance(items, list):
        raise DashboardError(f"{where}: panels must be a list")
    out: list[Panel] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise DashboardError(f"{at}: a panel is a mapping with a title and targets")
        if item.get("type") == "row":
            out.extend(_panels_of(item.get("panels") or [], f"{at}.panels"))
            continue
        title = str(item.get("title") or "").strip()
        if not title:
            raise DashboardError(f"{at}: the panel has no title")
        targets = item.get("targets") or []
        if not isinstance(targets, list):
            raise DashboardError(f'{at}: panel "{title}": targets must be a list')
        exprs = [str(t.get("expr") or "").strip() for t in targets if isinstance(t, dict)]
        expr = next((e for e in exprs if e), "")
        if not expr:
            raise DashboardError(f'{at}: panel "{title}" has no query (targets[].expr)')
        out.append(Panel(title, expr))
    return out


def parse_dashboard(text: str, file: str = "") -> tuple[Panel, ...]:
    """The panels of a dashboard file (Grafana's JSON model, as JSON or YAML); a dashboard
    exported with its ``dashboard`` envelope (``{"dashboard": {...}}``) loads too."""
    where = file or "dashboard"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        try:  # JSON that YAML rejects (tabs, say)
            data = json.loads(text)
        except json.JSONDecodeError:
            raise DashboardError(f"{where}: not YAML or JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
        data = data["dashboard"]
    if not isinstance(data, dict) or "panels" not in data:
        raise DashboardError(f"{where}: a dashboard is a mapping with a list of panels")
    panels = _panels_of(data["panels"], f"{where}: panels")
    titles = [p.title for p in panels]
    twice = sorted({t for t in titles if titles.count(t) > 1})
    if twice:
        raise DashboardError(f"{where}: two panels are titled {', '.join(twice)}")
    return tuple(Panel(p.title, p.expr, file) for p in panels)


def find_panel(panels: Sequence[Panel], title: str) -> Panel | None:
    """The panel titled ``title`` (case and surrounding spaces ignored)."""
    wanted = title.strip().casefold()
    return next((p for p in panels if p.title.casefold() == wanted), None)


def panel_query(expr: str) -> str:
    """The panel's query with Grafana's interval variables standing for the step's window."""
    for variable in INTERVAL_VARIABLES:
        expr = expr.replace(variable, RANGE_PLACEHOLDER)
    return expr


def panel_value(result: QueryResult, series: Mapping[str, str]) -> float:
    """The value of the one series of ``result`` whose labels include ``series`` (NaN when none
    or several do: a panel "by version" must answer one line per version)."""
    matching = [
        s.value
        for s in result.samples
        if all(s.label(name) == value for name, value in series.items())
    ]
    return matching[0] if len(matching) == 1 else math.nan
