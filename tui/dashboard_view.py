"""The dashboard view: the golden signals of every service, live during a run on any runner.

Per destination service: requests per second, error ratio and p50/p90/p99 latency, each as a
sparkline over the step's seconds (:mod:`mesh.observe.dashboard`), next to its latest value.
Under the table, three plots over the step's seconds (plotext, through textual-plotext): the
request rate of the busiest services, their error ratio, and the p50/p90/p99 latency of the
busiest one. The view reads the latest run's records of the step on screen twice a second while
it is shown, and only the records that arrived since its last look.
"""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from mesh.observe.dashboard import Dashboard, ServiceSignals, sparkline
from tui.session import Session

__all__ = ["DashboardPane"]

SPARK_WIDTH = 24
POLL_S = 0.5
PLOTTED = 4
"""Services drawn in the rate and error plots (the busiest)."""


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _last(values: tuple[float, ...]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return finite[-1] if finite else math.nan


def signals_table(signals: list[ServiceSignals], width: int = SPARK_WIDTH) -> Table:
    """The dashboard as a Rich table: one row per service."""
    table = Table(expand=True, box=None, header_style="bold")
    for name, justify in (
        ("SERVICE", "left"),
        ("REQ/S", "right"),
        ("RATE", "left"),
        ("ERR %", "right"),
        ("ERRORS", "left"),
        ("P50", "right"),
        ("P90", "right"),
        ("P99 MS", "right"),
        ("P99", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in signals:
        failing = not math.isnan(s.error_ratio) and s.error_ratio > 0.05
        ratio = "-" if math.isnan(s.error_ratio) else f"{s.error_ratio * 100:.1f}"
        table.add_row(
            s.service,
            f"{s.rps:.1f}",
            Text(sparkline(s.rate, width), style="cyan"),
            Text(ratio, style="bold red" if failing else ""),
            Text(sparkline(s.errors, width, top=1.0), style="red"),
            _ms(_last(s.p50)),
            _ms(_last(s.p90)),
            _ms(_last(s.p99)),
            Text(sparkline(s.p99, width), style="yellow"),
        )
    return table


class DashboardPane(Vertical):
    """Per-service rate, errors and latency of the step on screen, refreshed while shown."""

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.dashboard = Dashboard()
        self._source: tuple[int, int] | None = None
        self._seen = 0

    DEFAULT_CSS = """
    DashboardPane #dashboard-box { height: 1fr; }
    DashboardPane #dashboard-plots { height: 12; }
    DashboardPane PlotextPlot { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dashboard-box"):
            yield Static(id="dashboard", expand=True)
        with Horizontal(id="dashboard-plots"):
            yield PlotextPlot(id="plot-rate")
            yield PlotextPlot(id="plot-errors")
            yield PlotextPlot(id="plot-latency")

    def on_mount(self) -> None:
        self.set_interval(POLL_S, self._poll)

    def _poll(self) -> None:
        if self.display and self.is_on_screen:
            self.refresh_dashboard()

    def refresh_dashboard(self) -> None:
        """Take in the records that arrived since the last look and redraw."""
        live = self.session.latest_run()
        step = self.session.step
        records = live.records(step) if live is not None else ()
        source = (id(live), step)
        if source != self._source or len(records) < self._seen:
            self.dashboard = Dashboard()  # another run or step, or the run's final records
            self._source, self._seen = source, 0
        if len(records) > self._seen:
            self.dashboard.add(records[self._seen :])
            self._seen = len(records)
        box = self.query_one("#dashboard", Static)
        box.border_title = f"golden signals · step {step + 1}"
        signals = self.dashboard.signals()
        self._plot(signals)
        if not signals:
            box.update(Text("No traffic yet: run the lesson (2, then r).", style="dim"))
            return
        box.update(signals_table(signals))

    def _plot(self, signals: list[ServiceSignals]) -> None:
        """Rate and error ratio of the busiest services, latency percentiles of the busiest."""
        bin_s = self.dashboard.bin_s
        busiest = signals[:PLOTTED]
        latency = (
            [("p50", busiest[0].p50), ("p90", busiest[0].p90), ("p99", busiest[0].p99)]
            if busiest
            else []
        )
        for widget_id, title, series in (
            ("#plot-rate", "requests/s", [(s.service, s.rate) for s in busiest]),
            (
                "#plot-errors",
                "errors %",
                [(s.service, tuple(v * 100 for v in s.errors)) for s in busiest],
            ),
            (
                "#plot-latency",
                f"latency ms · {busiest[0].service}" if busiest else "latency ms",
                latency,
            ),
        ):
            widget = self.query_one(widget_id, PlotextPlot)
            plt = widget.plt
            plt.clear_data()
            plt.title(title)
            plt.xlabel("s")
            for label, values in series:
                points = [(i * bin_s, v) for i, v in enumerate(values) if not math.isnan(v)]
                if points:
                    xs, ys = zip(*points, strict=True)
                    plt.plot(list(xs), list(ys), label=label, marker="braille")
            widget.refresh()
