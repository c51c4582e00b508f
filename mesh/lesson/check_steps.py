"""Checks of a lesson's steps: expectations, their selectors and what the steps name.

An expectation needs one metric and a bound (MPY4004); its selector may only select by what the
access log records (MPY4001); the services, clients, workloads, panels and alerting rules a step
names must exist in the app and the lesson's files (MPY4003, MPY4004); breaks name real
Deployments and clusters.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.app import App
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.lesson.model import (
    CONFIG_MEASURES,
    METRICS,
    OUTCOMES,
    PANEL_TRUTHS,
    SPECIAL_SERVICES,
    BreakAction,
    LessonSpec,
    LessonStep,
    Selector,
)
from mesh.lesson.multicluster import check_breaks
from mesh.lesson.positions import lesson_diagnostic as _at
from mesh.model.common import SourceMap
from mesh.model.kubernetes import Deployment, Service
from mesh.observe.panels import Panel, find_panel
from mesh.observe.rules import AlertRule
from mesh.records import LOGGED_REQUEST_HEADERS
from mesh.topology import INGRESS_GATEWAY

__all__ = ["check_alerts", "check_panels", "check_references", "check_step"]


def check_panels(
    spec: LessonSpec,
    panels: tuple[Panel, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """A ``panel:`` expectation names a panel of the lesson's ``dashboards`` and takes its truth
    from a record metric."""
    titles = [p.title for p in panels]
    for i, step in enumerate(spec.steps):
        for j, exp in enumerate(step.expect):
            if exp.panel is None:
                continue
            where = ("steps", i, "expect", j, "panel")
            if find_panel(panels, exp.panel.title) is None:
                hint = did_you_mean(exp.panel.title, titles) or (
                    f"panels: {', '.join(titles)}"
                    if titles
                    else "list dashboard files in dashboards"
                )
                message = f'no dashboard panel titled "{exp.panel.title}"'
                out.append(_at("MPY4004", message, source, (*where, "title"), lesson, hint=hint))
            if exp.panel.truth not in PANEL_TRUTHS:
                message = f'truth "{exp.panel.truth}" is not one of {", ".join(PANEL_TRUTHS)}'
                hint = did_you_mean(exp.panel.truth, PANEL_TRUTHS)
                out.append(_at("MPY4004", message, source, (*where, "truth"), lesson, hint=hint))


def check_alerts(
    spec: LessonSpec,
    rules: tuple[AlertRule, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """An ``alert:`` expectation names a rule of the lesson's ``alert_rules``."""
    names = sorted({r.name for r in rules})
    for i, step in enumerate(spec.steps):
        for j, exp in enumerate(step.expect):
            if exp.alert is not None and exp.alert not in names:
                hint = did_you_mean(exp.alert, names) or (
                    f"alerts: {', '.join(names)}" if names else "list rule files in alert_rules"
                )
                where = ("steps", i, "expect", j, "alert")
                message = f'no alerting rule "{exp.alert}"'
                out.append(_at("MPY4004", message, source, where, lesson, hint=hint))


def check_step(
    step: LessonStep, index: int, source: SourceMap, lesson: str, out: list[Diagnostic]
) -> None:
    if step.compare is not None:
        for key in ("share", "success", "flag"):
            value = getattr(step.compare, key)
            if value is not None and not 0.0 <= value <= 1.0:
                message = f"compare.{key} is a tolerance on a proportion: 0..1, got {value:g}"
                out.append(
                    _at("MPY4001", message, source, ("steps", index, "compare", key), lesson)
                )
    for j, exp in enumerate(step.expect):
        problem = ""
        if not any(getattr(exp, m) is not None for m in METRICS):
            problem = f"no metric: use one of {', '.join(METRICS)}"
        elif exp.between and len(exp.between) != 2:
            problem = "between takes two numbers: [low, high]"
        elif exp.between and exp.between[0] > exp.between[1]:
            problem = f"between [{exp.between[0]:g}, {exp.between[1]:g}] is empty"
        elif exp.panel is not None:  # bounded by the truth from the records
            if exp.between or exp.at_least is not None or exp.at_most is not None:
                problem = "a panel is compared with its truth: use tolerance (and ratio), no bounds"
            elif exp.equals is not None:
                problem = "a panel is compared with its truth: use tolerance (and ratio), no equals"
        elif (
            not exp.between and exp.at_least is None and exp.at_most is None and exp.equals is None
        ):
            problem = "no bound: add between, at_least, at_most or equals (with tolerance)"
        elif exp.promql is not None and not exp.promql.strip():
            problem = "promql is empty: write a PromQL expression"
        elif (
            exp.metric == "rate"
            and exp.selector.status is None
            and not exp.selector.flag
            and not exp.selector.status_class
            and not exp.selector.outcome
        ):
            problem = "rate needs a status, status_class, flag or outcome to count"
        elif exp.metric == "share" and not (
            exp.selector.version or exp.selector.subset or exp.selector.workload
        ):
            problem = "share needs a version, subset or workload"
        if problem:
            out.append(_at("MPY4004", problem, source, ("steps", index, "expect", j), lesson))
        elif not exp.on_metrics:
            _check_selector(
                exp.selector, ("steps", index, "expect", j, exp.metric), source, lesson, out
            )
            if exp.baseline is not None:
                where = ("steps", index, "expect", j, "baseline")
                _check_selector(exp.baseline, where, source, lesson, out)


def _check_selector(
    sel: Selector,
    path: tuple[str | int, ...],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """MPY4001 for a ``header`` the access logs do not record and an unknown ``outcome``."""
    for name in sel.header:
        if name.lower() not in LOGGED_REQUEST_HEADERS:
            message = (
                f'header "{name}" is not in the access log, so no record can be selected by it'
            )
            hint = f"the logged request headers are {', '.join(LOGGED_REQUEST_HEADERS)}"
            out.append(_at("MPY4001", message, source, (*path, "header", name), lesson, hint=hint))
    if sel.outcome and sel.outcome not in OUTCOMES:
        message = f'invalid outcome "{sel.outcome}": expected one of {", ".join(OUTCOMES)}'
        hint = did_you_mean(sel.outcome, list(OUTCOMES))
        out.append(_at("MPY4001", message, source, (*path, "outcome"), lesson, hint=hint))


_CLIENTS = {"outside", "ingress"}


def check_references(
    step: LessonStep,
    index: int,
    source: SourceMap,
    lesson: str,
    *,
    app: App,
    external: set[str],
    out: list[Diagnostic],
    clusters: frozenset[str] = frozenset(),
) -> None:
    """MPY4003: services, clients and workloads a step names must exist in the app (an edge may
    also end at a ServiceEntry host of the lesson's files, by its first label, as Istio's
    ``destination_service_name``, or at ``PassthroughCluster`` / ``BlackHoleCluster``)."""
    services = {r.name for r in app.resources if isinstance(r, Service)}
    workloads = {r.name for r in app.resources if isinstance(r, Deployment)}
    apps = {
        r.spec.template.metadata.labels.get("app", "")
        for r in app.resources
        if isinstance(r, Deployment)
    }

    def report(path: tuple[str | int, ...], message: str, candidates: set[str]) -> None:
        hint = did_you_mean(message.split('"')[1], candidates)
        out.append(_at("MPY4003", message, source, path, lesson, hint=hint))

    for j, exp in enumerate(step.expect):
        config = exp.proxy_config
        if config is not None:
            where: tuple[str | int, ...] = ("steps", index, "expect", j, "proxy_config")
            if config.workload not in workloads | {INGRESS_GATEWAY}:
                report(
                    (*where, "workload"),
                    f'workload "{config.workload}" is not a Deployment of the app',
                    workloads | {INGRESS_GATEWAY},
                )
            if config.measure not in CONFIG_MEASURES:
                message = f'measure "{config.measure}" is not one of {", ".join(CONFIG_MEASURES)}'
                hint = did_you_mean(config.measure, CONFIG_MEASURES)
                out.append(_at("MPY4004", message, source, (*where, "measure"), lesson, hint=hint))
        sel = (
            getattr(exp, exp.metric) if any(getattr(exp, m) is not None for m in METRICS) else None
        )
        if exp.baseline is not None and not isinstance(sel, Selector):
            message = f"baseline subtracts a record metric's value; {exp.metric} is not one"
            where = ("steps", index, "expect", j, "baseline")
            out.append(_at("MPY4001", message, source, where, lesson))
        if not isinstance(sel, Selector):
            continue
        selectors: list[tuple[tuple[str | int, ...], Selector]] = [
            (("steps", index, "expect", j, exp.metric), sel)
        ]
        if exp.baseline is not None:
            selectors.append((("steps", index, "expect", j, "baseline"), exp.baseline))
        for path, sel in selectors:
            _check_selector_names(path, sel, apps, services, external, workloads, report)
    breaks: list[tuple[tuple[str | int, ...], BreakAction]] = [
        (("steps", index, "break", k), b) for k, b in enumerate(step.break_)
    ]
    breaks += [
        (("steps", index, "events", e, "break", k), b)
        for e, event in enumerate(step.events)
        for k, b in enumerate(event.break_)
    ]
    check_breaks(
        breaks,
        clusters=set(clusters),
        deployments=workloads,
        source=source,
        lesson=lesson,
        out=out,
    )


def _check_selector_names(  # noqa: PLR0917
    path: tuple[str | int, ...],
    sel: Selector,
    apps: set[str],
    services: set[str],
    external: set[str],
    workloads: set[str],
    report: Callable[[tuple[str | int, ...], str, set[str]], None],
) -> None:
    """MPY4003 for one expectation selector's edge, service and workload (an edge may also end
    at a ServiceEntry host of the lesson, by its first label: ``external``)."""
    if sel.edge:
        client, _, service = (p.strip() for p in sel.edge.partition("->"))
        if client not in _CLIENTS and client not in apps:
            report(
                (*path, "edge"),
                f'edge client "{client}" is not an app of the lesson',
                apps | _CLIENTS,
            )
        if service not in services | external and service not in SPECIAL_SERVICES:
            report(
                (*path, "edge"),
                f'edge service "{service}" is not a Service of the app',
                services,
            )
    if sel.service and sel.service not in services:
        report((*path, "service"), f'service "{sel.service}" is not a Service of the app', services)
    if sel.workload and sel.workload not in workloads:
        report(
            (*path, "workload"),
            f'workload "{sel.workload}" is not a Deployment of the app',
            workloads,
        )
