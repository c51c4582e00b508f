"""A run's records as the samples a Prometheus scraping every proxy would have stored.

Prometheus only ever sees counters at the moments it scrapes. To give a simulated run the same
PromQL answers as a real mesh, its records are replayed on a time axis: the steps are laid end
to end from a fixed epoch (:func:`lay_out`), every proxy's Istio metrics are counted as its
requests complete, and the cumulative values are sampled every ``interval_s`` seconds, as a
scrape would read them (:func:`openmetrics_text`). The result is OpenMetrics text with explicit
timestamps, which ``promtool tsdb create-blocks-from openmetrics`` turns into TSDB blocks that a
real Prometheus then serves.

A series is first sampled at 0 one interval before its first request counts, so ``increase()``
and ``rate()`` see its first requests (the ``local`` exporter does the same: see
:mod:`cluster.local.exporter`). Between steps the counters stay flat for ``gap_s`` seconds, as a
real mesh's counters do while the next configuration is pushed.

Target labels: the simulator reports per workload, not per replica, so each series carries
``job``, ``instance`` (the workload), ``namespace`` and ``workload`` of the reporting proxy; on
``local`` ``instance`` is the pod and ``pod`` is added. Queries that aggregate (``sum by``)
read the same on both.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from mesh.observe.istio_metrics import FAMILIES, Family, Labels, ProxyMetrics
from mesh.records import Reporter, RequestRecord

__all__ = [
    "EPOCH",
    "GAP_S",
    "ISTIO_JOB",
    "SCRAPE_INTERVAL_S",
    "StepData",
    "StepWindow",
    "lay_out",
    "openmetrics_text",
    "reporting_proxy",
]

EPOCH = 1_704_067_200.0
"""2024-01-01T00:00:00Z: where a simulated run's time axis starts (fixed, so a run's TSDB and
its answers are the same every time)."""

GAP_S = 5.0
"""Seconds between two simulated steps (flat counters, as while a configuration is pushed)."""

SCRAPE_INTERVAL_S = 1.0
"""How often the Istio metrics are sampled (the ``local`` Prometheus scrapes as often)."""

ISTIO_JOB = "istio-proxy"
"""The Prometheus job of the Istio metrics, on every runner."""


@dataclass(frozen=True, slots=True)
class StepData:
    """One step's records in the step's own time base (seconds from its traffic start)."""

    index: int
    records: tuple[RequestRecord, ...]
    duration_s: float
    warmup_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StepWindow:
    """Where a step sits on the time axis (epoch seconds).

    ``origin`` is the step's t = 0; ``start`` is when its graded traffic began (after the
    warm-up), ``end`` the moment its answers are read (a sample time after its last request
    completed). ``range_s`` is what ``$__range`` stands for.
    """

    index: int
    origin: float
    start: float
    end: float

    @property
    def range_s(self) -> float:
        """The graded window's length in seconds."""
        return self.end - self.start


def _ceil_to(value: float, interval: float) -> float:
    return math.ceil(value / interval - 1e-9) * interval


def _last_end(records: Iterable[RequestRecord]) -> float:
    return max((r.start_time + r.duration_ms / 1000.0 for r in records), default=0.0)


def lay_out(
    steps: Sequence[StepData],
    epoch: float = EPOCH,
    gap_s: float = GAP_S,
    interval_s: float = SCRAPE_INTERVAL_S,
) -> list[StepWindow]:
    """Steps end to end from ``epoch``: each starts ``gap_s`` after the previous one's end, on
    a sample time; its end is the first sample time after its traffic and its last request."""
    windows = []
    origin = epoch + interval_s  # one sample of nothing before anything happens
    for step in steps:
        length = _ceil_to(max(step.duration_s, _last_end(step.records)), interval_s)
        start = origin + min(_ceil_to(step.warmup_s, interval_s), length)
        end = origin + length + interval_s
        windows.append(StepWindow(step.index, origin, start, end))
        origin = _ceil_to(end + gap_s - epoch, interval_s) + epoch
    return windows


def reporting_proxy(record: RequestRecord) -> tuple[str, str]:
    """(workload, namespace) of the proxy that reported ``record``."""
    if record.reporter is Reporter.SOURCE:
        return record.source_workload, record.source_namespace
    return record.destination_workload, record.destination_namespace


def openmetrics_text(
    steps: Sequence[StepData],
    windows: Sequence[StepWindow] | None = None,
    interval_s: float = SCRAPE_INTERVAL_S,
    job: str = ISTIO_JOB,
    only: Collection[str] | None = None,
) -> str:
    """The OpenMetrics text (timestamps in seconds, ``# EOF`` at the end) of every proxy's
    Istio metrics, sampled every ``interval_s`` over the laid-out steps; only the metric
    families named in ``only`` when given (each of them whole: every series, every
    sample), the way a TSDB built for some queries needs only what they read."""
    windows = list(windows) if windows is not None else lay_out(steps, interval_s=interval_s)
    events: list[tuple[float, RequestRecord]] = []
    for step, window in zip(steps, windows, strict=True):
        events += [(window.origin + r.start_time + r.duration_ms / 1000.0, r) for r in step.records]
    events.sort(key=lambda e: e[0])
    if not windows:
        return "# EOF\n"
    first = windows[0].origin - interval_s
    last = windows[-1].end
    count = round((last - first) / interval_s)
    proxies: dict[tuple[str, str], ProxyMetrics] = {}
    targets: dict[tuple[str, str], Labels] = {}
    points: dict[str, list[tuple[float, float]]] = {}
    families: dict[str, Family] = {}
    order: dict[str, list[str]] = {f.name: [] for f in FAMILIES}
    i = 0
    for k in range(count + 1):
        now = first + k * interval_s
        while i < len(events) and events[i][0] <= now + 1e-9:
            record = events[i][1]
            proxy = reporting_proxy(record)
            metrics = proxies.get(proxy)
            if metrics is None:
                metrics = proxies[proxy] = ProxyMetrics()
                workload, namespace = proxy
                targets[proxy] = (
                    ("job", job),
                    ("instance", workload),
                    ("namespace", namespace),
                    ("workload", workload),
                )
            metrics.add(record)
            i += 1
        for proxy, metrics in proxies.items():
            for family, line, value in metrics.samples(targets[proxy], only=only):
                series = points.get(line)
                if series is None:
                    series = points[line] = []
                    families[line] = family
                    order[family.name].append(line)
                    if k > 0:
                        series.append((now - interval_s, 0.0))  # the zero before its first count
                series.append((now, float(value)))
    out: list[str] = []
    for family in FAMILIES:
        lines = order[family.name]
        if not lines:
            continue
        out.append(f"# HELP {family.name} {family.help}")
        out.append(f"# TYPE {family.name} {family.type}")
        for line in lines:
            out.extend(f"{line} {_value(v)} {_stamp(t)}" for t, v in points[line])
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _value(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


def _stamp(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".")
