"""The traces view reads either source: the spans real Envoys reported to the collector, or the
spans derived from the run's records (sim, or a run without a tracer).

The recorded-spans tests replay spans real Envoy 1.40 sidecars reported on the local runner
(``tests/tui/testdata``); the ``envoy`` test runs lesson 01's first step on the real local runner
with tracing on and reads what its collector received.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui.fakes import TracingFakeRunner, recorded_envoy_spans
from tests.tui.pilot_helpers import wait_loaded, wait_run
from tests.tui.test_pilot import column, text_of
from tests.tui.test_snapshots import SIZES
from tui.app import MeshplayApp
from tui.traces import ENVOY, RECORDS, TraceIndex
from tui.traces_view import TracesPane


def test_envoy_spans_replace_the_ones_derived_from_records() -> None:
    index = TraceIndex()
    spans = recorded_envoy_spans()
    assert index.source == RECORDS
    index.add_spans(spans)
    assert index.source == ENVOY
    traces = index.newest(50)
    assert len(traces) == len({s.trace_id for s in spans}) == 20
    assert {t.trace_id for t in traces} == {s.trace_id for s in spans}
    assert all(t.source == ENVOY for t in traces)
    assert traces[0].start_s >= traces[-1].start_s  # newest first
    trace = traces[0]
    # Envoy's tree for one request: the gateway's server span, its client span to product
    # under it (parentId), product's server span under that
    assert [s.depth for s in trace.spans] == [0, 1, 2]
    assert trace.spans[0].name == "server api-gateway-v1 ← outside GET /api/products"
    assert trace.spans[1].name == "client api-gateway-v1 → product GET /products"
    assert trace.spans[2].name in (
        "server product-v1 ← api-gateway-v1 GET /products",
        "server product-v2 ← api-gateway-v1 GET /products",
    )
    assert trace.code == 200 and trace.root == "GET /api/products"
    root = next(s for s in spans if s.trace_id == trace.trace_id and not s.parent_id)
    assert trace.duration_ms == pytest.approx(root.duration_us / 1000, abs=0.01)


async def test_traces_view_shows_envoys_spans_when_the_runner_hands_them_over(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app({"local": TracingFakeRunner})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("5", "left_square_bracket", "left_square_bracket")  # step 1
        await pilot.pause()
        table = app.query_one("#trace-table", DataTable)
        assert str(table.border_title).startswith("traces · step 1 ·")
        assert "Envoy's spans (collector)" in str(table.border_title)
        recorded = {s.trace_id[-8:] for s in recorded_envoy_spans()}
        assert set(column(table, "TRACE")) == recorded
        waterfall = text_of(app, "#waterfall")
        assert "server api-gateway-v1 ← outside GET /api/products" in waterfall
        assert "client api-gateway-v1 → product GET /products" in waterfall
        await pilot.press("right_square_bracket")  # step 2: the runner handed over no spans
        await pilot.pause()
        assert "spans from the records" in str(table.border_title)
        assert set(column(table, "TRACE")).isdisjoint(recorded)
        assert "server api-gateway ← outside GET /api/products" in text_of(app, "#waterfall")


@SIZES
def test_traces_view_of_envoys_spans(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    async def traces(pilot: Pilot[None]) -> None:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("5", "left_square_bracket", "left_square_bracket")  # step 1
        await pilot.pause()

    app = make_app({"local": TracingFakeRunner})
    assert snap_compare(app, terminal_size=size, run_before=traces)


@pytest.mark.envoy
@pytest.mark.prometheus
@pytest.mark.slow
async def test_traces_view_reads_the_collector_of_a_real_local_run(
    make_app: Callable[..., MeshplayApp], tmp_path: Path
) -> None:
    from cluster.local.monitored import MonitoredLocalRunner

    def local() -> MonitoredLocalRunner:
        return MonitoredLocalRunner(tmp_path / "mesh", time_scale=0.3, tracing=100.0)

    app = make_app({"local": local})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "s")  # step 1 only
        await wait_run(pilot, timeout_s=150.0)
        await pilot.press("5")
        await pilot.pause()
        live = app.session.runs[("01-request-routing", "local")]
        assert live.spans_seen(0) > 0, "the collector received no spans"
        pane = app.query_one("#traces", TracesPane)
        assert pane.traces and all(t.source == ENVOY for t in pane.traces)
        table = app.query_one("#trace-table", DataTable)
        assert "Envoy's spans (collector)" in str(table.border_title)
        # every trace is a whole tree: the gateway's server span is the root, product's
        # server span sits under the gateway's client span (Envoy linked them by parentId)
        for trace in pane.traces:
            assert trace.spans[0].depth == 0 and trace.spans[0].kind == "server"
            assert [s.kind for s in trace.spans] == ["server", "client", "server"]
            assert [s.depth for s in trace.spans] == [0, 1, 2]
        assert "server api-gateway-v1 ← outside GET /api/products" in text_of(app, "#waterfall")
