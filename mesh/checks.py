"""Lesson expectations evaluated over RequestRecords: measured value, bounds, verdict.

``promql`` and ``alert`` expectations are measured on the step's Prometheus metrics instead (a
:class:`~mesh.observe.query.StepMetrics` the engine gets from the executor), with the same
bounds and verdicts; without metrics they have no data. A ``panel`` expectation asks a
dashboard panel's query of those metrics and compares the answer with the truth measured from
the records (:func:`_panel_check`).

Selection is the same on every runner: ``edge``/``service`` pick the requests, ``version``,
``subset`` and ``workload`` say where they should land (``share``), ``status``/``flag``/``outcome``
say what ``rate`` counts. Expectations on traffic from ``outside`` the mesh read the server side's
records, since such a client has no proxy to report.

What a user looks at is read from the records too, the same way on every runner:

* ``header``/``user``: the logged request headers of each hop; a user's requests are the hops
  carrying ``end-user: USER`` and every hop sharing their ``x-request-id`` (apps forward it, as
  Istio's samples do for tracing), so the page request that carried only a session cookie is
  one of them.
* ``outcome``: a request's end-to-end outcome at its caller. ``degraded`` is a 2xx/3xx answer
  although a call made for it failed: a client-side record of the same ``x-request-id`` that
  started while it ran (give or take ``%START_TIME%``'s millisecond), made by a downstream app (not by the same caller: its sibling calls are
  not part of it), and was not 2xx/3xx (a 5xx, a local reply, or ``DC`` with no status when the
  app itself gave up on the call). That is what the app's own "section unavailable" counter
  would count. Mirrored copies (``-shadow`` authorities) are never part of it: nobody waits for
  them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from mesh.envoy_api.names import parse_cluster_name
from mesh.lesson import Expectation, PanelSelector, Selector
from mesh.lesson.model import OUTCOMES
from mesh.metrics import OUTSIDE, bucket_quantile, edge_key, percentile
from mesh.observe.panels import Panel, find_panel, panel_query, panel_value
from mesh.observe.query import QueryError, StepMetrics
from mesh.observe.rules import AlertRule, find_rule, firing
from mesh.records import Reporter, RequestRecord

__all__ = [
    "CheckResult",
    "ConfigMeasure",
    "Verdict",
    "evaluate",
    "evaluate_all",
    "outcome",
    "select",
]

USER_HEADER = "end-user"
"""The request header that names the user (Istio's samples: Bookinfo's productpage sets it)."""

_SHADOW = "-shadow"

START_TIME_RESOLUTION_S = 1e-3
"""How coarse a record's start time may be: Envoy's ``%START_TIME%`` has whole milliseconds
(kube's istio-proxy logs), so a parent's end computed from its truncated start can fall up to
1 ms before a call it made."""

_EMPTY = Expectation(count=Selector())
"""An expectation to replace the metric of (a ``panel``'s truth: ``count`` cleared, the truth's
metric set)."""


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
    truth: float | None = None
    """What a ``panel`` expectation compared the panel with (measured from the records), or the
    value of a ``baseline`` that was subtracted."""

    @property
    def passed(self) -> bool:
        """Verdict is PASS."""
        return self.verdict is Verdict.PASS

    def describe(self) -> str:
        """``share(product v2) in [0.07, 0.13]: 0.102 (n=500) pass``"""
        shown = "-" if math.isnan(self.value) else f"{self.value:.4g}"
        if self.truth is not None:
            truth = "-" if math.isnan(self.truth) else f"{self.truth:.4g}"
            label = "baseline" if self.expectation.baseline is not None else "truth"
            shown = f"{shown} ({label} {truth})"
        return f"{self.expectation.describe()}: {shown} (n={self.samples}) {self.verdict.value}"


def _subset(record: RequestRecord) -> str:
    parsed = parse_cluster_name(record.upstream_cluster)  # other clusters have no subset
    return parsed.subset if parsed is not None else ""


def _path_matches(pattern: str, path: str) -> bool:
    path = path.split("?", 1)[0]
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def _by_request(records: Sequence[RequestRecord]) -> dict[str, list[RequestRecord]]:
    groups: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.request_id:
            groups[r.request_id].append(r)
    return groups


def _user_requests(records: Sequence[RequestRecord], user: str) -> set[str]:
    """The ``x-request-id`` of every request some hop of which carried ``end-user: user``."""
    return {r.request_id for r in records if r.request_id and r.header(USER_HEADER) == user}


def _shadow(authority: str) -> bool:
    """A mirrored copy: Envoy adds ``-shadow`` to the host (before the port or after it,
    depending on the version)."""
    return authority.endswith(_SHADOW) or authority.partition(":")[0].endswith(_SHADOW)


def outcome(record: RequestRecord, same_request: Sequence[RequestRecord]) -> str:
    """``ok``, ``degraded`` or ``failed``: what the caller of ``record`` got, given every record
    of the same ``x-request-id`` (see the module docstring)."""
    if not record.ok:
        return "failed"
    caller = edge_key(record)[0]
    end = record.start_time + record.duration_ms / 1000.0 + START_TIME_RESOLUTION_S
    for d in same_request:
        if (
            d.reporter is Reporter.SOURCE
            and not d.ok
            and record.start_time - 1e-6 <= d.start_time <= end
            and edge_key(d)[0] != caller
            and not _shadow(d.authority)
        ):
            return "degraded"
    return "ok"


def select(records: Sequence[RequestRecord], sel: Selector) -> list[RequestRecord]:
    """Records on the selector's edge/service/path/method/header/user, from the right reporter."""
    users = _user_requests(records, sel.user) if sel.user else set()
    headers = {k.lower(): v for k, v in sel.header.items()}
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
        if headers and any(r.header(k) != v for k, v in headers.items()):
            continue
        if sel.user and r.header(USER_HEADER) != sel.user and r.request_id not in users:
            continue
        out.append(r)
    return out


def _status_matches(sel: Selector, r: RequestRecord, outcomes: dict[int, str]) -> bool:
    if sel.status is not None and r.response_code != sel.status:
        return False
    if sel.status_class and str(r.response_code)[:1] != sel.status_class[:1]:
        return False
    if sel.outcome and outcomes.get(id(r)) != sel.outcome:
        return False
    return not (sel.flag and sel.flag not in r.response_flags)


def _outcomes(
    sel: Selector, base: Sequence[RequestRecord], records: Sequence[RequestRecord]
) -> dict[int, str]:
    """The outcome of every selected record (by ``id``), when the selector asks for one."""
    if sel.outcome not in OUTCOMES:
        return {}
    trees = _by_request(records)
    return {id(r): outcome(r, trees.get(r.request_id, ())) for r in base}


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
    panels: Sequence[Panel] = (),
) -> CheckResult:
    """Measure one expectation over a step's records (``promql`` and ``alert`` over the step's
    metrics, ``proxy_config`` over the step's translated configuration; ``no data`` when the run
    has none)."""
    if exp.proxy_config is not None:
        wanted = exp.proxy_config
        value = config(wanted.workload, wanted.measure) if config is not None else math.nan
        return _verdict(exp, value, 0 if math.isnan(value) else 1)
    if exp.panel is not None:
        return _panel_check(exp, exp.panel, records, duration_s, metrics, panels)
    if exp.on_metrics:
        value = _on_metrics(exp, metrics, rules)
        return _verdict(exp, value, len(records))
    if exp.baseline is not None:
        return _minus_baseline(exp, exp.baseline, records, duration_s)
    sel = exp.selector
    base = select(records, sel)
    outcomes = _outcomes(sel, base, records)
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
        matching = sum(1 for r in base if _status_matches(sel, r, outcomes))
        value = matching / samples if samples else math.nan
    else:
        chosen = _chosen(sel, base, records)
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


def _chosen(
    sel: Selector, base: Sequence[RequestRecord], records: Sequence[RequestRecord]
) -> list[RequestRecord]:
    """The selected records (``base``) that also have the selector's outcome and version."""
    outcomes = _outcomes(sel, base, records)
    return [r for r in base if _status_matches(sel, r, outcomes) and _lands(sel, r)]


_BUCKETED = {"latency_p50_ms": 0.5, "latency_p99_ms": 0.99}
"""Latency truths a dashboard can only show from Istio's histogram buckets, and their quantile."""


def _minus_baseline(
    exp: Expectation, baseline: Selector, records: Sequence[RequestRecord], duration_s: float
) -> CheckResult:
    """The metric over the expectation's selector minus the same metric over ``baseline``'s
    records of the same step (no data when either side has none); ``truth`` shows the
    baseline's own value."""
    measured = evaluate(replace(exp, baseline=None), records, duration_s)
    base = evaluate(replace(exp, baseline=None, **{exp.metric: baseline}), records, duration_s)  # type: ignore[arg-type]
    samples = min(measured.samples, base.samples)
    if math.isnan(measured.value) or math.isnan(base.value):
        return CheckResult(exp, math.nan, samples, Verdict.NO_DATA, truth=base.value)
    result = _verdict(exp, measured.value - base.value, samples)
    return replace(result, truth=base.value)


def _panel_check(  # noqa: PLR0917
    exp: Expectation,
    panel: PanelSelector,
    records: Sequence[RequestRecord],
    duration_s: float,
    metrics: StepMetrics | None,
    panels: Sequence[Panel],
) -> CheckResult:
    """What the panel shows at the end of the step against the truth from the records: it
    passes within ``tolerance`` plus ``ratio`` of the truth (a latency quantile's truth is the
    records' quantile as ``histogram_quantile`` estimates it from Istio's buckets, since that is
    all a Prometheus panel can show); no data when either is missing (no
    such panel, a query Prometheus refuses, not exactly one matching series, no records)."""
    measured = replace(_EMPTY, **{"count": None, panel.truth: panel.of})  # type: ignore[arg-type]
    truth = evaluate(measured, records, duration_s)
    if panel.truth in _BUCKETED:  # what histogram_quantile makes of the records' durations
        chosen = _chosen(panel.of, select(records, panel.of), records)
        bucketed = bucket_quantile([r.duration_ms for r in chosen], _BUCKETED[panel.truth])
        truth = CheckResult(exp, bucketed, len(chosen), Verdict.PASS)
    value = math.nan
    found = find_panel(panels, panel.title)
    if metrics is not None and found is not None:
        try:
            value = panel_value(metrics.query(panel_query(found.expr)), panel.series)
        except QueryError:
            value = math.nan
    if math.isnan(value) or math.isnan(truth.value):
        return CheckResult(exp, value, truth.samples, Verdict.NO_DATA, truth=truth.value)
    spread = exp.tolerance + panel.ratio * abs(truth.value)
    ok = abs(value - truth.value) <= spread + 1e-12
    verdict = Verdict.PASS if ok else Verdict.FAIL
    return CheckResult(exp, value, truth.samples, verdict, truth=truth.value)


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
    panels: Sequence[Panel] = (),
) -> tuple[CheckResult, ...]:
    """Evaluate every expectation of a step (``metrics``: the step's Prometheus metrics, for
    ``promql`` and ``alert`` expectations; ``rules``: the lesson's alerting rules; ``config``:
    the step's proxy configuration sizes, for ``proxy_config``; ``panels``: the lesson's
    dashboard panels, for ``panel``)."""
    return tuple(
        evaluate(e, records, duration_s, metrics, rules, config=config, panels=panels)
        for e in expectations
    )
