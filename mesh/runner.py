"""The runner seam: what a lesson run produces, and the narrow protocol every runner implements.

There is one definition of what running a lesson means, :func:`mesh.engine.run_lesson`: which
steps run, the accumulated :class:`~mesh.state.MeshState`, breaks and the timed events of a step,
the warm-up cut, grading with :mod:`mesh.checks`, progress, record callbacks and cancellation.
What differs between ``sim``, ``local`` and ``kube`` sits behind :class:`Executor`, in the spirit
of httpx's transports: open the app, push a state, break a workload, drive a step's traffic over
its timeline and hand back the RequestRecords, close. :class:`Runner` is what the CLI and the TUI
hold: ``run(lesson, options) -> LessonRun``; :class:`mesh.engine.LessonRunner` makes one from an
executor factory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mesh.checks import CheckResult, Verdict
from mesh.envoy.translate import ProxyConfig
from mesh.lesson import BreakAction, Lesson, LessonStep, TrafficSpec
from mesh.observe.spans import Span
from mesh.records import RequestRecord
from mesh.state import MeshState

__all__ = [
    "DriveContext",
    "Executor",
    "LessonRun",
    "MeshError",
    "Progress",
    "ProxyMemoryExecutor",
    "RunEvent",
    "RunOptions",
    "Runner",
    "RunnerError",
    "StepPlan",
    "StepResult",
    "StepSelectionError",
    "StepTraffic",
    "TimedChange",
]


class MeshError(Exception):
    """Base of meshplay's runtime errors."""


class RunnerError(MeshError):
    """A runner could not run (missing binary, process died, cluster unreachable...)."""


class StepSelectionError(MeshError):
    """``--step K`` names no step of the lesson (a usage error: exit code 2, one line)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is: step ``step`` of ``steps``, ``fraction`` of its traffic done."""

    step: int
    steps: int
    fraction: float
    requests: int


@dataclass(frozen=True)
class RunOptions:
    """How to run: seed, which steps, and callbacks for live views.

    ``on_records`` receives each step's records in batches as they arrive (all of them, warm-up
    included, in arrival order); ``cancel`` stops the run: the step under way ends early and is
    graded on what it has, and no later step starts.
    """

    seed: int = 1
    until_step: int | None = None
    on_progress: Callable[[Progress], None] | None = None
    on_records: Callable[[int, Sequence[RequestRecord]], None] | None = None
    on_spans: Callable[[int, Sequence[Span]], None] | None = None
    """A step's spans as the proxies' tracer reported them, right after its traffic, when the
    executor collects real spans (:class:`~mesh.observe.spans.SpanExecutor`)."""
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something that happened to the mesh during a step, other than a request: a timed lesson
    event taking effect, a configuration an Envoy rejected, a pod that died or was restarted.
    ``at`` is in the step's records' time base."""

    at: float
    kind: str
    """``event`` (a lesson event fired), ``config-rejected``, ``pod-died``, ``pod-restarted``."""
    subject: str
    """What it happened to: the step for a lesson event, else a pod or proxy name."""
    detail: str

    def describe(self, started_at: float = 0.0) -> str:
        """``+4.00 s  pod-died  product-v1-0: app exited (signal 9)``"""
        return f"+{self.at - started_at:.2f} s  {self.kind}  {self.subject}: {self.detail}"


@dataclass(frozen=True)
class StepResult:
    """One step's outcome.

    ``records`` are the records the step is graded on: every request that started after the
    traffic's warm-up (``traffic.warmup_s``); ``warmup_records`` the ones before it. ``skipped``
    says why a step did not run on this runner (its ``runners`` list names others): its
    configuration changes still applied, it drove no traffic and has no checks.
    """

    index: int
    step: LessonStep
    records: tuple[RequestRecord, ...]
    checks: tuple[CheckResult, ...]
    duration_s: float
    wall_s: float
    warmup_records: tuple[RequestRecord, ...] = ()
    skipped: str = ""
    started_at: float = 0.0
    """When the step's traffic began, in its records' time base (``start_time``)."""
    events: tuple[RunEvent, ...] = ()
    """What happened to the mesh while the step ran, in time order."""

    @property
    def passed(self) -> bool:
        """Every expectation passed."""
        return all(c.verdict is Verdict.PASS for c in self.checks)


@dataclass(frozen=True)
class LessonRun:
    """A whole run of a lesson on one runner (``cancelled``: stopped before its last step)."""

    lesson: Lesson
    runner: str
    seed: int
    steps: tuple[StepResult, ...]
    cancelled: bool = False

    @property
    def passed(self) -> bool:
        """Every expectation of every step passed."""
        return all(s.passed for s in self.steps)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        """The graded records of all steps."""
        return tuple(r for s in self.steps for r in s.records)


@runtime_checkable
class Runner(Protocol):
    """Runs lessons: what the CLI and the TUI hold (``sim.SimRunner``, ``cluster.local.LocalRunner``)."""

    name: str

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run the lesson's steps (up to ``options.until_step``) and evaluate expectations."""
        ...


# -- the executor seam ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimedChange:
    """Something that happens ``at_s`` seconds into a step's traffic (a lesson ``event``):
    the whole configuration to push (None: unchanged), then workloads to break."""

    at_s: float
    state: MeshState | None
    breaks: tuple[BreakAction, ...] = ()
    description: str = ""
    """What the lesson says happens (``apply istio/vs-v2.yaml; break product-v1 restore``)."""


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One selected step, as the engine hands it to an executor."""

    index: int
    step: LessonStep
    traffic: TrafficSpec
    seed: int
    """This step's own random stream (stable when other steps change)."""
    runs: bool
    """False when the step's ``runners`` leave this executor out."""


@dataclass(frozen=True, slots=True)
class StepTraffic:
    """What an executor reports after driving a step's traffic.

    ``records`` are every record of the step in the executor's time base; ``started_at`` is when
    the traffic began in that time base (the warm-up is cut from there); ``duration_s`` is how
    long the traffic lasted (simulated or wall-clock seconds, warm-up included).
    """

    records: tuple[RequestRecord, ...]
    started_at: float
    duration_s: float
    events: tuple[RunEvent, ...] = ()


@dataclass(frozen=True)
class DriveContext:
    """What an executor may call while it drives a step: progress, records as they arrive,
    and the cancel flag to poll."""

    progress: Callable[[float, int], None]
    """(fraction of the traffic done, requests sent so far)."""
    emit: Callable[[Sequence[RequestRecord]], None]
    """A batch of the step's records, for live views. An executor that emits must emit each
    record of the step once; one that never does has its records emitted when it returns."""
    cancel: threading.Event


@runtime_checkable
class Executor(Protocol):
    """What differs per runner, and nothing else. Called by :func:`mesh.engine.run_lesson` in
    this order: ``preflight``, ``open``, then per step ``push``/``break_workload`` and ``drive``,
    and ``close`` whatever happened (also after an error or a cancel)."""

    @property
    def name(self) -> str:
        """``sim``, ``local``, ``kube``: what ``step.runners`` and reports name it."""
        ...

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """Refuse what this runner cannot run (:class:`RunnerError`), before anything starts."""
        ...

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Start the lesson's app with ``state`` (the app's own manifests) applied; ``seed``
        seeds whatever the app itself draws at random."""
        ...

    def push(self, state: MeshState) -> None:
        """Make ``state`` the applied configuration (the whole of it: adds, changes, deletes)."""
        ...

    def break_workload(self, action: BreakAction) -> None:
        """Slow, fail, refuse, kill or restore a workload; it stays so until restored."""
        ...

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Drive the step's traffic, applying ``timeline`` at its times, and return the records."""
        ...

    def close(self) -> None:
        """Stop everything ``open`` started."""
        ...


@runtime_checkable
class ProxyMemoryExecutor(Protocol):
    """An executor that can tell each proxy's memory (the optional capability ``proxy_config``
    ``memory_mb`` expectations ask): the real Envoy's on ``local`` and ``kube``, the model's on
    ``sim``."""

    def proxy_memory_mb(self, pod: str, config: ProxyConfig) -> float | None:
        """Envoy's heap in use (``/memory`` ``allocated``, MiB) of ``pod``'s proxy, which runs
        ``config`` (the step's translation); None when it cannot be read."""
        ...
