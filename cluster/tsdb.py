"""PromQL over a run's records: a real Prometheus serving a TSDB built from them.

The simulator has no Prometheus scraping it. After its steps ran, their records are laid out on
a time axis and written as timestamped OpenMetrics (:mod:`mesh.observe.openmetrics`),
``promtool tsdb create-blocks-from openmetrics`` turns that into TSDB blocks, and a real
Prometheus serves them on an allocated port. So a PromQL query means the same on ``sim`` as on
``local``, where Prometheus scrapes the mesh while it runs.

:class:`RecordsTSDB` builds and serves; :class:`RecordedMetricsExecutor` wraps any executor
(the simulator's) so the lesson engine can grade ``promql:`` and ``alert:`` expectations on its
steps. The TSDB is only built when a step asks a query, with only the metric families the
queries asked so far read (:func:`~mesh.observe.query.families_read`: a query of
``istio_requests_total`` does not wait for the three histograms, nine tenths of the samples),
and rebuilt only when steps were added since or a query reads a family it lacks.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cluster.local.ports import free_ports, start_lock
from cluster.local.procs import Supervisor
from cluster.prometheus import (
    PrometheusClient,
    PrometheusStepMetrics,
    ensure_binaries,
    prometheus_argv,
)
from mesh.engine import ExecutorWrapper
from mesh.observe.istio_metrics import Labels
from mesh.observe.openmetrics import StepData, StepWindow, lay_out, openmetrics_text
from mesh.observe.query import QueryResult, StepMetrics, families_read
from mesh.records import RequestRecord
from mesh.runner import DriveContext, Executor, RunnerError, StepPlan, StepTraffic, TimedChange

__all__ = ["RecordedMetricsExecutor", "RecordsTSDB", "step_data"]

TSDB_CONFIG = "global:\n  evaluation_interval: 1s\n"


def step_data(
    index: int,
    records: Sequence[RequestRecord],
    started_at: float,
    duration_s: float,
    warmup_s: float = 0.0,
) -> StepData:
    """A step's records moved to its own time base (t = 0 when its traffic began)."""
    if not started_at:
        return StepData(index, tuple(records), duration_s, warmup_s)
    moved = tuple(replace(r, start_time=r.start_time - started_at) for r in records)
    return StepData(index, moved, duration_s, warmup_s)


class RecordsTSDB:
    """Records -> OpenMetrics -> promtool -> TSDB blocks -> a Prometheus serving them."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._own = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="meshplay-tsdb-"))
        self.supervisor = Supervisor(self.workdir / "logs")
        self.client: PrometheusClient | None = None
        self.windows: list[StepWindow] = []
        self.built_steps = -1
        self.generation = 0
        self.families: frozenset[str] | None = None
        """The metric families the current TSDB holds (``None``: all of them)."""

    def holds(self, families: frozenset[str] | None) -> bool:
        """The current TSDB has every series of ``families`` (``None``: of all families)."""
        if self.families is None:
            return True
        return families is not None and families <= self.families

    def build(
        self,
        steps: Sequence[StepData],
        families: frozenset[str] | None = None,
        windows: Sequence[StepWindow] | None = None,
    ) -> list[StepWindow]:
        """(Re)build the TSDB of ``steps`` (only the metric ``families`` when given) and
        (re)start Prometheus on it; the steps sit where ``windows`` put them (default: end to
        end from :data:`~mesh.observe.openmetrics.EPOCH`, :func:`lay_out`)."""
        prometheus, promtool = ensure_binaries()
        self.stop()
        self.generation += 1
        folder = self.workdir / f"tsdb-{self.generation}"
        folder.mkdir(parents=True)
        windows = list(windows) if windows is not None else lay_out(steps)
        source = folder / "metrics.om"
        source.write_text(openmetrics_text(steps, windows, only=families), encoding="utf-8")
        data = folder / "data"
        done = subprocess.run(
            [str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RunnerError(f"promtool could not build the TSDB: {done.stderr[-2000:]}")
        source.unlink()
        config = folder / "prometheus.yml"
        config.write_text(TSDB_CONFIG, encoding="utf-8")
        # under the machine-wide start lock, as a local mesh allocates its ports: a port this
        # Prometheus is about to bind is not handed to a mesh starting beside it
        with start_lock():
            (port,) = free_ports(1)
            argv = prometheus_argv(prometheus, config, data, port, retention="100y")
            proc = self.supervisor.start("prometheus-tsdb", argv, env={"PATH": "/usr/bin:/bin"})
            client = PrometheusClient(f"http://127.0.0.1:{port}")
            client.wait_ready(15.0, proc.running)
        self.client = client
        self.windows = windows
        self.built_steps = len(steps)
        self.families = families
        return windows

    def stop(self) -> None:
        """Stop the Prometheus serving the current TSDB."""
        self.supervisor.stop_all()
        self.client = None

    def close(self) -> None:
        """Stop Prometheus; remove the folder when it was a temporary one."""
        self.stop()
        if self._own:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class _LazyStepMetrics:
    """A step's metrics that builds the TSDB on the first question."""

    owner: RecordedMetricsExecutor
    index: int
    range_s: float

    def _target(self, expr: str) -> PrometheusStepMetrics:
        return self.owner.metrics_of(self.index, families_read(expr))

    def query(self, expr: str) -> QueryResult:
        """An instant query at the end of the step."""
        return self._target(expr).query(expr)

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        """Points over the last ``span_s`` seconds of the step."""
        return self._target(expr).query_range(expr, span_s, step_s)


class RecordedMetricsExecutor(ExecutorWrapper):
    """Any executor, plus PromQL over its steps' records (a :class:`MetricsExecutor`).

    Every call is passed on to ``inner``; each driven step's records are kept, and
    :meth:`step_metrics` answers from a TSDB built from all steps so far.
    """

    def __init__(self, inner: Executor, workdir: Path | None = None) -> None:
        self.inner = inner
        self.driven: list[tuple[int, tuple[RequestRecord, ...], float, float, float]] = []
        self.tsdb = RecordsTSDB(workdir)
        self.asked: frozenset[str] | None = frozenset()
        """The metric families the queries so far read (``None``: all)."""

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Drive through the inner executor and keep the step's records."""
        traffic = self.inner.drive(plan, timeline, ctx)
        self.driven.append(
            (
                plan.index,
                traffic.records,
                traffic.started_at,
                traffic.duration_s,
                plan.traffic.warmup_s,
            )
        )
        return traffic

    @property
    def steps(self) -> list[StepData]:
        """Every step driven so far, in its own time base."""
        return [step_data(*driven) for driven in self.driven]

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """The step's metrics, served once asked (the TSDB is built then)."""
        windows = lay_out(self.steps)
        window = next((w for w in windows if w.index == index), None)
        if window is None:
            return None
        return _LazyStepMetrics(self, index, window.range_s)

    def metrics_of(
        self, index: int, families: frozenset[str] | None = None
    ) -> PrometheusStepMetrics:
        """Step ``index`` in a TSDB holding every step driven so far, with (at least) the
        metric ``families`` (``None``: all) and those of earlier queries."""
        asked = self.asked
        self.asked = None if asked is None or families is None else asked | families
        stale = self.tsdb.built_steps != len(self.driven) or self.tsdb.client is None
        if stale or not self.tsdb.holds(families):
            self.tsdb.build(self.steps, self.asked)
        assert self.tsdb.client is not None
        window = next(w for w in self.tsdb.windows if w.index == index)
        return PrometheusStepMetrics(self.tsdb.client, window.end, window.range_s)

    def close(self) -> None:
        """Close the inner executor, stop Prometheus."""
        try:
            self.inner.close()
        finally:
            with contextlib.suppress(OSError):
                self.tsdb.close()
