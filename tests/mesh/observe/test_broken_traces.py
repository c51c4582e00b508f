"""A request through an app that drops the trace headers shows as pieces beside a stitched tree.

The newsfeed example's `feed` does not propagate trace context (`propagateTraceHeaders: false`),
so on sim its call to `ads` carries a new trace id, as Envoy's sidecar starts a new trace for a
request without one. `meshplay traces` shows such a request as the pieces Envoy reported and, beside
them, the tree put back together by timing.
"""

from __future__ import annotations

from pathlib import Path

from mesh.lesson import load_lesson
from mesh.observe.spans import CLIENT, SERVER
from mesh.observe.traces import Trace, broken_request, build_traces
from mesh.runner import RunOptions
from playground.commands.traces import format_traces, sim_spans
from sim import SimRunner

LESSON = Path(__file__).resolve().parents[3] / "docs/examples/newsfeed"


def _traces() -> list[Trace]:
    run = SimRunner().run(load_lesson(LESSON), RunOptions(seed=1, until_step=1))
    return build_traces(sim_spans(run, 0))


def test_the_request_breaks_where_the_app_drops_the_headers_and_is_stitched_back() -> None:
    traces = _traces()
    pieces = [t for t in traces if t.piece]
    assert pieces and all(
        t.root.kind == CLIENT and t.root.service.startswith("feed-") for t in pieces
    )
    broken = broken_request(traces)
    assert broken is not None
    main, *rest = broken.pieces
    assert main.root.kind == SERVER and main.root.service.startswith("web-")
    assert rest and all(p.piece for p in rest)
    stitched_ids = {t.span.id for t in broken.stitched.spans}
    assert stitched_ids == {t.span.id for p in broken.pieces for t in p.spans}
    (root,) = broken.stitched.roots
    assert root.service.startswith("web-")
    spans = {t.span.id: t.span for t in broken.stitched.spans}
    for piece in rest:
        under = spans[spans[piece.root.id].parent_id]
        assert under.kind == SERVER and under.service.startswith("feed-")


def test_traces_prints_the_pieces_beside_the_stitched_request() -> None:
    traces = _traces()
    text = format_traces(traces, 1)
    assert "one request in 2 pieces: an app did not propagate the trace headers" in text
    assert "the same request stitched back by timing" in text
    assert "one request in" not in format_traces(traces, 1, stitched=True)
