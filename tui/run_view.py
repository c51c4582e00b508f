"""The run view: pick a runner, run the lesson, watch each edge live, read the verdicts.

The runner runs in a background thread (:meth:`tui.session.Session.start`); its callbacks feed a
:class:`~tui.live.LiveRun`, which posts a ready-made view at most four times a second, and the
status line says where the run is every half second (starting the runner, step, share done,
seconds). ``[``/``]`` step through the lesson's steps (while running, the view follows the running
step until you move); ``r`` runs every step, ``s`` runs up to the step on screen, ``c`` cancels.
A step the lesson restricts to other runners says so ("skipped on local: ...").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, ProgressBar, Select, Static

from mesh.lesson import Lesson
from mesh.runner import LessonRun
from tui.live import LiveRun, StepView
from tui.session import Session, post
from tui.tables import ChecksTable, EdgeTable, SplitView

__all__ = ["RunPane"]


class RunPane(Vertical):
    """Runner choice, progress, per-edge table, split bars, expectations."""

    @dataclass
    class Update(Message):
        """A fresh view of the running step (posted from the runner thread)."""

        live: LiveRun
        view: StepView

    @dataclass
    class Finished(Message):
        """The runner returned (``run``) or failed (``error``)."""

        live: LiveRun
        run: LessonRun | None
        error: str

    @dataclass
    class Done(Message):
        """A run ended; other views may refresh (bubbles to the app)."""

        live: LiveRun

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.live: LiveRun | None = None
        self.running = False
        self.follow = True
        self._drawn: StepView | None = None
        self._began = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="run-title")
        with Horizontal(id="run-controls"):
            names = list(self.session.runner_factories)
            yield Select(
                [(n, n) for n in names],
                value=names[0] if names else Select.NULL,
                allow_blank=not names,
                compact=True,
                id="runner",
            )
            yield Button("Run ▶ r", id="run-btn", compact=True, variant="primary")
            yield Button("Cancel c", id="cancel-btn", compact=True, disabled=True)
        with Horizontal(id="run-state"):
            yield Static(id="run-status")
            yield ProgressBar(total=1.0, show_eta=False, id="run-progress")
        yield Static(id="step-title")
        yield EdgeTable(id="edges")
        yield SplitView(id="split")
        yield ChecksTable(id="checks")

    def on_mount(self) -> None:
        self._ticker = self.set_interval(0.5, self._tick, pause=True)
        if self.session.loaded:
            self.set_lesson(self.session.current)
        else:
            self.query_one("#run-title", Static).update(Text("Loading the lessons…", style="dim"))

    @property
    def on_screen(self) -> bool:
        """The run view is the view shown (not a hidden tab)."""
        return all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))

    @property
    def runner_name(self) -> str:
        """The runner chosen in the selector."""
        value = self.query_one("#runner", Select).value
        return str(value) if isinstance(value, str) else ""

    def set_lesson(self, lesson: Lesson | None) -> None:
        """Show a lesson (its latest run on the chosen runner, if any)."""
        title = self.query_one("#run-title", Static)
        if lesson is None:
            title.update(Text("No lesson chosen: pick one in Lessons (1).", style="dim"))
            return
        title.update(Text.assemble((lesson.title, "bold"), f"  ·  seed {self.session.seed}"))
        if self.live is None or self.live.lesson is not lesson:
            if not self.running:
                self.live = self.session.runs.get((lesson.id, self.runner_name))
            self.session.step = 0
        self.show_step(self.session.step)

    # --- running -------------------------------------------------------------------------------

    def start(self, until_step: int | None = None) -> None:
        """Run the current lesson on the chosen runner in a worker thread."""
        lesson = self.session.current
        name = self.runner_name
        if lesson is None or self.running or not name:
            if lesson is None:
                self.notify("Choose a lesson first (1, then enter).", severity="warning")
            return
        if name not in lesson.spec.runners:
            self.notify(f"{lesson.id} does not list runner {name}; running anyway.")
        live = LiveRun(lesson, name, self.session.seed, turn=self.session.turn)

        def publish(view: StepView) -> None:
            post(self, self.Update(live, view))

        live.publish = publish
        self.live, self.running, self.follow = live, True, True
        self.session.runs[(lesson.id, name)] = live
        self.session.last_runner = name
        self.session.step = 0
        self.query_one("#cancel-btn", Button).disabled = False
        self.query_one("#run-btn", Button).disabled = True
        self._began = time.monotonic()
        self._status(f"starting {name}…", "yellow")
        self._ticker.resume()
        self.show_step(0)
        factory = self.session.runner_factories[name]
        self.session.heap.hold()  # released when Finished arrives

        def work() -> None:
            try:
                run = factory().run(lesson, live.options(until_step))
            except Exception as exc:
                post(self, self.Finished(live, None, f"{type(exc).__name__}: {exc}"))
                return
            live.finish(run)
            post(self, self.Finished(live, run, ""))

        self.session.start(f"the run of {lesson.id} on {name}", work, live.cancel)

    def _tick(self) -> None:
        """Where the run is, every half second (the runner may take seconds to start)."""
        live = self.live
        if live is None or not self.running:
            self._ticker.pause()
            return
        seconds = f"{time.monotonic() - self._began:.0f} s"
        if live.cancel.is_set():
            self._status(f"cancelling… {seconds}", "yellow")
        elif not live.started:
            self._status(f"starting {live.runner}… {seconds}", "yellow")
        else:
            steps = len(live.lesson.steps)
            self._status(
                f"running on {live.runner}: step {live.step + 1}/{steps}, "
                f"{live.fraction:.0%} of its traffic · {seconds}",
                "yellow",
            )

    def cancel(self) -> None:
        """Ask the running runner to stop."""
        if self.live is not None and self.running:
            self.live.cancel.set()
            self._status("cancelling…", "yellow")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run-btn":
            self.start()
        elif event.button.id == "cancel-btn":
            self.cancel()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        lesson = self.session.current
        if lesson is not None and not self.running:
            self.live = self.session.runs.get((lesson.id, self.runner_name))
            self.show_step(self.session.step)

    def on_run_pane_update(self, message: Update) -> None:
        message.stop()
        if message.live is not self.live:
            return
        view = message.view
        if self.follow and view.index != self.session.step:
            self.session.step = view.index
        if view.index == self.session.step and self.on_screen:
            self._draw(view)  # hidden, it is drawn when shown (the app calls show_step)

    def on_run_pane_finished(self, message: Finished) -> None:
        message.stop()
        self.session.heap.release()
        live = message.live
        if live is self.live:
            self.running = False
            self._ticker.pause()
            self.query_one("#cancel-btn", Button).disabled = True
            self.query_one("#run-btn", Button).disabled = False
        if message.run is None:
            self._status(f"failed: {message.error}", "red")
            self.notify(message.error, title="run failed", severity="error")
        else:
            run = message.run
            complete = (
                len(run.steps) == len(run.lesson.steps)
                and not run.cancelled
                and not live.cancel.is_set()
            )
            if complete:
                self.session.progress.record(
                    run.lesson.id, live.runner, passed=run.passed, seed=live.seed
                )
            checks = [c for s in run.steps for c in s.checks]
            passed = sum(1 for c in checks if c.passed)
            met = f"{passed}/{len(checks)} expectations met on {live.runner}"
            if run.cancelled or live.cancel.is_set():
                steps = f"{len(run.steps)} of {len(run.lesson.steps)} steps"
                self._status(f"CANCELLED after {steps}: {met} (partial run)", "yellow")
            else:
                verdict = "PASSED" if run.passed else "FAILED"
                suffix = "" if complete else " (partial run)"
                self._status(f"{verdict}: {met}{suffix}", "green" if run.passed else "red")
            if self.follow and run.steps:
                self.session.step = len(run.steps) - 1
        if live is self.live:
            self.show_step(self.session.step)
        self.post_message(self.Done(live))

    # --- showing ---------------------------------------------------------------------------------

    def move_step(self, delta: int) -> None:
        """Show the previous/next step."""
        lesson = self.session.current
        if lesson is None or not lesson.steps:
            return
        self.follow = False
        self.session.step = max(0, min(len(lesson.steps) - 1, self.session.step + delta))
        self.show_step(self.session.step)

    def show_step(self, index: int) -> None:
        """Draw step ``index`` of the current lesson from the current run (or empty)."""
        lesson = self.session.current
        if lesson is None or not lesson.steps:
            return
        index = max(0, min(index, len(lesson.steps) - 1))
        live = self.live if self.live is not None and self.live.lesson is lesson else None
        if live is None:
            step = lesson.steps[index]
            self._draw(StepView(index, step.name, len(lesson.steps), 0.0, 0, 0.0, (), (), ()))
            if not self.running:
                self._status(f"not run yet: press r to run on {self.runner_name}", "dim")
            return
        self._draw(live.latest_view(index))

    def _runner_of_view(self) -> str:
        return self.live.runner if self.live is not None else self.runner_name

    def _status(self, text: str, style: str) -> None:
        # one line high (app.tcss): a new text needs no relayout of the screen
        self.query_one("#run-status", Static).update(Text(text, style=style), layout=False)

    def _draw(self, view: StepView) -> None:
        if view is self._drawn:
            return
        self._drawn = view
        self.query_one("#run-progress", ProgressBar).update(progress=view.fraction)
        head = Text.assemble(
            (f"Step {view.index + 1}/{view.steps}: ", "bold"),
            (view.name, "bold cyan"),
        )
        if view.skipped:
            head.append(f"   skipped on {self._runner_of_view()}: {view.skipped}", "yellow")
        else:
            head.append(f"   {view.requests} requests")
            head.append(f" in {view.duration_s:.1f}s" if view.duration_s else "")
        if view.events:
            shown = "; ".join(e.describe(view.started_at) for e in view.events[:2])
            more = f" (+{len(view.events) - 2} more)" if len(view.events) > 2 else ""
            alarm = any(e.kind in ("pod-died", "config-rejected") for e in view.events)
            head.append(f"   events: {shown}{more}", "bold red" if alarm else "magenta")
        head.append("   [ ] steps · s run to here", "dim")
        self.query_one("#step-title", Static).update(head, layout=False)
        self.query_one("#edges", EdgeTable).show_rows(view.rows)
        self.query_one("#split", SplitView).show_split(view.split)
        self.query_one("#checks", ChecksTable).show_checks(view.checks)
