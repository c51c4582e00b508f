"""Traces as trees: self time (a span's duration minus its children's), the slowest hop, and
pieces of one request (an app that did not propagate the trace headers) put back by timing."""

from __future__ import annotations

from mesh.observe.spans import Span
from mesh.observe.traces import build_traces, self_times, slowest_hop, stitch, waterfall


def span(
    trace: str, sid: str, kind: str, service: str, start: int, dur: int, parent: str = ""
) -> Span:
    return Span(
        trace_id=trace,
        id=sid,
        name=f"{service}:8080/*",
        kind=kind,
        timestamp_us=start,
        duration_us=dur,
        service=service,
        parent_id=parent,
        tags={"http.status_code": "200"},
    )


WHOLE = [
    span("t1", "a", "SERVER", "api-gateway-v1.shop", 0, 100),
    span("t1", "b", "CLIENT", "api-gateway-v1.shop", 10, 30, "a"),
    span("t1", "c", "SERVER", "product-v1.shop", 12, 26, "b"),
    span("t1", "d", "CLIENT", "api-gateway-v1.shop", 50, 40, "a"),
    span("t1", "e", "SERVER", "order-v1.shop", 52, 36, "d"),
]


def test_a_trace_is_a_tree_in_depth_first_order() -> None:
    (trace,) = build_traces(reversed(WHOLE))
    assert [(t.span.id, t.depth) for t in trace.spans] == [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("d", 1),
        ("e", 2),
    ]
    assert trace.duration_us == 100 and not trace.piece


def test_self_time_and_the_slowest_hop() -> None:
    (trace,) = build_traces(WHOLE)
    own = self_times(trace)
    assert own == {"a": 30, "b": 4, "c": 26, "d": 4, "e": 36}
    assert slowest_hop(trace).id == "e"
    lines = waterfall(trace, width=20)
    assert len(lines) == 5 and lines[4].endswith("<- slowest hop")


def test_pieces_are_stitched_under_the_server_span_that_encloses_them() -> None:
    pieces = [
        span("t1", "a", "SERVER", "api-gateway-v1.shop", 0, 100),
        span("t2", "b", "CLIENT", "api-gateway-v1.shop", 10, 30),  # a new trace: not propagated
        span("t2", "c", "SERVER", "product-v1.shop", 12, 26, "b"),
        span("t3", "x", "CLIENT", "frontend-v1.shop", 10, 30),  # no enclosing span: left alone
    ]
    traces = build_traces(pieces)
    assert len(traces) == 3 and sum(t.piece for t in traces) == 2
    stitched = stitch(traces)
    assert len(stitched) == 2
    whole = next(t for t in stitched if t.trace_id == "t1")
    assert [(t.span.id, t.depth) for t in whole.spans] == [("a", 0), ("b", 1), ("c", 2)]
    assert stitch(build_traces(WHOLE)) == build_traces(WHOLE)
