"""The traces view: recent traces of the step on screen, and the chosen one as a waterfall.

One view, either source (:mod:`tui.traces`): the spans real Envoys reported to the collector
(the ``local`` runner with tracing: the lesson's ``tracing``), or the spans derived from the
run's records (the simulator, or a run without a tracer); the pane's title says which. A client
span (the caller's sidecar) contains the server span of the same hop; the gap between them is
the network and the server's queue.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from tui.session import Session
from tui.tables import sync_rows
from tui.traces import ENVOY, Trace, spans_text

__all__ = ["TracesPane"]


class TracesPane(Vertical):
    """Trace list (newest first) above the waterfall of the highlighted trace."""

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.traces: list[Trace] = []
        self._drawn: tuple[int, int, int, int] | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="trace-table", cursor_type="row")
        yield table
        with VerticalScroll(id="waterfall-box"):
            yield Static(id="waterfall")

    def on_mount(self) -> None:
        table = self.query_one("#trace-table", DataTable)
        for label, width in (("TRACE", 10), ("START s", 9), ("REQUEST", 26), ("CODE", 5),
                             ("MS", 8), ("SPANS", 5)):  # fmt: skip
            table.add_column(label, width=width, key=label)

    def refresh_traces(self) -> None:
        """Reload the traces of the latest run's step on screen.

        The run keeps its spans grouped by trace as they arrive, so this asks only for the
        newest 50; rows are keyed by position and rewritten in place, cell by cell.
        """
        live = self.session.latest_run()
        view = live.latest_view(self.session.step) if live is not None else None
        spans = live.spans_seen(self.session.step) if live is not None else 0
        key = (id(live), self.session.step, id(view), spans)
        if key == self._drawn:
            return
        self._drawn = key
        traces = live.traces(self.session.step, limit=50) if live is not None else []
        changed = traces != self.traces
        self.traces = traces
        rows = []
        for i, t in enumerate(traces):
            colour = "" if t.ok else "red"
            cells = (
                t.trace_id[-8:],
                f"{t.start_s:.3f}",
                Text(t.root, style=colour),
                Text(str(t.code), style=colour),
                f"{t.duration_ms:.1f}",
                str(len(t.spans)),
            )
            rows.append((str(i), cells))
        table = self.query_one("#trace-table", DataTable)
        sync_rows(table, rows)
        source = (
            "Envoy's spans (collector)"
            if traces and traces[0].source == ENVOY
            else "spans from the records"
        )
        table.border_title = f"traces · step {self.session.step + 1} · {source}"
        if not traces:
            self.query_one("#waterfall", Static).update(
                Text("No traces yet: run the lesson (2, then r).", style="dim")
            )
        elif changed:  # the newest trace, highlighted, as after a reload
            table.move_cursor(row=0, animate=False)
            self.show_trace(traces[0])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.traces):
            self.show_trace(self.traces[event.cursor_row])

    def on_resize(self, event: events.Resize) -> None:
        """The waterfall's bars fit the pane's width: redraw the chosen trace at the new size
        (the view may be filled before its first layout, when its width is still unknown)."""
        row = self.query_one("#trace-table", DataTable).cursor_row
        if 0 <= row < len(self.traces):
            self.show_trace(self.traces[row])

    def show_trace(self, trace: Trace) -> None:
        """Draw a trace's waterfall to fit the pane's width: a span per line (name, then its bar),
        or, when the names leave fewer than 20 cells for the bars, its name on one line and its
        bar under it (names are never cut)."""
        pane = self.size.width or 120
        names = ["  " * span.depth + span.name for span in trace.spans]
        name_width = max((len(n) for n in names), default=0)
        narrow = pane - 14 - name_width - 1 < 20
        width = max(10, pane - 14 - (4 if narrow else name_width + 1))
        out = Text()
        out.append(
            f"trace {trace.trace_id}  {trace.root}  {trace.duration_ms:.1f} ms\n", style="bold"
        )
        for span, bar in spans_text(trace, width):
            colour = (
                "red"
                if span.code >= 500 or span.flags != "-"
                else ("cyan" if span.kind == "client" else "green")
            )
            name = "  " * span.depth + span.name
            if narrow:
                out.append(f"{name}\n", style=colour)
                out.append("  " * span.depth + "  ")
            else:
                out.append(f"{name:<{name_width}} ", style=colour)
            out.append(bar, style=colour)
            out.append(f" {span.duration_ms:7.1f}ms", style="dim")
            if span.flags != "-":
                out.append(f" {span.flags}", style="bold red")
            out.append("\n")
        out.append("client: the caller's sidecar sent it  ", style="cyan")
        out.append("server: the callee's sidecar received it", style="green")
        self.query_one("#waterfall", Static).update(out)
