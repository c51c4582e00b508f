"""Runners with metrics: what ``meshplay`` runs lessons on, so PromQL works on every runner.

* ``sim``: the simulator, its steps' records served by a real Prometheus from a TSDB built with
  promtool when a step asks a query (:class:`cluster.tsdb.RecordedMetricsExecutor`);
* ``local``: real Envoys, with Prometheus scraping them (and the trace collector) when the
  lesson grades ``promql:``/``alert:`` expectations or traces, or when asked
  (:class:`cluster.local.monitoring.MonitoredLocalExecutor`).

:class:`AskingExecutor` wraps either and asks given PromQL queries at the end of every step
before the run's processes stop (``meshplay query``, ``meshplay compare --promql``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mesh.engine import ExecutorWrapper, LessonRunner
from mesh.observe.query import MetricsExecutor, QueryError, QueryResult, StepMetrics
from mesh.runner import (
    DriveContext,
    Executor,
    RunnerError,
    StepPlan,
    StepTraffic,
    TimedChange,
)

if TYPE_CHECKING:
    from sim.pool_timing import PoolTiming

__all__ = ["AskingExecutor", "ObservedSimRunner", "StepAnswer", "metrics_executor"]


def metrics_executor(
    runner: str,
    *,
    workdir: Path | None = None,
    monitoring: bool | None = True,
    tracing: float | None = None,
    time_scale: float = 1.0,
    pool_timing: PoolTiming | None = None,
    step_timing: Mapping[int, PoolTiming] | None = None,
) -> Executor:
    """A fresh executor of ``runner`` that answers PromQL (``pool_timing``: the simulator's
    connection-pool race, measured by ``playground.pool_calibration``, ``step_timing`` a step's own;
    default: its own)."""
    if runner == "sim":
        from cluster.tsdb import RecordedMetricsExecutor
        from sim.runner import SimExecutor

        if pool_timing is not None:
            return RecordedMetricsExecutor(SimExecutor(pool_timing, step_timing))
        return RecordedMetricsExecutor(SimExecutor())
    if runner == "local":
        from cluster.local.monitored import MonitoredLocalExecutor

        return MonitoredLocalExecutor(
            workdir, time_scale=time_scale, monitoring=monitoring, tracing=tracing
        )
    raise RunnerError(f'runner "{runner}" cannot answer PromQL in this build')


class ObservedSimRunner(LessonRunner):
    """The ``sim`` runner whose steps answer PromQL (a TSDB is built only when asked)."""

    def __init__(
        self,
        pool_timing: PoolTiming | None = None,
        step_timing: Mapping[int, PoolTiming] | None = None,
    ) -> None:
        super().__init__(
            "sim",
            lambda: metrics_executor("sim", pool_timing=pool_timing, step_timing=step_timing),
        )


@dataclass(frozen=True)
class StepAnswer:
    """The answer to one query at the end of one step (``error`` when it had none)."""

    step: int
    expr: str
    range_s: float
    result: QueryResult | None
    error: str = ""


@dataclass
class AskingExecutor(ExecutorWrapper):
    """Any executor that answers PromQL, asking ``queries`` at the end of each step it drives
    (answered before ``close``: a local run's Prometheus stops with it)."""

    inner: Executor
    queries: Sequence[str]
    answers: list[StepAnswer] = field(default_factory=list)
    on_close: Callable[[Executor], None] | None = None
    """Called with the inner executor before it closes (e.g. to read the collector's spans)."""
    _steps: list[tuple[int, float, float, float]] = field(default_factory=list)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """As the inner executor; the step is remembered for the queries."""
        traffic = self.inner.drive(plan, timeline, ctx)
        self._steps.append(
            (plan.index, traffic.started_at, traffic.duration_s, plan.traffic.warmup_s)
        )
        return traffic

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """As the inner executor."""
        if not isinstance(self.inner, MetricsExecutor):
            return None
        return self.inner.step_metrics(index, started_at, duration_s, warmup_s)

    def close(self) -> None:
        """Ask every query at the end of every step driven, then close the inner executor."""
        try:
            if self.on_close is not None:
                self.on_close(self.inner)
            for index, started_at, duration_s, warmup_s in self._steps:
                metrics = self.step_metrics(index, started_at, duration_s, warmup_s)
                for expr in self.queries:
                    self.answers.append(_ask(metrics, index, expr))
        finally:
            self.inner.close()


def _ask(metrics: StepMetrics | None, index: int, expr: str) -> StepAnswer:
    if metrics is None:
        return StepAnswer(index, expr, 0.0, None, "this run has no metrics")
    try:
        return StepAnswer(index, expr, metrics.range_s, metrics.query(expr))
    except QueryError as exc:
        return StepAnswer(index, expr, metrics.range_s, None, str(exc))
