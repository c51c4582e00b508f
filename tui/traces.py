"""Traces as a waterfall: the spans of one request tree, placed on a shared time axis.

Each sidecar a request crosses emits a span (Envoy's tracer: the client sidecar's span is the
parent of the server sidecar's span of the same hop); in meshplay every RequestRecord is such a
span, keyed by its trace id, on the simulator and on real Envoys alike. The waterfall shows where
the time of a request went: which downstream call was slow, which ran in parallel, which retried.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.metrics import edge_key
from mesh.records import Reporter, RequestRecord

__all__ = ["Span", "Trace", "TraceIndex", "bar", "group_traces", "span_name"]


@dataclass(frozen=True, slots=True)
class Span:
    """One proxy's view of one hop."""

    name: str
    kind: str
    start_ms: float
    duration_ms: float
    code: int
    flags: str
    depth: int = 0

    @property
    def end_ms(self) -> float:
        """Offset of the span's end from the trace start."""
        return self.start_ms + self.duration_ms


@dataclass(frozen=True, slots=True)
class Trace:
    """A request tree: its id, root request and spans ordered by start."""

    trace_id: str
    root: str
    start_s: float
    duration_ms: float
    code: int
    spans: tuple[Span, ...]

    @property
    def ok(self) -> bool:
        """The root answered without a 5xx."""
        return 0 < self.code < 500


def span_name(r: RequestRecord) -> str:
    """What one proxy's span of a hop says, named from that proxy's side: ``client
    api-gateway → product GET /products`` (the caller's sidecar sent it), ``server product ←
    api-gateway GET /products`` (the callee's sidecar received it)."""
    client, service = edge_key(r)
    if r.reporter is Reporter.SOURCE:
        return f"client {client} → {service} {r.method} {r.path}"
    return f"server {service} ← {client} {r.method} {r.path}"


def _span(r: RequestRecord, t0: float, depth: int) -> Span:
    kind = "client" if r.reporter is Reporter.SOURCE else "server"
    return Span(
        depth=depth,
        name=span_name(r),
        kind=kind,
        start_ms=(r.start_time - t0) * 1000.0,
        duration_ms=r.duration_ms,
        code=r.response_code,
        flags=r.flags_text,
    )


def _trace(trace_id: str, records: Sequence[RequestRecord]) -> Trace:
    """A trace from its spans' records (in any order)."""
    rs = sorted(
        records, key=lambda r: (r.start_time, -r.duration_ms, r.reporter is Reporter.DESTINATION)
    )
    t0 = rs[0].start_time
    end = max(r.start_time + r.duration_ms / 1000.0 for r in rs)
    root = rs[0]
    node_depth: dict[str, int] = {}
    spans = []
    for r in rs:
        client, service = edge_key(r)
        depth = node_depth.get(client, 0)
        node_depth.setdefault(service, depth + 1)
        spans.append(_span(r, t0, depth))
    return Trace(
        trace_id=trace_id,
        root=f"{root.method} {root.path}",
        start_s=t0,
        duration_ms=(end - t0) * 1000.0,
        code=root.response_code,
        spans=tuple(spans),
    )


class TraceIndex:
    """Spans grouped by trace as records arrive, so the newest traces of a step with thousands
    of requests are found without regrouping every record (the traces view asks on every step
    move and view switch during a run).

    Not thread safe: the owner (``tui.live.LiveRun``) adds and reads under its lock.
    """

    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        self._groups: dict[str, list[RequestRecord]] = {}
        self._latest: dict[str, float] = {}
        self._built: dict[str, tuple[int, Trace]] = {}
        self._newest: tuple[tuple[int, int], tuple[Trace, ...]] | None = None
        """The last answer of :meth:`newest`, for (records indexed, limit)."""
        self.records = 0
        """Records indexed so far."""
        self.add(records)

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Index more spans (records without a trace or request id are not traces)."""
        groups, latest = self._groups, self._latest
        for r in records:
            self.records += 1
            key = r.trace_id or r.request_id
            if not key:
                continue
            group = groups.get(key)
            if group is None:
                groups[key] = [r]
            else:
                group.append(r)
            if r.start_time > latest.get(key, -1.0):
                latest[key] = r.start_time

    def newest(self, limit: int = 50) -> list[Trace]:
        """The ``limit`` most recent traces, newest first (a trace is rebuilt only when it got
        new spans since it was last asked for)."""
        if self._newest is not None and self._newest[0] == (self.records, limit):
            return list(self._newest[1])
        latest = self._latest
        keys = heapq.nlargest(limit * 2, latest, key=lambda k: (latest[k], k))
        traces = []
        for key in keys:
            group = self._groups[key]
            built = self._built.get(key)
            if built is None or built[0] != len(group):
                built = (len(group), _trace(key, group))
                self._built[key] = built
            traces.append(built[1])
        traces.sort(key=lambda t: (t.start_s, t.trace_id), reverse=True)
        self._newest = ((self.records, limit), tuple(traces[:limit]))
        return traces[:limit]


def group_traces(records: Iterable[RequestRecord], limit: int = 50) -> list[Trace]:
    """The ``limit`` most recent traces, newest first."""
    return TraceIndex(records).newest(limit)


def bar(span: Span, total_ms: float, width: int) -> tuple[int, int]:
    """(offset, length) in cells of a span drawn over ``width`` cells; at least one cell."""
    if total_ms <= 0 or width <= 0:
        return 0, max(width, 1)
    offset = min(width - 1, int(span.start_ms / total_ms * width))
    length = max(1, round(span.duration_ms / total_ms * width))
    return offset, min(length, width - offset)


def spans_text(trace: Trace, width: int) -> Sequence[tuple[Span, str]]:
    """Each span with its bar drawn as text (``·`` before, ``█`` during, spaces after)."""
    out = []
    for span in trace.spans:
        offset, length = bar(span, trace.duration_ms, width)
        out.append((span, "·" * offset + "█" * length + " " * (width - offset - length)))
    return out
