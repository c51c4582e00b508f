"""``meshplay tui``: the Textual app where a learner lives.

Six views, one key each: 1 lessons, 2 run, 3 topology, 4 compare, 5 traces, 6 dashboard. The
screen is painted at once and the lessons are read in a background thread; runs happen in background
threads and reach the screen as throttled, precomputed views, so the interface stays responsive
during long runs. ``q`` cancels whatever runs and leaves at once (``meshplay tui`` then waits for
the runners to stop their processes). The app receives its runners from the composition root as
factories (``tui`` never imports ``sim`` or ``cluster``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Select, TabbedContent, TabPane

from mesh.exercise import Exercise, read_progress, start_workspace
from mesh.lesson import Lesson
from tui.compare_view import ComparePane
from tui.dashboard_view import DashboardPane
from tui.exercise_view import ExerciseScreen
from tui.footer import KeyFooter
from tui.lessons_view import LessonsPane
from tui.progress import ProgressStore, default_data_dir
from tui.proxy import ProxyConfigSource, translator_config
from tui.run_view import RunPane
from tui.session import BrokenLesson, PairRunner, RunnerFactory, Session, post, read_lessons
from tui.topology_view import TopologyPane
from tui.traces_view import TracesPane

__all__ = ["MeshplayApp"]

SWITCH_INTERVAL_S = 0.0002
"""GIL switch interval while the app runs. A runner thread (the simulator is pure Python) holds
the GIL for the whole default 5 ms slice each time the UI thread waits for input, so every step of
handling a key would wait 5 ms; 1 ms keeps key handling well under 100 ms during long runs."""

FOCUS = {
    "lessons": "#lesson-tree",
    "run": "#edges",
    "topology": "#graph",
    "compare": "#cmp-table",
    "traces": "#trace-table",
    "dashboard": "#dashboard-box",
}
"""The widget that takes the keyboard when a view is shown."""


class MeshplayApp(App[None]):
    """The meshplay TUI."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "meshplay"
    SUB_TITLE = "the Cloud Networking Playground"
    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        # the tab bar shows the view keys: the footer keeps its room for the rest (80 columns)
        Binding("1", "tab('lessons')", "Lessons", show=False),
        Binding("2", "tab('run')", "Run", show=False),
        Binding("3", "tab('topology')", "Topology", show=False),
        Binding("4", "tab('compare')", "Compare", show=False),
        Binding("5", "tab('traces')", "Traces", show=False),
        Binding("6", "tab('dashboard')", "Dashboard", show=False),
        Binding("r", "run", "Run all"),
        Binding("s", "run_to_step", "Run to step", show=False),
        Binding("c", "cancel", "Cancel", show=False),
        Binding("left_square_bracket", "step(-1)", "Step ←", show=False),
        Binding("right_square_bracket", "step(1)", "Step →", show=False),
        Binding("m", "compare", "Compare", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        lessons_root: Path,
        runner_factories: Mapping[str, RunnerFactory],
        data_dir: Path | None = None,
        *,
        proxy_config: ProxyConfigSource | None = None,
        pair_runner: PairRunner | None = None,
        seed: int = 1,
        lesson: str = "",
        exercise: tuple[Exercise, Path] | None = None,
    ) -> None:
        super().__init__()
        self._switch_interval = sys.getswitchinterval()
        self.handled = 0
        """View switches and step moves completed so far (the benchmark waits on it)."""
        self._view_claims = 0
        """View switches and step moves begun and not yet handled."""
        self.session = Session(
            lessons_root=Path(lessons_root),
            runner_factories=dict(runner_factories),
            progress=ProgressStore(data_dir or default_data_dir()),
            proxy_config=proxy_config or translator_config,
            pair_runner=pair_runner,
            seed=seed,
        )
        self.wanted_lesson = lesson
        """``--lesson``: made the current lesson once the lessons are read."""
        self.exercise = exercise
        """``--exercise``: an exercise and its workspace, shown over the lessons at start."""

    @dataclass
    class Loading(Message):
        """The loader thread read ``done`` of ``total`` lesson folders."""

        done: int
        total: int

    @dataclass
    class Loaded(Message):
        """The loader thread read every lesson."""

        lessons: list[Lesson]
        broken: list[BrokenLesson]

    def on_mount(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self.query_one("#lesson-tree").focus()
        root = self.session.lessons_root
        cancel = threading.Event()

        def load() -> None:  # the screen is painted meanwhile
            def progress(done: int, total: int) -> None:
                post(self, self.Loading(done, total))

            lessons, broken = read_lessons(root, progress, cancel)
            if not cancel.is_set():
                post(self, self.Loaded(lessons, broken))

        # after the first paint: the screen is drawn before the loader competes for the GIL
        self.call_after_refresh(self.session.start, "the loading of the lessons", load, cancel)
        if self.exercise is not None:
            self.push_screen(ExerciseScreen(self.session, *self.exercise), self._exercise_left)

    def on_meshplay_app_loading(self, message: Loading) -> None:
        self.query_one("#lessons", LessonsPane).show_loading(message.done, message.total)

    def on_meshplay_app_loaded(self, message: Loaded) -> None:
        session = self.session
        session.lessons, session.broken, session.loaded = message.lessons, message.broken, True
        chosen = session.lesson(self.wanted_lesson) if self.wanted_lesson else None
        if self.wanted_lesson and chosen is None:
            self.notify(f"no lesson {self.wanted_lesson!r} here", severity="warning")
        session.current = chosen or (session.lessons[0] if session.lessons else None)
        self.query_one("#lessons", LessonsPane).rebuild()
        self.run_pane.set_lesson(session.current)
        self._refresh(self.active_tab)

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        self.session.heap.reset()
        self.session.turn.reset()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)) and not event.is_forwarded:
            # a person waits: the runner thread pauses until the answer is drawn (or 300 ms)
            self.session.turn.claim()
            try:
                await super().on_event(event)
            finally:
                # the key's own claim ends after the next refreshes; a view switch or step
                # move holds one more claim until its result is drawn (see _handled)
                self.call_after_refresh(self.call_after_refresh, self.session.turn.release)
            return
        await super().on_event(event)

    def _claim_view(self) -> None:
        """A view switch or step move begins: the runner waits until its result is drawn."""
        self.session.turn.claim()
        self._view_claims += 1

    def _handled(self) -> None:
        """A view switch or step move is done (the benchmark counts them); the next refresh
        draws it, and then the runner may go on."""
        self.handled += 1
        if self._view_claims:
            self._view_claims -= 1
            self.call_after_refresh(self.session.turn.release)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="tab-lessons", id="tabs"):
            with TabPane("1 Lessons", id="tab-lessons"):
                yield LessonsPane(self.session, id="lessons")
            with TabPane("2 Run", id="tab-run"):
                yield RunPane(self.session, id="run")
            with TabPane("3 Topology", id="tab-topology"):
                yield TopologyPane(self.session, id="topology")
            with TabPane("4 Compare", id="tab-compare"):
                yield ComparePane(self.session, id="compare")
            with TabPane("5 Traces", id="tab-traces"):
                yield TracesPane(self.session, id="traces")
            with TabPane("6 Dashboard", id="tab-dashboard"):
                yield DashboardPane(self.session, id="dashboard")
        yield KeyFooter(self.session.turn)

    @property
    def run_pane(self) -> RunPane:
        """The run view."""
        return self.query_one("#run", RunPane)

    @property
    def active_tab(self) -> str:
        """Name of the view on screen."""
        return self.query_one("#tabs", TabbedContent).active.removeprefix("tab-")

    def action_tab(self, name: str) -> None:
        """Show a view and give the keyboard to its main widget."""
        if self.active_tab != name:
            self._claim_view()  # released once TabActivated's refresh is drawn
        self.query_one("#tabs", TabbedContent).active = f"tab-{name}"
        self.query_one(FOCUS[name]).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        name = event.pane.id.removeprefix("tab-") if event.pane.id else ""
        if name in FOCUS:
            self.query_one(FOCUS[name]).focus()
        self._refresh(name)
        self._handled()

    def _refresh(self, name: str) -> None:
        if name == "topology":
            self.query_one("#topology", TopologyPane).refresh_graph()
        elif name == "traces":
            self.query_one("#traces", TracesPane).refresh_traces()
        elif name == "run":
            self.run_pane.show_step(self.session.step)
        elif name == "dashboard":
            self.query_one("#dashboard", DashboardPane).refresh_dashboard()

    def on_lessons_pane_chosen(self, message: LessonsPane.Chosen) -> None:
        self.session.current = message.lesson
        self.run_pane.set_lesson(message.lesson)
        self.action_tab("run")

    def on_lessons_pane_exercise_chosen(self, message: LessonsPane.ExerciseChosen) -> None:
        """Open an exercise on its workspace in the data folder (started the first time)."""
        exercise = message.exercise
        folder = self.session.progress.path.parent / "exercises" / exercise.id
        if read_progress(folder) is None:
            try:
                start_workspace(exercise, folder)
            except (FileExistsError, OSError) as exc:
                self.notify(f"cannot start {exercise.id}: {exc}", severity="error")
                return
        self.push_screen(ExerciseScreen(self.session, exercise, folder), self._exercise_left)

    def _exercise_left(self, _: None) -> None:
        """Back from an exercise: its progress marks in the tree may have changed."""
        if self.session.loaded:
            self.query_one("#lessons", LessonsPane).rebuild()

    def on_run_pane_done(self, message: RunPane.Done) -> None:
        self.query_one("#lessons", LessonsPane).rebuild()
        if self.active_tab in ("topology", "traces"):
            self._refresh(self.active_tab)

    def action_run(self) -> None:
        """Run every step of the current lesson on the chosen runner."""
        if self.active_tab not in ("run", "topology", "traces"):
            self.action_tab("run")
        self.run_pane.start()

    def action_run_to_step(self) -> None:
        """Run the lesson up to the step on screen."""
        self.run_pane.start(until_step=self.session.step + 1)

    def action_cancel(self) -> None:
        """Cancel the running lesson."""
        self.run_pane.cancel()

    def action_step(self, delta: int) -> None:
        """Show the previous/next step in every view."""
        self._claim_view()
        self.run_pane.move_step(delta)
        if self.active_tab in ("topology", "traces"):
            self._refresh(self.active_tab)
        self._handled()

    def action_compare(self) -> None:
        """Compare the current lesson on the two chosen runners."""
        self.action_tab("compare")
        self.query_one("#compare", ComparePane).start()

    async def action_quit(self) -> None:
        """Leave at once: every run and comparison is asked to stop, and stops in the
        background (``meshplay tui`` waits for the runners' processes to be stopped)."""
        self.session.cancel_all()
        self.exit()

    def action_use_runner(self, name: str) -> None:
        """Make ``name`` the runner of the run view."""
        select = self.query_one("#runner", Select)
        if name in self.session.runner_factories:
            select.value = name

    def action_open_lesson(self, lesson_id: str) -> None:
        """Make a lesson the current one and show it in the run view."""
        lesson = self.session.lesson(lesson_id)
        if lesson is not None:
            self.query_one("#lessons", LessonsPane).select(lesson)
            self.on_lessons_pane_chosen(LessonsPane.Chosen(lesson))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The command palette (``ctrl+p``): meshplay's actions, then Textual's own."""
        runner = self.run_pane.runner_name or "the chosen runner"
        yield SystemCommand(
            f"Run the lesson on {runner}", "every step, graded (r)", self.action_run
        )
        yield SystemCommand(
            "Run up to this step", "the steps up to the one on screen (s)", self.action_run_to_step
        )
        yield SystemCommand("Cancel the run", "stop the running lesson (c)", self.action_cancel)
        yield SystemCommand(
            "Compare runners", "the lesson on runners A and B, side by side (m)",
            self.action_compare,
        )  # fmt: skip
        for name in self.session.runner_factories:
            yield SystemCommand(
                f"Use runner {name}", f"run lessons on {name}",
                lambda name=name: self.action_use_runner(name),
            )  # fmt: skip
        for lesson in self.session.lessons:
            yield SystemCommand(
                f"Open lesson {lesson.id}", lesson.title,
                lambda lesson_id=lesson.id: self.action_open_lesson(lesson_id),
            )  # fmt: skip
        yield from super().get_system_commands(screen)
