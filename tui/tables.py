"""The run view's tables: per-edge traffic, per-destination split bars and expectations.

Columns follow Istio's standard metrics: requests (``istio_requests_total``), rate, success
(2xx/3xx share: a 4xx or an Envoy local reply such as 404 NR is a failure on its edge), p50/p99 of ``istio_request_duration_milliseconds``, and Envoy's response flags.
Tables are updated in place (:func:`sync_rows`): during a run the same edges and expectations
come back four times a second with new numbers, and rewriting only the cells that changed keeps
the cursor and spares a rebuild of every row.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from mesh.checks import CheckResult
from mesh.metrics import EdgeStats
from tui import fmt
from tui.graph import edge_health
from tui.live import Split

__all__ = ["ChecksTable", "EdgeTable", "SplitView", "last_column_width", "sync_rows"]

Cell = str | Text
Row = tuple[str, tuple[Cell, ...]]


def sync_rows(table: DataTable[Cell], rows: Sequence[Row], *, height: int | None = 1) -> bool:
    """Show ``rows`` (key, cells in column order) in ``table``.

    Rows whose key is where it already is get only their changed cells rewritten
    (``update_cell``); rows past the common prefix of keys are removed or added (``height``
    None: as many lines as their cells have). Returns True when the table's keys changed (rows
    were added, removed or replaced).
    """
    current = [str(row_key.value) for row_key in table.rows]
    wanted = [key for key, _ in rows]
    common = 0
    for have, want in zip(current, wanted, strict=False):
        if have != want:
            break
        common += 1
    columns = list(table.columns)
    for key, cells in rows[:common]:
        for column, old, new in zip(columns, table.get_row(key), cells, strict=True):
            if old != new:
                table.update_cell(key, column, new)
    for gone in current[common:]:
        table.remove_row(gone)
    for key, cells in rows[common:]:
        table.add_row(*cells, key=key, height=height)
    return current != wanted


def last_column_width(table: DataTable[Cell], minimum: int) -> int:
    """Cells left for the last column once the others (and each column's padding) are drawn:
    the table's width, or 80 columns before it is laid out."""
    columns = list(table.columns.values())
    used = sum(c.width + 2 * table.cell_padding for c in columns[:-1]) + 2 * table.cell_padding
    width = table.size.width or 80
    return max(minimum, width - used - 2)  # the vertical scrollbar


class EdgeTable(DataTable[str | Text]):
    """Per-edge rows: EDGE, REQS, RPS, SUCCESS, P50, P99, FLAGS (as wide as the screen allows:
    every column fits in 80)."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for label, width in (
            ("EDGE", 24), ("REQS", 5), ("RPS", 6), ("OK", 6), ("P50 ms", 6), ("P99 ms", 6),
            ("FLAGS", 10),
        ):  # fmt: skip
            self.add_column(label, width=width, key=label)

    def on_resize(self) -> None:
        flags = self.columns[ColumnKey("FLAGS")]
        width = last_column_width(self, 10)
        if flags.width != width:
            flags.width = width
            self._require_update_dimensions = True
            self.refresh()

    def show_rows(self, rows: Sequence[EdgeStats]) -> None:
        """Show the rows, keeping the cursor where it was."""
        keep = self.cursor_row
        cells = []
        for row in rows:
            colour = edge_health(row).value
            cells.append(
                (
                    row.name,
                    (
                        Text(row.name, style=colour),
                        str(row.requests),
                        fmt.rps(row.rps),
                        Text(fmt.pct(row.success_rate), style=colour),
                        fmt.ms(row.p50_ms),
                        fmt.ms(row.p99_ms),
                        fmt.flags(row.flags),
                    ),
                )
            )
        if sync_rows(self, cells) and rows:
            self.move_cursor(row=min(keep, len(rows) - 1), animate=False)


class SplitView(Static):
    """One bar per destination service, coloured by version: where the traffic went."""

    def show_split(self, split: Split, width: int = 30) -> None:
        """Draw the bars (only services with more than one version, or all when few)."""
        # four lines high (app.tcss): new bars need no relayout of the screen
        if not split:
            self.update(Text("no traffic yet", style="dim"), layout=False)
            return
        shown = [s for s in split if len(s[1]) > 1] or list(split)
        lines = Text("traffic split by destination version\n", style="bold")
        for i, (service, versions) in enumerate(shown):
            if i:
                lines.append("\n")
            lines.append_text(fmt.split_bar(service, versions, width))
        self.update(lines, layout=False)


class ChecksTable(DataTable[str | Text]):
    """Expectations: VERDICT, MEASURED, N, EXPECTATION (last, as wide as the screen allows and
    folded onto more lines when it is narrow, so a threshold is never cut off)."""

    _checks: Sequence[CheckResult] = ()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for label, width in (("VERDICT", 9), ("MEASURED", 8), ("N", 6), ("EXPECTATION", 40)):
            self.add_column(label, width=width, key=label)

    def on_resize(self) -> None:
        if self.columns[ColumnKey("EXPECTATION")].width != last_column_width(self, 20):
            self.show_checks(self._checks)

    def show_checks(self, checks: Sequence[CheckResult]) -> None:
        """Show the expectations, keeping the cursor where it was."""
        self._checks = checks
        keep = self.cursor_row
        width = last_column_width(self, 20)
        column = self.columns[ColumnKey("EXPECTATION")]
        if column.width != width:
            column.width = width
            self._require_update_dimensions = True
        rows = []
        for i, c in enumerate(checks):
            text = "\n".join(fmt.fold(c.expectation.describe(), width))
            # keyed by the folded text: another expectation (or width) is a new row of its height
            cells = (fmt.verdict(c.verdict), fmt.value(c.value), str(c.samples), text)
            rows.append((f"{i}:{text}", cells))
        if sync_rows(self, rows, height=None) and checks:
            self.move_cursor(row=min(keep, len(checks) - 1), animate=False)
