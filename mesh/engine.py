"""The lesson engine: the one definition of what running a lesson means, on any runner.

:func:`run_lesson` owns every decision that is not about how traffic is carried:

* **which steps run**: steps ``1..K`` with ``until_step=K`` (K outside the lesson is a
  :class:`~mesh.runner.StepSelectionError`); a step whose ``runners`` list leaves this runner out
  is *skipped*: its configuration changes and breaks still apply (later steps build on them, as
  on a cluster), it drives no traffic and grades nothing;
* **the configuration**: steps accumulate like ``kubectl apply`` (:mod:`mesh.state`); the
  executor is pushed the whole state when it changes; an event at ``at_s <= 0`` is part of its
  step's state, later ones become the step's timeline (:class:`~mesh.runner.TimedChange`);
* **breaks** persist until a ``restore``, on every runner;
* **warm-up**: records that started before ``traffic.warmup_s`` are kept apart and not graded;
* **grading** with :func:`mesh.checks.evaluate_all` over the graded records and the traffic's
  duration after warm-up (``promql``/``alert`` expectations over the step's metrics, which an
  executor that can answer PromQL hands over: :class:`~mesh.observe.query.MetricsExecutor`);
* **progress, records and cancellation**: callbacks get the step index and total; a cancel ends
  the current step early (graded on what it has) and starts no other.

The executor is always closed, whatever happens.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mesh.checks import ConfigMeasure, evaluate_all
from mesh.envoy.translate import ProxyConfig, translate_proxy
from mesh.lesson import BreakAction, Event, Lesson, LessonStep
from mesh.observe.panels import Panel
from mesh.observe.query import MetricsExecutor, StepMetrics
from mesh.observe.rules import AlertRule
from mesh.observe.spans import SpanExecutor
from mesh.records import RequestRecord
from mesh.runner import (
    DriveContext,
    Executor,
    LessonRun,
    Progress,
    ProxyMemoryExecutor,
    RunOptions,
    StepPlan,
    StepResult,
    StepSelectionError,
    StepTraffic,
    TimedChange,
)
from mesh.state import MeshState, apply_event, step_state
from mesh.topology import ProxyKind, build_topology

__all__ = [
    "ExecutorWrapper",
    "LessonRunner",
    "plan_steps",
    "run_lesson",
    "step_seed",
    "timeline_of",
]


def step_seed(seed: int, index: int) -> int:
    """Step ``index``'s random seed: its own stream, stable when other steps change."""
    return (seed * 1_000_003 + index * 7919) & 0x7FFFFFFF


def plan_steps(lesson: Lesson, options: RunOptions, runner: str) -> tuple[StepPlan, ...]:
    """The steps a run goes through, in order (``until_step`` checked against the lesson)."""
    count = len(lesson.steps)
    until = options.until_step
    if until is not None and not 1 <= until <= count:
        span = f"1..{count}" if count > 1 else "1"
        raise StepSelectionError(
            f'--step {until}: lesson "{lesson.id}" has {count} step'
            f"{'s' if count != 1 else ''} (choose {span})"
        )
    chosen = lesson.steps if until is None else lesson.steps[:until]
    return tuple(
        StepPlan(
            index=index,
            step=step,
            traffic=lesson.traffic_of(step),
            seed=step_seed(options.seed, index),
            runs=not step.runners or runner in step.runners,
        )
        for index, step in enumerate(chosen)
    )


def timeline_of(
    lesson: Lesson, step: LessonStep, state: MeshState
) -> tuple[tuple[TimedChange, ...], MeshState]:
    """The step's events after t = 0, each with the whole state it leads to (None when it
    changes no resource), and the state at the end of the step."""
    changes = []
    for event in sorted((e for e in step.events if e.at_s > 0), key=lambda e: e.at_s):
        new = apply_event(lesson, state, event.apply, event.delete)
        changed = new.resources != state.resources
        changes.append(
            TimedChange(event.at_s, new if changed else None, event.break_, _describe(event))
        )
        state = new
    return tuple(changes), state


def _describe(event: Event) -> str:
    """A lesson event in words: ``apply istio/vs.yaml; delete VirtualService/x; break product-v1
    latency_ms=2000``."""
    parts = [f"apply {f}" for f in event.apply] + [f"delete {r}" for r in event.delete]
    for action in event.break_:
        knobs = [
            f"{name}={value}"
            for name in ("latency_ms", "error_rate", "refuse", "drop_trace_headers", "kill")
            if (value := getattr(action, name)) is not None
        ]
        if action.restore:
            knobs.append("restore")
        if action.down:
            knobs.append("down")
        target = action.workload or "every workload"
        if action.cluster:
            target += f" in {action.cluster}"
        parts.append(f"break {target} {' '.join(knobs)}".rstrip())
    return "; ".join(parts) or "nothing"


def _initial_breaks(step: LessonStep) -> list[BreakAction]:
    """The step's ``break`` and the breaks of its events at t <= 0, in the lesson's order."""
    out = list(step.break_)
    for event in step.events:
        if event.at_s <= 0:
            out.extend(event.break_)
    return out


@dataclass
class _Emitter:
    """Forwards a step's records to ``on_records`` and counts what went out."""

    index: int
    sink: Callable[[int, Sequence[RequestRecord]], None] | None
    sent: int = 0

    def __call__(self, batch: Sequence[RequestRecord]) -> None:
        self.sent += len(batch)
        if self.sink is not None and batch:
            self.sink(self.index, batch)


def run_lesson(executor: Executor, lesson: Lesson, options: RunOptions) -> LessonRun:
    """Run ``lesson`` on ``executor`` and grade every step that ran."""
    plans = plan_steps(lesson, options, executor.name)
    executor.preflight(lesson, plans)
    state = MeshState(lesson.app.resources)
    results: list[StepResult] = []
    cancelled = False
    try:
        executor.open(lesson, state, options.seed)
        for plan in plans:
            if options.cancel.is_set():
                cancelled = True
                break
            began = time.monotonic()
            new = step_state(lesson, state, plan.step)
            if new.resources != state.resources:
                executor.push(new)
            state = new
            for action in _initial_breaks(plan.step):
                executor.break_workload(action)
            timeline, end_state = timeline_of(lesson, plan.step, state)
            if not plan.runs:
                for change in timeline:
                    if change.state is not None:
                        executor.push(change.state)
                    for action in change.breaks:
                        executor.break_workload(action)
                state = end_state
                results.append(_skipped(plan, executor.name, time.monotonic() - began))
                continue
            traffic = _drive(executor, plan, timeline, len(plans), options)
            state = end_state
            metrics = _step_metrics(executor, plan, traffic)
            if options.on_spans is not None and isinstance(executor, SpanExecutor):
                options.on_spans(plan.index, executor.step_spans(plan.index))
            config = _config_measure(plan, state, executor)
            wall = time.monotonic() - began
            results.append(
                _grade(
                    plan, traffic, wall, metrics, lesson.rules, config=config, panels=lesson.panels
                )
            )
        cancelled = cancelled or options.cancel.is_set()
    finally:
        executor.close()
    if len(results) < len(plans):
        cancelled = True
    return LessonRun(lesson, executor.name, options.seed, tuple(results), cancelled=cancelled)


def _drive(
    executor: Executor,
    plan: StepPlan,
    timeline: Sequence[TimedChange],
    total: int,
    options: RunOptions,
) -> StepTraffic:
    report = options.on_progress

    def progress(fraction: float, sent: int) -> None:
        if report is not None:
            report(Progress(plan.index, total, max(0.0, min(1.0, fraction)), sent))

    emitter = _Emitter(plan.index, options.on_records)
    traffic = executor.drive(plan, timeline, DriveContext(progress, emitter, options.cancel))
    if emitter.sent == 0:
        emitter(traffic.records)
    return traffic


def _step_metrics(executor: Executor, plan: StepPlan, traffic: StepTraffic) -> StepMetrics | None:
    """The step's Prometheus metrics, when it has ``promql``/``alert`` expectations and the
    executor can answer PromQL (:class:`~mesh.observe.query.MetricsExecutor`)."""
    if not any(e.on_metrics for e in plan.step.expect):
        return None
    if not isinstance(executor, MetricsExecutor):
        return None
    return executor.step_metrics(
        plan.index, traffic.started_at, traffic.duration_s, plan.traffic.warmup_s
    )


def _config_measure(
    plan: StepPlan, state: MeshState, executor: Executor | None = None
) -> ConfigMeasure | None:
    """The sizes ``proxy_config`` expectations grade: each named workload's first pod's
    configuration, translated from the step's final mesh state (what istiod would push); and
    ``proxies``, how many of the workload's pods run an Envoy (a sidecar, or the gateway's own);
    ``memory_mb``, that proxy's heap as the executor tells it (no data on a runner that cannot:
    :class:`~mesh.runner.ProxyMemoryExecutor`)."""
    if not any(e.proxy_config is not None for e in plan.step.expect):
        return None
    resources = state.resources
    topology = build_topology(resources)
    source: object = executor
    while isinstance(source, ExecutorWrapper):  # the capability is the innermost executor's
        source = source.inner

    @functools.cache
    def config_of(workload: str) -> ProxyConfig | None:
        pod = next((p for p in topology.pods if p.workload == workload), None)
        if pod is None:
            return None
        try:
            return translate_proxy(resources, topology, pod.name)
        except KeyError:  # a pod without a sidecar has no configuration
            return None

    def measure(workload: str, what: str) -> float:
        if what == "proxies":  # the injection decision: pods that run an Envoy, none is 0
            pods = [p for p in topology.pods if p.workload == workload]
            return float(sum(p.proxy is not ProxyKind.NONE for p in pods)) if pods else math.nan
        config = config_of(workload)  # translated once per workload, whatever is measured
        if config is None:
            return math.nan
        if what == "memory_mb":
            if not isinstance(source, ProxyMemoryExecutor):
                return math.nan
            mb = source.proxy_memory_mb(config.pod.name, config)
            return math.nan if mb is None else mb
        if what == "bytes":
            parts = (config.listeners, config.routes, config.clusters, config.endpoints)
            return float(len(json.dumps(parts, sort_keys=True, separators=(",", ":"))))
        return float(len(getattr(config, what)))

    return measure


def _grade(
    plan: StepPlan,
    traffic: StepTraffic,
    wall_s: float,
    metrics: StepMetrics | None = None,
    rules: Sequence[AlertRule] = (),
    *,
    config: ConfigMeasure | None = None,
    panels: Sequence[Panel] = (),
) -> StepResult:
    warmup = plan.traffic.warmup_s
    cutoff = traffic.started_at + warmup
    records = tuple(sorted(traffic.records, key=lambda r: r.start_time))
    if warmup > 0:
        graded = tuple(r for r in records if r.start_time >= cutoff)
        warm = tuple(r for r in records if r.start_time < cutoff)
    else:
        graded, warm = records, ()
    duration = max(traffic.duration_s - warmup, 1e-9)
    return StepResult(
        index=plan.index,
        step=plan.step,
        records=graded,
        checks=evaluate_all(
            plan.step.expect, graded, duration, metrics, rules, config=config, panels=panels
        ),
        duration_s=duration,
        wall_s=wall_s,
        warmup_records=warm,
        started_at=traffic.started_at,
        events=tuple(sorted(traffic.events, key=lambda e: e.at)),
    )


def _skipped(plan: StepPlan, runner: str, wall_s: float) -> StepResult:
    return StepResult(
        index=plan.index,
        step=plan.step,
        records=(),
        checks=(),
        duration_s=0.0,
        wall_s=wall_s,
        skipped=f"this step runs on {', '.join(plan.step.runners)}, not on {runner}",
    )


class ExecutorWrapper:
    """An executor that passes every call on to ``inner`` (subclasses add to some calls, e.g.
    keep each step's records for PromQL); ``name`` is the inner executor's."""

    inner: Executor

    @property
    def name(self) -> str:
        """The inner executor's name (what ``step.runners`` and reports say)."""
        return self.inner.name

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """As the inner executor."""
        self.inner.preflight(lesson, steps)

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """As the inner executor."""
        self.inner.open(lesson, state, seed)

    def push(self, state: MeshState) -> None:
        """As the inner executor."""
        self.inner.push(state)

    def break_workload(self, action: BreakAction) -> None:
        """As the inner executor."""
        self.inner.break_workload(action)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """As the inner executor."""
        return self.inner.drive(plan, timeline, ctx)

    def close(self) -> None:
        """As the inner executor."""
        self.inner.close()


class LessonRunner:
    """A :class:`~mesh.runner.Runner` that runs each lesson through the engine on a fresh
    executor from ``factory``."""

    def __init__(self, name: str, factory: Callable[[], Executor]) -> None:
        self.name = name
        self.factory = factory

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run ``lesson`` on a new executor."""
        return run_lesson(self.factory(), lesson, options)
