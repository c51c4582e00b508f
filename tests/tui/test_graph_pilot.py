"""The topology view's traffic graph driven by keys: navigation between nodes and edges, the
filters, "what changed", live updates during a run and the step slider (``[``/``]``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.tui.conftest import fake_factories
from tests.tui.fakes import FakeRunner
from tests.tui.pilot_helpers import wait_for, wait_loaded, wait_run
from tests.tui.test_pilot import text_of
from tui.app import MeshplayApp
from tui.graph_widget import GraphView
from tui.topology_view import TopologyPane


async def test_arrow_keys_walk_nodes_and_edges_and_the_side_panel_follows(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        pane = app.query_one("#topology", TopologyPane)
        graph = app.query_one("#graph", GraphView)
        assert app.focused is graph
        await pilot.press("down")  # the first node: the load generator, leftmost
        assert graph.node == "outside" and pane.row is not None and pane.row.node == "outside"
        assert "load generator" in text_of(app, "#topo-text").lower()
        await pilot.press("right")  # its first outgoing edge
        assert graph.edge == ("outside", "", "api-gateway", "v1")
        assert pane.picked is not None and pane.mode == "edge"
        detail = text_of(app, "#topo-text")
        assert "outside -> api-gateway v1" in detail and "recent requests" in detail
        await pilot.press("right")  # the edge's destination
        assert (graph.node, graph.edge) == ("api-gateway", None)
        await pilot.press("right")  # out of api-gateway
        assert graph.edge is not None and graph.edge[2] == "product"
        first = graph.edge
        await pilot.press("down")  # the next edge: to the other version
        assert graph.edge is not None and graph.edge[2] == "product" and graph.edge != first
        await pilot.press("left")  # back to the edge's source
        assert (graph.node, graph.edge) == ("api-gateway", None)
        await pilot.press("down")
        assert graph.node == "product"
        await wait_for(pilot, lambda: "listeners (" in text_of(app, "#topo-text"))
        assert "product-v1-0" in text_of(app, "#topo-text")  # the node's pods, as before
        await pilot.press("enter")  # as e: the edge into the node
        assert "api-gateway->product" in text_of(app, "#topo-text")


async def test_filters_hide_idle_only_errors_and_one_namespace(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app({"sim": lambda: FakeRunner("sim", fail_every=4)})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        graph = app.query_one("#graph", GraphView)
        drawn = graph.plain()
        assert "order" not in drawn  # idle (declared, no traffic): hidden like Kiali does
        assert "UO" in drawn
        await pilot.press("i")
        assert "order" in graph.plain() and any(not e.requests for e in graph.shown.edges)
        assert "idle shown" in str(graph.border_title)
        await pilot.press("i", "o")
        kept = graph.shown.edges
        assert any(e.target == "product" and dict(e.flags).get("UO") for e in kept)
        assert all(e.errors or e.flags for e in kept)
        assert len(kept) < len(graph.graph.filtered(hide_idle=True).edges)
        assert "errors only" in str(graph.border_title)
        await pilot.press("o", "f")
        assert graph.filters.namespace == "shop"
        assert all(
            "shop" in (graph.graph.node(e.source).namespace, graph.graph.node(e.target).namespace)  # type: ignore[union-attr]
            for e in graph.shown.edges
        )
        assert "ns shop" in str(graph.border_title)
        await pilot.press("f")
        assert graph.filters.namespace == ""
        await pilot.press("z")  # zoomed out: no latency on the edges
        assert graph.compact and "p99" not in graph.plain() and "UO" in graph.plain()
        await pilot.press("z")  # zoomed in: every number, the view scrolls
        assert not graph.compact and "p99" in graph.plain()


async def test_the_step_slider_shows_each_steps_graph_and_what_changed(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        graph = app.query_one("#graph", GraphView)
        versions: dict[int, set[str]] = {}
        for step in range(3):
            app.session.step = step
            app.query_one("#topology", TopologyPane).refresh_graph()
            await pilot.pause()
            versions[step] = {e.target_version for e in graph.shown.edges if e.target == "product"}
        assert versions[0] == {"v1", "v2"}  # no rules: round robin over both
        assert versions[1] == {"v1"}  # pinned to v1
        await pilot.press("left_square_bracket")  # from step 3 back to 2 with the key
        await pilot.pause()
        assert app.session.step == 1
        assert "step 2" in str(graph.border_title)
        assert {e.target_version for e in graph.shown.edges if e.target == "product"} == {"v1"}
        await pilot.press("d")  # what changed since step 1: v2 is gone, v1's share moved
        to = {key[3]: note for key, note in graph.changed.items() if key[2] == "product"}
        assert to["v2"] == "gone"
        assert to["v1"].startswith("share 50%")
        assert "Δ" in graph.plain() and "2 changed" in str(graph.border_title)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert "step 3" in str(graph.border_title)


async def test_the_graph_updates_live_during_a_run(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app(fake_factories(delay_s=0.25))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await pilot.press("3")
        pane = app.query_one("#topology", TopologyPane)
        graph = app.query_one("#graph", GraphView)
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while app.run_pane.running and time.monotonic() < deadline:
            if pane.mesh is not None:
                total = sum(e.requests for e in pane.mesh.edges if e.target == "product")
                if not seen or seen[-1] != total:
                    seen.append(total)
            await pilot.pause(0.05)
        await wait_run(pilot)
        # several drawings while requests arrived, each with more traffic than the one before
        # within a step (the view follows the running step)
        partial = [n for n in seen if 0 < n < 40]
        assert partial, seen
        assert "▶" in graph.plain()
