"""Pilot tests that drive every view of the TUI with deterministic fake runners."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Markdown, Static, Tree

from mesh.runner import RunEvent, StepPlan
from tests.tui.conftest import fake_factories
from tests.tui.fakes import BrokenRunner, FakeRunner
from tests.tui.pilot_helpers import wait_compare, wait_for, wait_loaded, wait_run
from tui.app import MeshplayApp
from tui.compare import SHARE_FOOTNOTE
from tui.topology_view import TopologyPane


def text_of(app: MeshplayApp, selector: str) -> str:
    """Plain text of a Static."""
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def column(table: DataTable[object], key: str) -> list[str]:
    """Plain text of one column."""
    out = []
    for row in range(table.row_count):
        cell = table.get_cell_at((row, table.get_column_index(key)))
        out.append(cell.plain if isinstance(cell, Text) else str(cell))
    return out


async def test_open_lesson_run_it_and_see_verdicts(
    make_app: Callable[..., MeshplayApp], data_dir: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.pause()
        assert app.active_tab == "lessons"
        page = app.query_one("#lesson-md", Markdown).source
        assert "## Objectives" in page
        assert "kind: VirtualService" in page  # the step's YAML is on the page
        await pilot.press("enter")  # open the highlighted lesson
        assert app.active_tab == "run"
        await pilot.press("r")
        await wait_run(pilot)
        assert "PASSED: 7/7" in text_of(app, "#run-status")
        checks = app.query_one("#checks", DataTable)
        assert column(checks, "VERDICT") == ["✔ pass"] * 3  # the last step, on screen
        edges = column(app.query_one("#edges", DataTable), "EDGE")
        assert edges == ["api-gateway->product", "outside->api-gateway"]
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert "Step 1/3" in text_of(app, "#step-title")
        assert column(checks, "MEASURED")[0] == "0.5"  # v1 share without routing rules
        assert "v1 50%" in text_of(app, "#split")
    saved = json.loads((data_dir / "progress.json").read_text())
    assert saved["lessons"]["01-request-routing"]["sim"]["passed"] is True


async def test_progress_marks_appear_in_the_lesson_tree_after_a_pass(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        tree = app.query_one("#lesson-tree", Tree)
        assert "(sim)" not in str(tree.get_node_at_line(1).label)  # type: ignore[union-attr]
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("1")
        await pilot.pause()
        assert "(sim)" in str(tree.get_node_at_line(1).label)  # type: ignore[union-attr]


async def test_hints_are_hidden_until_asked_for(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.pause()
        md = app.query_one("#lesson-md", Markdown)
        assert "trailing slash" not in md.source
        await pilot.press("h")
        assert "trailing slash" in md.source


async def test_run_failure_is_shown_not_raised(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app({"broken": BrokenRunner})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        assert "envoy binary not found" in text_of(app, "#run-status")


async def test_cancel_stops_a_run_early_and_keeps_no_progress(
    make_app: Callable[..., MeshplayApp], data_dir: Path
) -> None:
    app = make_app({"sim": lambda: FakeRunner("sim", delay_s=0.05, requests_per_step=400)})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await pilot.pause(0.2)
        await pilot.press("c")
        await wait_run(pilot)
        assert "CANCELLED after" in text_of(app, "#run-status")
        assert "partial run" in text_of(app, "#run-status")
    assert not (data_dir / "progress.json").exists()


async def test_topology_select_a_node_then_an_edge_then_explain(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        assert app.active_tab == "topology"
        pane = app.query_one("#topology", TopologyPane)
        assert pane.select("product", "api-gateway->product")
        # the sidecar's config comes from the translator, in a worker thread
        await wait_for(pilot, lambda: "listeners (" in text_of(app, "#topo-text"))
        node = text_of(app, "#topo-text")
        assert "product-v1-0" in node and "product-v2-0" in node  # its pods
        assert "circuit breakers" in node and "outlier ejection" in node
        assert "listeners" in node  # the sidecar's config from the translator
        await pilot.press("e")
        edge = text_of(app, "#topo-text")
        assert "api-gateway->product" in edge
        assert "recent requests" in edge
        assert "100% mutual TLS" in edge
        await pilot.press("x")
        explained = text_of(app, "#topo-text")
        assert "explain GET /products" in explained
        assert "cluster outbound|8080|" in explained


async def test_topology_shows_failing_edge_flags_and_explains_the_failure(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app({"local": lambda: FakeRunner("local", fail_every=4)})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        pane = app.query_one("#topology", TopologyPane)
        assert pane.row is not None or pane.select("outside")
        assert pane.select("product", "api-gateway->product")
        await pilot.press("e")
        assert "UO" in text_of(app, "#topo-text")
        await pilot.press("x")
        explained = text_of(app, "#topo-text")
        assert "flag UO: upstream overflow" in explained


async def test_compare_view_shows_two_runners_side_by_side(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app(fake_factories())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        await wait_compare(pilot)
        table = app.query_one("#cmp-table", DataTable)
        what = column(table, "WHAT")
        assert what[0] == "Step 1: No routing rules yet"
        assert "  api-gateway->product p50" in what
        assert "  api-gateway->product share v1" in what
        verdicts = column(table, "VERDICT")
        p50 = verdicts[what.index("  api-gateway->product p50")]
        assert "≈" in p50  # local's latency is twice sim's: within compare's 3x latency ratio
        assert any("DISAGREE" in v for v in verdicts)  # local fails 10 %: success check differs
        assert what[-1] == SHARE_FOOTNOTE
        assert "sim vs local" in text_of(app, "#cmp-status")


async def test_traces_view_draws_a_waterfall_of_the_latest_trace(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("5")
        table = app.query_one("#trace-table", DataTable)
        assert table.row_count == 40
        waterfall = text_of(app, "#waterfall")
        assert "server api-gateway ← outside GET /api/products" in waterfall
        assert "█" in waterfall
        await pilot.press("down")
        assert text_of(app, "#waterfall") != waterfall


async def test_mouse_clicks_switch_views_and_start_a_run(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.click("#--content-tab-tab-run")
        assert app.active_tab == "run"
        await pilot.click("#run-btn")
        await wait_run(pilot)
        assert "PASSED" in text_of(app, "#run-status")


async def test_usable_at_80x24(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        checks = app.query_one("#checks", DataTable)
        assert checks.region.height >= 3  # the verdicts are on screen, not pushed off it
        assert checks.region.bottom <= 23
        for key in ("3", "4", "5", "1"):
            await pilot.press(key)
            assert app.screen.focused is not None


async def test_a_pod_that_died_during_a_step_is_shown_with_the_step(
    make_app: Callable[..., MeshplayApp],
) -> None:
    """Pod deaths and restarts the runner reported (``StepResult.events``) are on the step's
    line, in red when something broke, with their time into the step."""

    def events(plan: StepPlan) -> list[RunEvent]:
        if plan.index != 0:
            return []
        return [
            RunEvent(0.4, "pod-died", "product-v1-0", "app exited (signal 9)"),
            RunEvent(1.1, "pod-restarted", "product-v1-0", "app ready again"),
        ]

    app = make_app({"local": lambda: FakeRunner("local", events=events)})
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("left_square_bracket", "left_square_bracket")
        title = text_of(app, "#step-title")
        assert "Step 1/3" in title
        assert "events: +0.40 s  pod-died  product-v1-0: app exited (signal 9); " in title
        assert "+1.10 s  pod-restarted  product-v1-0: app ready again" in title
        await pilot.press("right_square_bracket")
        assert "events:" not in text_of(app, "#step-title")
