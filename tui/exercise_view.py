"""The exercise screen: the goal of an exercise workspace, its check, hints and solution.

Opened by ``meshplay tui --exercise DIR``. The learner edits the YAML in their editor; here they
read the goal, press ``c`` to check the workspace (analyzed, run on the chosen runner in a
background thread, graded), ``h`` for the next hint and ``s`` for the reference solution; ``l``
cycles the runners. Checks not passed stay hidden until every hint was asked for, as on the
command line (:mod:`mesh.exercise`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static

from mesh.exercise import (
    CheckReport,
    Exercise,
    check_workspace,
    goal_text,
    next_hint,
    read_progress,
    with_pass,
    write_progress,
    write_solution,
)
from mesh.runner import RunnerError
from tui.session import Session, post

__all__ = ["ExerciseScreen"]


class ExerciseScreen(Screen[None]):
    """One exercise workspace: goal, verdicts, hints."""

    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("c", "check", "Check"),
        Binding("h", "hint", "Hint"),
        Binding("s", "solution", "Solution"),
        Binding("l", "next_runner", "Runner"),
        Binding("escape", "leave", "Lessons"),
    ]

    @dataclass
    class Checked(Message):
        """A check finished: its report (None when the YAML did not load) and diagnostics."""

        report: CheckReport | None
        lines: list[str]
        runner: str

    def __init__(self, session: Session, exercise: Exercise, folder: Path) -> None:
        super().__init__()
        self.session = session
        self.exercise = exercise
        self.folder = folder
        self.runners = list(session.runner_factories)
        self.runner = "sim" if "sim" in self.runners else (self.runners or [""])[0]
        self.checking = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="ex-goal-box"):
            yield Markdown(goal_text(self.exercise), id="ex-goal")
        yield Static(self._status("press c to check your workspace"), id="ex-status")
        with VerticalScroll(id="ex-report-box"):
            yield Static("", id="ex-report")
        yield Footer()

    def _status(self, text: str) -> str:
        return f"{self.folder}  runner {self.runner}  -  {text}"

    def _say(self, text: str) -> None:
        self.query_one("#ex-status", Static).update(self._status(text))

    def _show(self, lines: list[str]) -> None:
        self.query_one("#ex-report", Static).update("\n".join(lines))

    def action_next_runner(self) -> None:
        """Check on the next runner the app offers."""
        if self.runners:
            self.runner = self.runners[(self.runners.index(self.runner) + 1) % len(self.runners)]
            self._say("press c to check your workspace")

    def action_check(self) -> None:
        """Analyze, run and grade the workspace in a background thread."""
        if self.checking or not self.runner:
            return
        progress = read_progress(self.folder)
        if progress is None:
            self._say("not an exercise workspace any more")
            return
        self.checking = True
        self._say("checking: analyzing and running your configuration...")
        factory = self.session.runner_factories[self.runner]
        revealed = progress.revealed(len(self.exercise.spec.hints))
        name = self.runner

        def work() -> None:
            try:
                report, lines = check_workspace(
                    self.exercise, self.folder, factory(), self.session.seed, revealed
                )
            except RunnerError as exc:
                report, lines = None, [f"error: runner {name} failed: {exc}"]
            post(self, self.Checked(report, lines, name))

        self.session.start(f"the check of {self.exercise.id}", work, threading.Event())

    def on_exercise_screen_checked(self, message: Checked) -> None:
        self.checking = False
        lines = list(message.lines)
        if message.report is None:
            self._say("your YAML did not load: nothing ran")
            self._show(lines)
            return
        if lines:
            lines = ["analysis of your configuration:", *("  " + line for line in lines), ""]
        self._show(lines + message.report.lines())
        self.session.progress.record(
            f"exercise:{self.exercise.id}",
            message.runner,
            passed=message.report.passed,
            seed=self.session.seed,
        )
        if message.report.passed:
            progress = read_progress(self.folder)
            if progress is not None:
                write_progress(self.folder, with_pass(progress, message.runner))
            self._say(f"PASSED on {message.runner}")
        else:
            self._say("not yet - h for a hint")

    def action_hint(self) -> None:
        """Show the hints so far, one more than before."""
        progress = read_progress(self.folder)
        if progress is None:
            return
        shown, last = next_hint(self.exercise, self.folder, progress)
        total = len(self.exercise.spec.hints)
        lines = [f"hint {i}/{total}: {text}" for i, text in enumerate(shown, 1)]
        if last:
            lines.append("no more hints: the next check shows what failed; s for the solution")
        self._show(lines)

    def action_solution(self) -> None:
        """Write the reference solution into the workspace's solution/ folder."""
        progress = read_progress(self.folder)
        if progress is None:
            return
        try:
            files = write_solution(self.exercise, self.folder, progress)
        except FileExistsError as exc:
            self._show([str(exc)])
            return
        self._show(["one answer (yours is graded, not this one):", *(f"  {f}" for f in files)])

    def action_leave(self) -> None:
        """Back to the lessons."""
        self.dismiss()
