"""The Runner protocol: what ``sim``, ``local`` and ``kube`` each implement.

A runner executes a lesson's steps in order (applied resources accumulate as with ``kubectl``),
drives each step's traffic, and returns the RequestRecords of every step with its expectations
evaluated by :mod:`mesh.checks`. Runners report progress and record batches through callbacks so
the CLI can draw a progress bar and the TUI can update live; ``cancel`` stops a run early.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mesh.checks import CheckResult, Verdict
from mesh.lesson import Lesson, LessonStep
from mesh.records import RequestRecord

__all__ = [
    "LessonRun",
    "MeshError",
    "Progress",
    "RunOptions",
    "Runner",
    "RunnerError",
    "StepResult",
]


class MeshError(Exception):
    """Base of meshplay's runtime errors."""


class RunnerError(MeshError):
    """A runner could not run (missing binary, process died, cluster unreachable...)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is: step ``step`` of ``steps``, ``fraction`` of its traffic done."""

    step: int
    steps: int
    fraction: float
    requests: int


@dataclass(frozen=True)
class RunOptions:
    """How to run: seed, which steps, and callbacks for live views."""

    seed: int = 1
    until_step: int | None = None
    on_progress: Callable[[Progress], None] | None = None
    on_records: Callable[[int, Sequence[RequestRecord]], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class StepResult:
    """One step's outcome."""

    index: int
    step: LessonStep
    records: tuple[RequestRecord, ...]
    checks: tuple[CheckResult, ...]
    duration_s: float
    wall_s: float

    @property
    def passed(self) -> bool:
        """Every expectation passed."""
        return all(c.verdict is Verdict.PASS for c in self.checks)


@dataclass(frozen=True)
class LessonRun:
    """A whole run of a lesson on one runner."""

    lesson: Lesson
    runner: str
    seed: int
    steps: tuple[StepResult, ...]

    @property
    def passed(self) -> bool:
        """Every expectation of every step passed."""
        return all(s.passed for s in self.steps)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        """All records of all steps."""
        return tuple(r for s in self.steps for r in s.records)


@runtime_checkable
class Runner(Protocol):
    """Executes lessons. Implementations: ``sim.SimRunner``, ``cluster.local.LocalRunner``, ..."""

    name: str

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run the lesson's steps (up to ``options.until_step``) and evaluate expectations."""
        ...
