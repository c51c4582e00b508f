"""What the screens share: the lessons, the chosen lesson, runner factories, runs and progress.

The TUI never builds runners itself (``tui`` may not import ``sim`` or ``cluster``): the
composition root (``playground``) passes ``runner_factories``, one callable per runner name, and
the run view calls the chosen one in a background thread. The Compare view runs its two sides
through ``pair_runner`` when the composition root gives one (``playground.compare_pair.run_pair``,
the same function as ``meshplay compare``: the local side first, the simulator's connection-pool
race calibrated from it).

Long work (loading the lessons, runs, comparisons) runs in threads the session starts and tracks
(:meth:`Session.start`), each with a cancel flag: quitting cancels them all and leaves at once,
and ``meshplay tui`` waits for them to finish stopping (a local run stops its processes) after
the screen is gone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from mesh.diagnostics import DiagnosticError
from mesh.lesson import Lesson, find_lessons, load_lesson
from mesh.runner import LessonRun, Runner
from mesh.state import MeshState, lesson_states
from tui.interpreter import QuietHeap, UiTurn
from tui.live import LiveRun
from tui.progress import ProgressStore
from tui.proxy import ProxyConfigSource

__all__ = [
    "BackgroundWork",
    "BrokenLesson",
    "ComparedPair",
    "PairRunner",
    "RunnerFactory",
    "Session",
    "SideRun",
    "post",
    "read_lessons",
]

RunnerFactory = Callable[..., Runner]
"""Builds a runner: with no arguments, or with the options a comparison hands it (the local
runner's ``workdir``; the simulator's measured ``pool_timing`` and ``step_timing``)."""

SideRun = Callable[[int, str, Lesson, Mapping[str, object]], LessonRun]
"""Run one side of a comparison: its index (0: A, 1: B), the runner's name, the lesson to run
and the options to build the runner with."""


class ComparedPair(Protocol):
    """Both sides' runs and the pool calibration's line (empty: it does not apply)."""

    @property
    def a(self) -> LessonRun:
        """Runner A's run."""
        ...

    @property
    def b(self) -> LessonRun:
        """Runner B's run."""
        ...

    @property
    def note(self) -> str:
        """What the calibration measured and that the sim used it, or why not."""
        ...


class PairRunner(Protocol):
    """Runs a lesson on two runners through ``run_side``, choosing their order and options
    (``playground.compare_pair.run_pair``)."""

    def __call__(
        self, lesson: Lesson, names: tuple[str, str], run_side: SideRun, *, calibrate: bool
    ) -> ComparedPair:
        """Both runs and the calibration line (``calibrate``: calibrate sim from local)."""
        ...


@dataclass(frozen=True, slots=True)
class BrokenLesson:
    """A lesson folder that does not load, with the first diagnostic to show."""

    id: str
    path: Path
    error: str


def post(target: MessagePump, message: Message) -> None:
    """Post from a background thread; a message for an app that has exited is dropped (the
    thread is only finishing its work, e.g. a cancelled run stopping its processes)."""
    with contextlib.suppress(RuntimeError):  # the app's event loop is closed
        target.post_message(message)


@dataclass(frozen=True, slots=True)
class BackgroundWork:
    """A thread the session started, and the flag that asks it to stop."""

    name: str
    thread: threading.Thread
    cancel: threading.Event


def read_lessons(
    root: Path,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[Lesson], list[BrokenLesson]]:
    """Every lesson under ``root`` in course order (by the lessons' numbers) and the folders that
    do not load, each with its first diagnostic; ``progress(done, total)`` after each folder;
    ``cancel`` stops early (the app is quitting)."""
    lessons: list[Lesson] = []
    broken: list[BrokenLesson] = []
    folders = find_lessons(root)
    for done, folder in enumerate(folders, 1):
        if cancel is not None and cancel.is_set():
            break
        try:
            lessons.append(load_lesson(folder))
        except DiagnosticError as exc:
            first = exc.diagnostics[0].headline() if exc.diagnostics else "does not load"
            broken.append(BrokenLesson(folder.name, folder, first))
        if progress is not None:
            progress(done, len(folders))
    lessons.sort(key=lambda lesson: (lesson.spec.order, lesson.id))
    return lessons, broken


@dataclass
class Session:
    """State shared by the screens of one TUI session."""

    lessons_root: Path
    runner_factories: Mapping[str, RunnerFactory]
    progress: ProgressStore
    proxy_config: ProxyConfigSource | None = None
    pair_runner: PairRunner | None = None
    """How the Compare view runs its two sides (``None``: A then B, no pool calibration)."""
    seed: int = 1
    lessons: list[Lesson] = field(default_factory=list)
    broken: list[BrokenLesson] = field(default_factory=list)
    current: Lesson | None = None
    step: int = 0
    runs: dict[tuple[str, str], LiveRun] = field(default_factory=dict)
    last_runner: str = ""
    turn: UiTurn = field(default_factory=UiTurn)
    """The UI thread's claim on the interpreter while a runner thread runs."""
    heap: QuietHeap = field(default_factory=QuietHeap)
    """Frozen for the garbage collector while a run goes on."""
    loaded: bool = False
    """The lessons have been read (:meth:`load`, or the app's loader thread)."""
    work: list[BackgroundWork] = field(default_factory=list)
    """Threads started by :meth:`start` (finished ones are dropped as new ones start)."""

    def load(self) -> None:
        """Load every lesson under the root (broken ones are listed with their error)."""
        self.lessons, self.broken = read_lessons(self.lessons_root)
        self.loaded = True

    def start(
        self, name: str, target: Callable[[], None], cancel: threading.Event | None = None
    ) -> BackgroundWork:
        """Run ``target`` in a new thread (not a daemon: the process waits for it to stop)."""
        self.work = [w for w in self.work if w.thread.is_alive()]
        thread = threading.Thread(target=target, name=f"meshplay: {name}")
        item = BackgroundWork(name, thread, cancel or threading.Event())
        self.work.append(item)
        thread.start()
        return item

    def cancel_all(self) -> list[BackgroundWork]:
        """Ask every running thread to stop; the ones still running."""
        running = [w for w in self.work if w.thread.is_alive()]
        for item in running:
            item.cancel.set()
        return running

    def lesson(self, lesson_id: str) -> Lesson | None:
        """A loaded lesson by id (folder name)."""
        return next((lesson for lesson in self.lessons if lesson.id == lesson_id), None)

    def latest_run(self, runner: str = "") -> LiveRun | None:
        """The latest run of the current lesson (on ``runner``, or the last runner used)."""
        if self.current is None:
            return None
        return self.runs.get((self.current.id, runner or self.last_runner))

    def state(self, step: int | None = None) -> MeshState:
        """Resources applied after ``step`` of the current lesson (the app before any step)."""
        if self.current is None:
            return MeshState()
        states = lesson_states(self.current)
        index = self.step if step is None else step
        if not states:
            return MeshState(self.current.app.resources)
        return states[max(0, min(index, len(states) - 1))]
