"""The dashboard view (key 6): after a run, one row per service with its rate, error ratio and
latency percentiles, sparklines over the step's seconds; it follows the step on screen."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from tests.tui.pilot_helpers import wait_run
from tui.app import MeshplayApp
from tui.dashboard_view import DashboardPane


def shown(app: MeshplayApp) -> str:
    pane = app.query_one("#dashboard", DashboardPane)
    console = Console(width=150, record=True)
    console.print(pane.query_one("#dashboard").content)
    return console.export_text()


async def test_the_dashboard_shows_every_services_golden_signals(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.press("6")
        assert app.active_tab == "dashboard"
        assert "No traffic yet" in shown(app)
        await pilot.press("1", "enter", "r")
        await wait_run(pilot)
        await pilot.press("6")
        await pilot.pause()
        text = shown(app)
        lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
        assert set(lines) >= {"SERVICE", "product", "api-gateway"}
        assert "REQ/S" in lines["SERVICE"] and "P99" in lines["SERVICE"]
        assert any(c in lines["product"] for c in "▁▂▃▄▅▆▇█")
        pane = app.query_one("#dashboard", DashboardPane)
        assert app.session.step == 2
        await pilot.press("left_square_bracket")  # the dashboard follows the step on screen
        await pilot.pause()
        pane.refresh_dashboard()
        live = app.session.latest_run()
        assert live is not None and pane._source == (id(live), 1)
        from mesh.metrics import client_side

        assert pane.dashboard.count == len(client_side(live.records(1)))


async def test_the_dashboard_plots_rate_errors_and_latency_percentiles(
    make_app: Callable[..., MeshplayApp],
) -> None:
    from textual_plotext import PlotextPlot

    app = make_app()
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("6")
        await pilot.pause(0.3)
        screen = app.export_screenshot().replace("&#160;", " ")
        for title in ("requests/s", "errors %", "latency ms · "):
            assert title in screen, title
        rate = app.query_one("#plot-rate", PlotextPlot)
        drawn = "".join(str(line) for line in rate.render_lines(rate.region.reset_offset))
        assert "product" in drawn and "api-gateway" in drawn  # one line per busy service
        latency = app.query_one("#plot-latency", PlotextPlot)
        drawn = "".join(str(line) for line in latency.render_lines(latency.region.reset_offset))
        assert "p50" in drawn and "p99" in drawn
