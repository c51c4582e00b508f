"""What the screens share: the lessons, the chosen lesson, runner factories, runs and progress.

The TUI never builds runners itself (``tui`` may not import ``sim`` or ``cluster``): the
composition root (``playground``) passes ``runner_factories``, one callable per runner name, and
the run view calls the chosen one in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesh.diagnostics import DiagnosticError
from mesh.lesson import Lesson, find_lessons, load_lesson
from mesh.runner import Runner
from mesh.state import MeshState, lesson_states
from tui.interpreter import QuietHeap, UiTurn
from tui.live import LiveRun
from tui.progress import ProgressStore
from tui.proxy import ProxyConfigSource

__all__ = ["BrokenLesson", "RunnerFactory", "Session"]

RunnerFactory = Callable[[], Runner]


@dataclass(frozen=True, slots=True)
class BrokenLesson:
    """A lesson folder that does not load, with the first diagnostic to show."""

    id: str
    path: Path
    error: str


@dataclass
class Session:
    """State shared by the screens of one TUI session."""

    lessons_root: Path
    runner_factories: Mapping[str, RunnerFactory]
    progress: ProgressStore
    proxy_config: ProxyConfigSource | None = None
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

    def load(self) -> None:
        """Load every lesson under the root (broken ones are listed with their error)."""
        self.lessons, self.broken = [], []
        for folder in find_lessons(self.lessons_root):
            try:
                self.lessons.append(load_lesson(folder))
            except DiagnosticError as exc:
                first = exc.diagnostics[0].headline() if exc.diagnostics else "does not load"
                self.broken.append(BrokenLesson(folder.name, folder, first))
        # course order: by the lessons' numbers; tracks appear where their first lesson does
        self.lessons.sort(key=lambda lesson: (lesson.spec.order, lesson.id))

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
