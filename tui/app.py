"""``meshplay tui``: the Textual app where a learner lives.

Five views, one key each: 1 lessons, 2 run, 3 topology, 4 compare, 5 traces. Runs happen in
worker threads and reach the screen as throttled, precomputed views, so the interface stays
responsive during long runs. The app receives its runners from the composition root as
factories (``tui`` never imports ``sim`` or ``cluster``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Header, TabbedContent, TabPane

from tui.compare_view import ComparePane
from tui.footer import KeyFooter
from tui.lessons_view import LessonsPane
from tui.progress import ProgressStore, default_data_dir
from tui.proxy import ProxyConfigSource, translator_config
from tui.run_view import RunPane
from tui.session import RunnerFactory, Session
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
}
"""The widget that takes the keyboard when a view is shown."""


class MeshplayApp(App[None]):
    """The meshplay TUI."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "meshplay"
    SUB_TITLE = "the Cloud Networking Playground"
    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("1", "tab('lessons')", "Lessons"),
        Binding("2", "tab('run')", "Run"),
        Binding("3", "tab('topology')", "Topology"),
        Binding("4", "tab('compare')", "Compare"),
        Binding("5", "tab('traces')", "Traces"),
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
        seed: int = 1,
        lesson: str = "",
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
            seed=seed,
        )
        self.session.load()
        chosen = self.session.lesson(lesson) if lesson else None
        self.session.current = chosen or (self.session.lessons[0] if self.session.lessons else None)

    def on_mount(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self.query_one("#lesson-tree").focus()

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

    def on_lessons_pane_chosen(self, message: LessonsPane.Chosen) -> None:
        self.session.current = message.lesson
        self.run_pane.set_lesson(message.lesson)
        self.action_tab("run")

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
