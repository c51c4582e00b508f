"""The traffic graph model (mesh.observe.graph), its DOT form and its terminal drawing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mesh.observe.graph import GraphEdge, Health, NodeKind, build_mesh_graph, changes
from mesh.observe.graph_dot import to_dot
from tests.tui.graph_records import generated_mesh, many, request
from tui.graph_canvas import draw, to_svg


def canary(v2: int) -> list:  # type: ignore[type-arg]
    return many(100 - v2, "api-gateway", "v1", "product", "v1") + many(
        v2, "api-gateway", "v1", "product", "v2"
    )


def test_a_canary_split_is_two_edges_with_their_shares_and_a_padlock() -> None:
    graph = build_mesh_graph(canary(10), duration_s=2.0)
    v1 = graph.edge(("api-gateway", "v1", "product", "v1"))
    v2 = graph.edge(("api-gateway", "v1", "product", "v2"))
    assert v1 is not None and v2 is not None
    assert (v1.share, v2.share) == (0.9, 0.1)
    assert (v1.requests, v1.rps) == (90, 45.0)
    assert v1.padlock == "🔒" and v1.mtls == 1.0  # the server side saw mutual TLS
    assert v1.health is Health.HEALTHY
    product = graph.node("product")
    assert product is not None and product.workloads == ("v1", "v2")
    assert product.kind is NodeKind.SERVICE and product.namespace == "shop"
    assert graph.roots() == ["api-gateway"]


@pytest.mark.parametrize(
    ("failed", "code", "health"),
    [
        (0, 503, Health.HEALTHY),
        (1, 503, Health.DEGRADED),  # any 5xx above 0 % is degraded (Kiali's default)
        (10, 503, Health.FAILURE),  # 10 % 5xx fails
        (10, 404, Health.HEALTHY),  # 4xx: degraded only above 10 %
        (15, 404, Health.DEGRADED),
        (20, 404, Health.FAILURE),
    ],
)
def test_health_follows_kialis_default_thresholds(failed: int, code: int, health: Health) -> None:
    records = many(100 - failed, "a", "v1", "b", "v1") + many(
        failed, "a", "v1", "b", "v1", code=code
    )
    edge = build_mesh_graph(records, 1.0).edge(("a", "v1", "b", "v1"))
    assert edge is not None
    assert edge.health is health
    assert edge.errors == failed


def test_a_local_reply_ends_at_the_service_with_its_flag_and_counts_as_an_error() -> None:
    records = many(50, "api-gateway", "v1", "product", "v1") + many(
        50, "api-gateway", "v1", "product", "unknown", code=503, flags=("UO",)
    )
    graph = build_mesh_graph(records, 1.0)
    overflow = graph.edge(("api-gateway", "v1", "product", ""))
    assert overflow is not None
    assert overflow.flags == (("UO", 50),)
    assert overflow.error_ratio == 1.0 and overflow.health is Health.FAILURE
    assert overflow.mtls is None and overflow.padlock == ""  # no server saw these
    assert graph.node("product").health is Health.FAILURE  # type: ignore[union-attr]
    drawn = draw(graph).plain()
    assert "△ service" in drawn and "UO" in drawn


def test_node_kinds_are_told_apart() -> None:
    records = [
        *many(3, "outside", "", "ingress-target", "v1"),
        *request("ingress", "", "web", "v1"),
        *request("web", "v1", "PassthroughCluster", ""),
        *request("web", "v1", "BlackHoleCluster", "", code=502, flags=("UH",)),
        *request("web", "v1", "api", "", host="api.example.com"),
    ]
    graph = build_mesh_graph(records, 1.0)
    kinds = {n.id: n.kind for n in graph.nodes}
    assert kinds["outside"] is NodeKind.CLIENT
    assert kinds["ingress"] is NodeKind.GATEWAY
    assert kinds["PassthroughCluster"] is NodeKind.PASSTHROUGH
    assert kinds["BlackHoleCluster"] is NodeKind.BLACKHOLE
    assert kinds["api.example.com"] is NodeKind.EXTERNAL
    drawn = draw(graph).plain()
    for mark in ("◇ load generator", "⇶ ingress", "⇢ PassthroughCluster", "● BlackHoleCluster"):
        assert mark in drawn


def test_filters_hide_idle_edges_keep_errors_or_one_namespace() -> None:
    records = [
        *many(10, "a", "v1", "b", "v1"),
        *many(10, "a", "v1", "c", "v1", code=500),
        *many(5, "x", "v1", "y", "v1", namespace="other"),
    ]
    graph = build_mesh_graph(records, 1.0, declared=[("b", "d")])
    assert graph.edge(("b", "", "d", "")) is not None  # declared, idle
    assert graph.filtered(hide_idle=True).edge(("b", "", "d", "")) is None
    assert {n.id for n in graph.filtered(hide_idle=True).nodes} == {"a", "b", "c", "x", "y"}
    only = graph.filtered(only_errors=True)
    assert [e.key for e in only.edges] == [("a", "v1", "c", "v1")]
    assert {n.id for n in only.nodes} == {"a", "c"}
    other = graph.filtered(namespace="other")
    assert {n.id for n in other.nodes} == {"x", "y"}
    assert graph.namespaces() == ["other", "shop"]


def test_what_changed_between_two_steps() -> None:
    before = build_mesh_graph(canary(10), 1.0)
    after = build_mesh_graph(
        many(50, "api-gateway", "v1", "product", "v1")
        + many(40, "api-gateway", "v1", "product", "v2")
        + many(10, "api-gateway", "v1", "product", "v2", code=503),
        1.0,
    )
    diff = changes(before, after)
    assert diff[("api-gateway", "v1", "product", "v1")] == "share 90% -> 50%"
    assert "health healthy -> failure" in diff[("api-gateway", "v1", "product", "v2")]
    assert changes(after, after) == {}
    assert changes(before, build_mesh_graph(many(5, "a", "v1", "b", "v1"), 1.0)) == {
        ("api-gateway", "v1", "product", "v1"): "gone",
        ("api-gateway", "v1", "product", "v2"): "gone",
        ("a", "v1", "b", "v1"): "new",
    }


def test_drawing_has_a_box_per_node_an_arrow_per_edge_and_no_overlaps() -> None:
    graph = build_mesh_graph(generated_mesh(30), 10.0)
    drawing = draw(graph)
    assert set(drawing.boxes) == {n.id for n in graph.nodes}
    boxes = list(drawing.boxes.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_x = a.x < b.x + b.w and b.x < a.x + a.w
            overlap_y = a.y < b.y + b.h and b.y < a.y + a.h
            assert not (overlap_x and overlap_y), (a, b)
    assert drawing.plain().count("▶") == len(graph.edges)
    assert len(drawing.edge_order) == len(graph.edges)
    # left to right: every edge goes from a box to a box further right
    for e in graph.edges:
        assert drawing.boxes[e.source].x < drawing.boxes[e.target].x


def test_selected_node_and_changed_edges_are_marked() -> None:
    graph = build_mesh_graph(canary(10), 1.0)
    key = ("api-gateway", "v1", "product", "v2")
    drawing = draw(graph, selected_node="product", changed={key: "new"})
    assert "Δ 🔒 10%" in drawing.plain()
    box = drawing.boxes["product"]
    line = drawing.lines[box.y]
    styles = {str(span.style) for span in line.spans}
    assert any("reverse" in s for s in styles)
    assert "reverse" not in str(draw(graph).lines[box.y].spans)


def test_svg_and_dot_exports_parse() -> None:
    import xml.etree.ElementTree as ET

    graph = build_mesh_graph(canary(10), 1.0)
    root = ET.fromstring(to_svg(draw(graph)))
    assert root.tag.endswith("svg")
    dot = to_dot(graph, "lesson 02 step 1")
    assert dot.startswith("digraph mesh {") and "rankdir=LR" in dot
    assert '"api-gateway/v1" -> "product/v2"' in dot
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (bin/setup --test installs it)")
    out = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True)
    ET.fromstring(out.stdout)


def test_edge_names_read_like_kiali() -> None:
    assert GraphEdge("a", "v1", "b", "").name == "a v1 -> b"


def test_a_call_back_to_an_earlier_app_is_drawn_below_with_its_numbers() -> None:
    records = many(5, "a", "v1", "b", "v1") + many(5, "b", "v1", "a", "v1")
    records += many(5, "b", "v1", "c", "v1")
    drawing = draw(build_mesh_graph(records, 1.0))
    lines = drawing.plain().splitlines()
    assert drawing.plain().count("▶") == 3  # a->b, b->c and the call back b->a
    below = max(box.y + box.h for box in drawing.boxes.values())
    assert "50% 5.0/s" in lines[below]  # b->a's numbers on its run under the boxes
    assert lines[drawing.boxes["a"].y + 1].lstrip().startswith("┌▶")


def test_destinations_outside_the_mesh_have_no_namespace() -> None:
    records = request("web", "v1", "PassthroughCluster", "", namespace="unknown")
    graph = build_mesh_graph(records, 1.0)
    assert graph.node("PassthroughCluster").namespace == ""  # type: ignore[union-attr]


def test_edges_enter_at_their_workloads_row_and_a_second_caller_says_which() -> None:
    records = many(5, "a", "v1", "c", "v1") + many(3, "b", "v1", "c", "v1")
    records += many(4, "a", "v1", "c", "v2")
    drawing = draw(build_mesh_graph(records, 1.0))
    lines = drawing.plain().splitlines()
    box = drawing.boxes["c"]
    v1_row, v2_row = lines[box.y + 1], lines[box.y + 2]
    assert "56% 5.0/s" in v1_row and "▶│ v1" in v1_row  # the busiest caller on v1's row
    assert "44% 4.0/s" in v2_row and "▶│ v2" in v2_row
    extra = lines[box.y + 3]
    assert "→v1 " in extra and "100% 3.0/s" in extra  # b also reaches v1, on a row of its own
