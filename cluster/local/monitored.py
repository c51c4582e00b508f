"""The local runner with monitoring: Prometheus (and, when tracing, the collector) next to the
mesh, and each step's PromQL answered for the lesson engine.

:class:`MonitoredLocalExecutor` is :class:`~cluster.local.runner.LocalExecutor` plus a
:class:`~cluster.local.monitoring.Monitoring` attached to its mesh (prepared before the mesh
starts, started after), a :class:`~mesh.observe.query.MetricsExecutor`: after each step it waits
until Prometheus holds all of the step's requests and remembers the step's window on the
one-second sample grid. :class:`MonitoredLocalRunner` is what ``meshplay`` runs as ``local``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cluster.local.collector import read_new_spans
from cluster.local.envoy import ConfigRejectedError
from cluster.local.mesh import LocalMesh
from cluster.local.monitoring import Monitoring
from cluster.local.runner import LocalExecutor
from cluster.prometheus import PrometheusStepMetrics
from mesh.engine import LessonRunner
from mesh.lesson import Lesson
from mesh.observe.openmetrics import SCRAPE_INTERVAL_S
from mesh.observe.query import StepMetrics
from mesh.observe.spans import Span
from mesh.runner import DriveContext, StepPlan, StepTraffic, TimedChange

__all__ = ["MonitoredLocalExecutor", "MonitoredLocalRunner", "wants_monitoring"]


def wants_monitoring(lesson: Lesson) -> bool:
    """A lesson needs Prometheus when it grades ``promql``/``alert`` expectations, and the
    collector when it sets ``tracing``."""
    return lesson.spec.tracing is not None or any(
        e.on_metrics for s in lesson.steps for e in s.expect
    )


class MonitoredLocalExecutor(LocalExecutor):
    """The local runner's executor with Prometheus (and, with tracing, the collector) next to
    the mesh; it answers each step's PromQL for the engine (a
    :class:`~mesh.observe.query.MetricsExecutor`).

    ``monitoring``: ``True`` always, ``None`` (default) when the lesson needs it
    (:func:`wants_monitoring`), ``False`` never. ``tracing`` overrides the lesson's sampling.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        time_scale: float = 1.0,
        report: Callable[[str], None] | None = None,
        rejections: list[ConfigRejectedError] | None = None,
        monitoring: bool | None = None,
        tracing: float | None = None,
    ) -> None:
        super().__init__(workdir, time_scale=time_scale, report=report, rejections=rejections)
        self.monitoring_wanted = monitoring
        self.tracing_wanted = tracing
        self.monitoring: Monitoring | None = None
        self.windows: dict[int, tuple[float, float]] = {}
        self._spans_read = 0
        """Bytes of the collector's span file already handed over by :meth:`step_spans`."""

    def _before_start(self, lesson: Lesson, mesh: LocalMesh) -> None:
        """Prepare monitoring when wanted: the proxies' tracer must name the collector."""
        wanted = self.monitoring_wanted
        if wanted is None:
            wanted = wants_monitoring(lesson) or self.tracing_wanted is not None
        if not wanted:
            return
        sampling = self.tracing_wanted
        if sampling is None and lesson.spec.tracing is not None:
            sampling = lesson.spec.tracing.sampling
        rules = list(lesson.rule_files)  # an exercise's: the learner's own file
        provider = lesson.spec.tracing.provider if lesson.spec.tracing else "zipkin"
        self.monitoring = Monitoring(
            mesh, tracing=sampling, provider=provider, rules=rules, report=self.report
        )
        self.monitoring.prepare()

    def _after_start(self, mesh: LocalMesh) -> None:
        """Start Prometheus (and the collector) once the mesh is up."""
        monitoring = self.monitoring
        if monitoring is None:
            return
        monitoring.start()
        if self.monitoring_wanted:
            info = monitoring.info()
            traces = f", traces {info.collector}/api/v2/traces" if info.collector else ""
            self.report(f"monitoring: prometheus {info.prometheus}{traces}")

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Drive the step; then wait until Prometheus has scraped all of it."""
        traffic = super().drive(plan, timeline, ctx)
        if self.monitoring is not None:
            end = self.monitoring.settle(time.time())
            began = self.run_started + traffic.started_at + plan.traffic.warmup_s
            # a sample time whose scrape certainly came before the traffic (flat counters
            # before it change nothing, and a window on sample times needs no extrapolation)
            start = math.floor(began / SCRAPE_INTERVAL_S) * SCRAPE_INTERVAL_S - SCRAPE_INTERVAL_S
            self.windows[plan.index] = (start, end)
        return traffic

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """The step's window in the live Prometheus."""
        window = self.windows.get(index)
        if self.monitoring is None or self.monitoring.prometheus is None or window is None:
            return None
        start, end = window
        return PrometheusStepMetrics(self.monitoring.prometheus, end, end - start)

    def step_spans(self, index: int) -> Sequence[Span]:
        """The spans the collector received since the last step's (a
        :class:`~mesh.observe.spans.SpanExecutor`): waits for the Envoys' last batch (they
        flush every 250 ms here: ``cluster.local.xds.SPAN_FLUSH_MS``), so a step's spans are all in before the next step starts."""
        monitoring = self.monitoring
        if monitoring is None or not monitoring.collector_url:
            return []
        monitoring.flush_spans()
        spans, self._spans_read = read_new_spans(monitoring.spans_file, self._spans_read)
        return spans

    def close(self) -> None:
        """Wait for the last spans when tracing, then stop everything."""
        try:
            if self.monitoring is not None and self.mesh is not None:
                self.monitoring.flush_spans()
        finally:
            super().close()


class MonitoredLocalRunner(LessonRunner):
    """The ``local`` runner with monitoring when a lesson needs it (or always, or never)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        time_scale: float = 1.0,
        report: Callable[[str], None] | None = None,
        monitoring: bool | None = None,
        tracing: float | None = None,
    ) -> None:
        self.rejections: list[ConfigRejectedError] = []
        """Every push an Envoy NACKed in this runner's runs."""
        super().__init__(
            "local",
            lambda: MonitoredLocalExecutor(
                workdir,
                time_scale=time_scale,
                report=report,
                rejections=self.rejections,
                monitoring=monitoring,
                tracing=tracing,
            ),
        )
