"""The compare view: the current lesson on two runners, metrics side by side (``m`` runs it).

Rows and verdicts are :mod:`mesh.compare`'s (via :mod:`tui.compare`), the same as ``meshplay
compare`` prints: ``≈`` within tolerance, ``·`` information only (latency, small or one-sided
samples), ``≠`` differs beyond tolerance.

A completed run already in the session (same lesson, runner and seed) is reused; otherwise the
runner runs in a worker thread, one after the other (the machine's cores are shared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label, Select, Static
from textual.widgets.data_table import ColumnKey

from mesh.runner import LessonRun
from tui import fmt
from tui.compare import CompareRow, compare_runs
from tui.live import LiveRun
from tui.session import Session

__all__ = ["ComparePane"]


def _value(row: CompareRow, x: float) -> str:
    if row.unit == "%":
        return fmt.pct(x)
    if row.unit == "ms":
        return fmt.ms(x)
    return fmt.value(x)


def _delta(row: CompareRow) -> str:
    d = row.delta
    if math.isnan(d):
        return "-"
    if row.unit == "%":
        return f"{d * 100:+.1f}pt"
    return f"{d:+.1f}" if row.unit == "ms" else f"{d:+.3g}"


def _verdict(row: CompareRow) -> Text:
    if row.kind == "metric":
        if row.info:
            return Text("· info", style="dim")
        if row.agree:
            return Text("≈ within tol.", style="green")
        return Text("≠ differs", style="yellow")
    va = fmt.verdict(row.verdict_a) if row.verdict_a else Text("-")
    vb = fmt.verdict(row.verdict_b) if row.verdict_b else Text("-")
    verdict = Text.assemble(va[:1], " ", vb[:1], "  ")
    if row.info:
        verdict.append("info", style="dim")
    else:
        verdict.append("agree" if row.agree else "DISAGREE",
                       style="green" if row.agree else "bold red")  # fmt: skip
    return verdict


class ComparePane(Vertical):
    """Two runner selectors and the side-by-side table."""

    @dataclass
    class Status(Message):
        """Progress text from the compare worker."""

        text: str

    @dataclass
    class Compared(Message):
        """Both runs are ready (or one failed: ``error``)."""

        a: LessonRun | None
        b: LessonRun | None
        error: str

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.busy = False
        self.rows: list[CompareRow] = []

    def compose(self) -> ComposeResult:
        names = list(self.session.runner_factories)
        second = names[1] if len(names) > 1 else (names[0] if names else Select.NULL)
        with Horizontal(id="cmp-controls"):
            yield Label("A ")
            yield Select([(n, n) for n in names], value=names[0] if names else Select.NULL,
                         allow_blank=not names, compact=True, id="cmp-a")  # fmt: skip
            yield Label(" B ")
            yield Select([(n, n) for n in names], value=second, allow_blank=not names,
                         compact=True, id="cmp-b")  # fmt: skip
            yield Button("Compare m", id="cmp-btn", compact=True, variant="primary")
        yield Static(id="cmp-status")
        table: DataTable[str | Text] = DataTable(id="cmp-table", cursor_type="row")
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#cmp-table", DataTable)
        for label, width in (("VERDICT", 13), ("A", 8), ("B", 8), ("Δ B-A", 8), ("WHAT", 60)):
            table.add_column(label, width=width, key=label)
        self._status("m compares the current lesson on runners A and B", "dim")

    def _status(self, text: str, style: str) -> None:
        self.query_one("#cmp-status", Static).update(Text(text, style=style))

    def _choice(self, widget_id: str) -> str:
        value = self.query_one(widget_id, Select).value
        return str(value) if isinstance(value, str) else ""

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cmp-btn":
            self.start()

    def _reusable(self, runner: str) -> LessonRun | None:
        lesson = self.session.current
        live = self.session.runs.get((lesson.id, runner)) if lesson is not None else None
        run = live.result if live is not None else None
        if run is None or live is None or live.cancel.is_set():
            return None
        if len(run.steps) != len(run.lesson.steps) or run.seed != self.session.seed:
            return None
        return run

    def start(self) -> None:
        """Run (or reuse) the lesson on both runners in a worker thread, then fill the table."""
        lesson = self.session.current
        a, b = self._choice("#cmp-a"), self._choice("#cmp-b")
        if lesson is None:
            self.notify("Choose a lesson first (1, then enter).", severity="warning")
            return
        if self.busy or not a or not b:
            return
        self.busy = True
        self.query_one("#cmp-btn", Button).disabled = True
        reuse = {name: self._reusable(name) for name in (a, b)}
        session = self.session

        def work() -> None:
            runs: list[LessonRun] = []
            for name in (a, b):
                run = reuse[name]
                if run is None:
                    self.post_message(self.Status(f"running {lesson.id} on {name}…"))
                    live = LiveRun(lesson, name, session.seed)
                    try:
                        run = session.runner_factories[name]().run(lesson, live.options())
                    except Exception as exc:
                        self.post_message(self.Compared(None, None, f"{name}: {exc}"))
                        return
                    live.finish(run)
                    session.runs[(lesson.id, name)] = live
                runs.append(run)
            self.post_message(self.Compared(runs[0], runs[1], ""))

        self.run_worker(work, thread=True, group="compare", name=f"compare {a} {b}")

    def on_compare_pane_status(self, message: Status) -> None:
        message.stop()
        self._status(message.text, "yellow")

    def on_compare_pane_compared(self, message: Compared) -> None:
        message.stop()
        self.busy = False
        self.query_one("#cmp-btn", Button).disabled = False
        if message.a is None or message.b is None:
            self._status(f"failed: {message.error}", "red")
            return
        self.show(message.a, message.b)

    def show(self, a: LessonRun, b: LessonRun) -> None:
        """Fill the table from two runs."""
        self.rows = compare_runs(a, b)
        table = self.query_one("#cmp-table", DataTable)
        table.clear()
        table.columns[ColumnKey("A")].label = Text(a.runner, style="bold")
        table.columns[ColumnKey("B")].label = Text(b.runner, style="bold")
        for i, row in enumerate(self.rows):
            if row.kind in ("step", "note"):
                style = "bold cyan" if row.kind == "step" else "dim"
                table.add_row("", "", "", "", Text(row.what, style=style), key=str(i))
                continue
            table.add_row(
                _verdict(row),
                _value(row, row.a),
                _value(row, row.b),
                _delta(row),
                row.what if row.kind == "check" else Text("  " + row.what),
                key=str(i),
            )
        agree = sum(1 for r in self.rows if r.kind == "check" and r.agree)
        total = sum(1 for r in self.rows if r.kind == "check")
        differ = sum(1 for r in self.rows if r.kind == "metric" and not r.agree)
        info = sum(1 for r in self.rows if r.kind == "metric" and r.info)
        self._status(
            f"{a.runner} vs {b.runner}: verdicts agree {agree}/{total}, "
            f"{differ} metric(s) outside tolerance, {info} for information",
            "green" if agree == total and not differ else "yellow",
        )
