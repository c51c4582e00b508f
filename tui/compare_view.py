"""The compare view: the current lesson on two runners, metrics side by side (``m`` runs it).

Rows and verdicts are :mod:`mesh.compare`'s (via :mod:`tui.compare`), the same as ``meshplay
compare`` prints: ``≈`` within tolerance, ``·`` information only (latency, small or one-sided
samples), ``≠`` differs beyond tolerance.

The two sides run as ``meshplay compare`` runs them, through the session's ``pair_runner``
(``playground.compare_pair.run_pair``): sim against local, the local side runs first and, when a
step's client sidecar answered 503 ``UO`` (a circuit breaker overflowed), the sim side runs with
the connection-pool delays and service times measured from that run's access logs. A line under
the status says what was measured and that the sim used it, or why not; the ``pool calib.``
checkbox turns it off (``meshplay compare --no-pool-calibration``).

A completed run already in the session (same lesson, runner and seed) is reused when its side
needs nothing special (a calibrating local side needs its access logs, a calibrated sim side its
measured timing: both run afresh); otherwise the runner runs in a background thread, one after
the other (the machine's cores are shared), and the status line and the progress bar say every
half second which runner runs ((1/2): the first to run), which step and for how long (a local
run takes tens of seconds). The summary counts verdicts as they are: an ``info`` row is neither
agreement nor disagreement.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, DataTable, Label, ProgressBar, Select, Static
from textual.widgets.data_table import ColumnKey

from mesh.compare import AGREE, DIFFER, INFO
from mesh.lesson import Lesson
from mesh.runner import LessonRun
from tui import fmt
from tui.compare import CompareRow, compare_runs
from tui.live import LiveRun
from tui.session import Session, SideRun, post
from tui.tables import last_column_width

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


class _CancelledError(Exception):
    """The comparison was cancelled between its two runs."""


class _RunnerFailedError(Exception):
    """A side's runner failed: ``name`` and the runner's error."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(f"{name}: {error}")


@dataclass(frozen=True, slots=True)
class _Pair:
    a: LessonRun
    b: LessonRun
    note: str = ""


def _in_order(
    lesson: Lesson, names: tuple[str, str], run_side: SideRun, *, calibrate: bool
) -> _Pair:
    """Without a pair runner: A, then B, as they are (no calibration line)."""
    return _Pair(run_side(0, names[0], lesson, {}), run_side(1, names[1], lesson, {}))


class ComparePane(Vertical):
    """Two runner selectors and the side-by-side table."""

    @dataclass
    class Status(Message):
        """Progress text from the compare worker."""

        text: str

    @dataclass
    class Compared(Message):
        """Both runs are ready (or one failed: ``error``), with the pool calibration's line."""

        a: LessonRun | None
        b: LessonRun | None
        error: str
        note: str = ""

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.busy = False
        self.rows: list[CompareRow] = []
        self.running: tuple[str, int, LiveRun] | None = None
        """(runner, its place 1 or 2, its live run) while a runner of the comparison runs."""
        self._began = 0.0
        self._shown: tuple[LessonRun, LessonRun] | None = None

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
            if self.session.pair_runner is not None:
                yield Checkbox("pool calib.", True, compact=True, id="cmp-calibrate",
                               tooltip="sim vs local: run the sim with the connection-pool "
                               "timing measured on the local run")  # fmt: skip
        yield Static(id="cmp-status")
        yield Static(id="cmp-calibration")
        yield ProgressBar(total=1.0, show_eta=False, id="cmp-progress")
        table: DataTable[str | Text] = DataTable(id="cmp-table", cursor_type="row")
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#cmp-table", DataTable)
        for label, width in (("VERDICT", 13), ("A", 7), ("B", 7), ("Δ B-A", 8), ("WHAT", 30)):
            table.add_column(label, width=width, key=label)
        self._status("m compares the current lesson on runners A and B", "dim")
        self.query_one("#cmp-progress", ProgressBar).display = False
        self.query_one("#cmp-calibration", Static).display = False
        self._ticker = self.set_interval(0.5, self._tick, pause=True)

    def on_resize(self) -> None:
        table = self.query_one("#cmp-table", DataTable)
        if self._shown is not None and table.columns[ColumnKey("WHAT")].width != (
            last_column_width(table, 24)
        ):
            self.show(*self._shown)

    def _status(self, text: str, style: str) -> None:
        self.query_one("#cmp-status", Static).update(Text(text, style=style))

    def _tick(self) -> None:
        """Which runner runs, its step and share done, and for how long (every half second)."""
        if self.running is None:
            return
        name, place, live = self.running
        lesson = live.lesson
        seconds = f"{time.monotonic() - self._began:.0f} s"
        if not live.started:
            where = f"starting {name}"
        else:
            where = f"step {live.step + 1}/{len(lesson.steps)}, {live.fraction:.0%}"
        self._status(f"{lesson.id} on {name} ({place}/2): {where} · {seconds}", "yellow")
        done = (live.step + live.fraction) / max(1, len(lesson.steps)) if live.started else 0.0
        self.query_one("#cmp-progress", ProgressBar).update(progress=(place - 1 + done) / 2)

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
        pair_runner = session.pair_runner or _in_order
        calibrate = self._calibrating()
        self._began = time.monotonic()
        bar = self.query_one("#cmp-progress", ProgressBar)
        bar.display = True
        bar.update(progress=0.0)
        self._ticker.resume()
        cancel = threading.Event()
        started = [0]

        def run_side(
            index: int, name: str, subject: Lesson, options: Mapping[str, object]
        ) -> LessonRun:
            done = reuse[name] if not options and subject is lesson else None
            if done is not None:
                return done
            if cancel.is_set():
                raise _CancelledError
            started[0] += 1
            live = LiveRun(subject, name, session.seed, cancel=cancel)
            self.running = (name, started[0], live)
            try:
                done = session.runner_factories[name](**options).run(subject, live.options())
            except Exception as exc:
                raise _RunnerFailedError(name, exc) from exc
            if cancel.is_set():
                raise _CancelledError
            live.finish(done)
            if subject is lesson and "pool_timing" not in options:  # what `r` would have run
                session.runs[(lesson.id, name)] = live
            return done

        def run() -> None:
            try:
                pair = pair_runner(lesson, (a, b), run_side, calibrate=calibrate)
            except _CancelledError:
                post(self, self.Compared(None, None, "cancelled"))
                return
            except Exception as exc:  # a runner failed, or the calibration could not read its logs
                post(self, self.Compared(None, None, str(exc)))
                return
            post(self, self.Compared(pair.a, pair.b, "", pair.note))

        session.start(f"the comparison of {lesson.id} on {a} and {b}", run, cancel)

    def _calibrating(self) -> bool:
        """The ``pool calib.`` checkbox is on (there is none without a pair runner)."""
        boxes = self.query("#cmp-calibrate").results(Checkbox)
        return all(box.value for box in boxes)

    def on_compare_pane_status(self, message: Status) -> None:
        message.stop()
        self._status(message.text, "yellow")

    def on_compare_pane_compared(self, message: Compared) -> None:
        message.stop()
        self.busy = False
        self.running = None
        self._ticker.pause()
        self.query_one("#cmp-progress", ProgressBar).display = False
        self.query_one("#cmp-btn", Button).disabled = False
        note = self.query_one("#cmp-calibration", Static)
        note.update(Text(message.note, style="cyan"))
        note.display = bool(message.note)
        if message.a is None or message.b is None:
            self._status(f"failed: {message.error}", "red")
            return
        self.show(message.a, message.b)

    def show(self, a: LessonRun, b: LessonRun) -> None:
        """Fill the table from two runs (long lines folded to the table's width)."""
        self._shown = (a, b)
        self.rows = compare_runs(a, b)
        table = self.query_one("#cmp-table", DataTable)
        table.clear()
        width = last_column_width(table, 24)
        table.columns[ColumnKey("WHAT")].width = width
        table.columns[ColumnKey("A")].label = Text(a.runner, style="bold")
        table.columns[ColumnKey("B")].label = Text(b.runner, style="bold")
        for i, row in enumerate(self.rows):
            what = "\n".join(fmt.fold(row.what, width))
            if row.kind in ("step", "note"):
                style = "bold cyan" if row.kind == "step" else "dim"
                table.add_row("", "", "", "", Text(what, style=style), key=str(i), height=None)
                continue
            table.add_row(
                _verdict(row),
                _value(row, row.a),
                _value(row, row.b),
                _delta(row),
                what if row.kind == "check" else Text("\n".join(fmt.fold("  " + row.what, width))),
                key=str(i),
                height=None,
            )
        self._status(summary(self.rows, a.runner, b.runner), "green" if _all_agree(self.rows)
                     else "yellow")  # fmt: skip


def _counts(rows: list[CompareRow], kind: str) -> tuple[int, int, int]:
    verdicts = [r.verdict for r in rows if r.kind == kind]
    return verdicts.count(AGREE), verdicts.count(INFO), verdicts.count(DIFFER)


def _all_agree(rows: list[CompareRow]) -> bool:
    return all(r.verdict != DIFFER for r in rows if r.kind in ("check", "metric"))


def summary(rows: list[CompareRow], a: str, b: str) -> str:
    """``sim vs local · grades 6 agree, 1 info, 0 DISAGREE · metrics 20 ≈, 9 info, 0 ≠``:
    information rows counted as such, never as agreement."""
    agree, info, disagree = _counts(rows, "check")
    within, m_info, differ = _counts(rows, "metric")
    return (
        f"{a} vs {b} · grades {agree} agree, {info} info, {disagree} DISAGREE · "
        f"metrics {within} ≈, {m_info} info, {differ} ≠"
    )
