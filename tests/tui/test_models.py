"""The TUI's pure parts: progress file, live views, graph, traces, explain, compare, config."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from mesh.checks import Verdict
from mesh.compare import AGREE, DIFFER
from mesh.compare import compare_runs as mesh_compare_runs
from mesh.lesson import Lesson, load_lesson
from mesh.metrics import edge_stats
from mesh.observe.graph import Health, build_mesh_graph
from mesh.runner import RunOptions
from tests.tui.conftest import LESSONS
from tests.tui.fakes import FakeRunner
from tests.tui.graph_records import request
from tui.compare import SHARE_FOOTNOTE, CompareRow, compare_runs
from tui.explain import explain_request, recent_requests
from tui.graph import build_graph, edge_health
from tui.live import LiveRun, StepView
from tui.progress import ProgressStore, default_data_dir
from tui.proxy import summarise_config
from tui.traces import RECORDS, bar, group_traces


@pytest.fixture(scope="module")
def lesson() -> Lesson:
    return load_lesson(LESSONS / "01-request-routing")


def test_data_dir_prefers_meshplay_then_xdg_then_home() -> None:
    assert default_data_dir({"MESHPLAY_DATA_DIR": "/a", "XDG_DATA_HOME": "/b"}) == Path("/a")
    assert default_data_dir({"XDG_DATA_HOME": "/b"}) == Path("/b/meshplay")
    assert default_data_dir({}) == Path.home() / ".local/share/meshplay"


def test_progress_survives_a_restart_and_a_later_failure_keeps_the_pass(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    store.record("01-request-routing", "sim", passed=True, seed=1)
    store.record("01-request-routing", "sim", passed=False, seed=2)
    again = ProgressStore(tmp_path)
    p = again.get("01-request-routing", "sim")
    assert (p.passed, p.last_passed, p.runs, p.seed) == (True, False, 2, 2)
    assert again.passed_on("01-request-routing") == ("sim",)
    assert again.passed_on("02-traffic-shifting") == ()


def test_corrupt_progress_file_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text("{not json", encoding="utf-8")
    assert ProgressStore(tmp_path).passed_on("01-request-routing") == ()


def test_live_run_publishes_every_step_complete_and_throttles_the_rest(lesson: Lesson) -> None:
    views: list[StepView] = []
    live = LiveRun(lesson, "fake", publish=views.append, interval=60.0)
    run = FakeRunner(requests_per_step=40, batch=5).run(lesson, live.options())
    # with a one-minute throttle only the first batch and each step's completion get through
    completed = [v for v in views if v.fraction == 1.0]
    assert [v.index for v in completed] == [0, 1]
    assert completed[0].requests == 40
    live.finish(run)
    final = live.latest_view(2)
    assert final.final and final.passed
    assert [c.verdict for c in final.checks] == [Verdict.PASS] * 3


def test_live_run_cancel_reaches_the_runner(lesson: Lesson) -> None:
    live = LiveRun(lesson, "fake", cancel=threading.Event())
    live.cancel.set()
    run = FakeRunner().run(lesson, live.options())
    assert run.cancelled and run.steps == ()  # cancelled before the first step: none starts


def test_graph_colours_edges_by_success_and_locks_mtls_edges(lesson: Lesson) -> None:
    live = LiveRun(lesson, "fake")
    run = FakeRunner(fail_every=5).run(lesson, live.options())
    live.finish(run)
    view = live.latest_view(0)
    graph = build_graph(lesson, view.rows, run.steps[0].records)
    product = graph.edge("api-gateway", "product")
    assert (
        product is not None and product.health is Health.FAILURE
    )  # 20 % 5xx: Kiali fails from 10 %
    assert product.padlock == "🔒"
    gateway = graph.edge("outside", "api-gateway")
    assert gateway is not None and gateway.padlock == "🔓"  # the load generator has no sidecar
    assert graph.edge("order", "payment") is not None  # declared in behavior.yaml, idle here
    assert graph.edge("order", "payment").health is Health.IDLE  # type: ignore[union-attr]
    rows = graph.tree()
    assert rows[0].node == "outside"
    assert [r.node for r in rows[1:3]] == ["api-gateway", "product"]  # the busy path first
    assert sum(1 for r in rows if r.node == "product" and not r.repeated) == 1


def test_traces_are_newest_first_with_nested_spans(lesson: Lesson) -> None:
    run = FakeRunner().run(lesson, RunOptions(until_step=1))
    traces = group_traces(run.records, limit=5)
    assert len(traces) == 5
    assert traces[0].start_s > traces[-1].start_s
    spans = traces[0].spans
    # the tree Envoy's tracer reports: the gateway's server span, its client span to product
    # under it, product's server span under that
    assert [s.depth for s in spans] == [0, 1, 2]
    assert [s.kind for s in spans] == ["server", "client", "server"]
    assert spans[0].name == "server api-gateway ← outside GET /api/products/grinder"
    assert spans[1].name == "client api-gateway → product GET /products/grinder"
    assert spans[2].name.startswith("server product-v")
    assert spans[2].name.endswith(" ← api-gateway GET /products/grinder")
    assert spans[0].duration_ms >= spans[1].duration_ms  # the gateway's span contains the call
    assert traces[0].source == RECORDS
    offset, length = bar(spans[1], traces[0].duration_ms, 40)
    assert 0 < offset < 40 and offset + length <= 40


def test_explain_tells_each_hop_and_what_a_flag_means(lesson: Lesson) -> None:
    run = FakeRunner(fail_every=2).run(lesson, RunOptions(until_step=1))
    failed = next(r for r in recent_requests(run.records, "api-gateway", "product") if not r.ok)
    hops = explain_request(run.records, failed)
    assert [h.edge for h in hops] == ["outside->api-gateway", "api-gateway->product"]
    text = "\n".join(hops[1].lines)
    assert "flag UO: upstream overflow" in text
    assert "cluster outbound|8080||product.shop.svc.cluster.local" in text


def test_compare_shows_mesh_compare_rows_latency_as_information_and_disagreeing_verdicts(
    lesson: Lesson,
) -> None:
    a = FakeRunner("sim", requests_per_step=400).run(lesson, RunOptions())
    b = FakeRunner("local", requests_per_step=400, latency_ms=12.0, fail_every=10).run(
        lesson, RunOptions()
    )
    rows = compare_runs(a, b)
    assert next(r.what for r in rows if r.kind == "step") == "Step 1: No routing rules yet"
    p99 = next(r for r in rows if r.what == "api-gateway->product p99")
    assert p99.info and p99.agree and p99.delta > 0 and p99.unit == "ms"
    success = next(r for r in rows if r.what == "outside->api-gateway success")
    assert not success.agree and math.isclose(success.delta, -0.1)
    share = next(r for r in rows if r.what == "api-gateway->product share v2")
    assert share.verdict == AGREE and share.unit == "%"
    assert any(r.what == "api-gateway->product flag UO" and not r.agree for r in rows)
    checks = [r for r in rows if r.kind == "check"]
    assert any(not r.agree and r.verdict_b is Verdict.FAIL for r in checks)
    assert rows[-1] == CompareRow("note", SHARE_FOOTNOTE)
    same = compare_runs(a, a)
    assert all(r.agree and not r.info for r in same if r.kind == "metric")


def test_compare_gives_the_verdicts_meshplay_compare_prints(lesson: Lesson) -> None:
    a = FakeRunner("sim", requests_per_step=400).run(lesson, RunOptions())
    b = FakeRunner("local", requests_per_step=400, fail_every=10).run(lesson, RunOptions())
    cli = [r.verdict for r in mesh_compare_runs(a, b).rows]
    shown = [r.verdict for r in compare_runs(a, b) if r.kind in ("metric", "check")]
    assert shown == cli and DIFFER in shown


def test_config_summary_names_listeners_route_vhosts_and_clusters() -> None:
    summary = summarise_config(
        {
            "listeners": [{"name": "virtualOutbound"}, {"name": "0.0.0.0_8080"}],
            "routes": [{"name": "8080", "virtual_hosts": [{"name": f"h{i}"} for i in range(5)]}],
            "clusters": [{"name": "outbound|8080|v1|product.shop.svc.cluster.local"}],
        }
    )
    assert summary.listeners == ("virtualOutbound", "0.0.0.0_8080")
    assert summary.routes == ("8080: h0, h1, h2 +2",)
    assert summary.clusters == ("outbound|8080|v1|product.shop.svc.cluster.local",)


@pytest.mark.parametrize(
    ("codes", "health"),
    [
        ({200: 100}, Health.HEALTHY),
        ({200: 99, 503: 1}, Health.DEGRADED),  # any 5xx: degraded (a 99 % rule said healthy)
        ({200: 91, 500: 9}, Health.DEGRADED),
        ({200: 90, 503: 10}, Health.FAILURE),  # 10 % 5xx fails
        ({200: 90, 404: 10}, Health.HEALTHY),  # 4xx only degrade above 10 % (90 % said degraded)
        ({200: 85, 403: 15}, Health.DEGRADED),
        ({200: 80, 429: 20}, Health.FAILURE),
        ({200: 95, 0: 5}, Health.DEGRADED),  # no response (code 0) counts as a 5xx
    ],
)
def test_the_run_table_and_side_panel_colour_edges_like_the_graph(
    codes: dict[int, int], health: Health
) -> None:
    """The per-edge table and the topology side panel colour an edge by the same thresholds
    as the drawn graph (mesh.observe.graph: Kiali's defaults), not a success-rate rule of
    their own: both read the same records the same way."""
    records = [
        r
        for code, n in codes.items()
        for _ in range(n)
        for r in request("api-gateway", "v1", "product", "v1", code=code)
    ]
    (stats,) = edge_stats(records, duration_s=1.0)
    assert edge_health(stats) is health
    (edge,) = build_mesh_graph(records, 1.0).edges
    assert edge.health is health
