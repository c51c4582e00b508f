"""Traces as a waterfall: the spans of one request tree, placed on a shared time axis.

Each sidecar a request crosses reports a span (Envoy's tracer: the client sidecar's span is the
parent of the server sidecar's span of the same hop, and the server span is the parent of the
client spans of the calls its app made while serving it). The view reads spans in Zipkin's v2
shape (:class:`mesh.observe.spans.Span`) from either of two sources, and draws them the same way:

* **Envoy's tracer**: on a runner whose proxies trace (``local`` with tracing), the spans the
  collector received, handed to the run after each step (``RunOptions.on_spans``);
* **the records**: otherwise (the simulator, or a run without a tracer), the spans derived
  from the run's records as Envoy's tracer would report them
  (:func:`mesh.observe.spans.spans_from_records`).

The waterfall shows where the time of a request went: which downstream call was slow, which
ran in parallel, which retried.
"""

from __future__ import annotations

import heapq
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mesh.envoy_api.names import parse_cluster_name
from mesh.observe import spans as zipkin
from mesh.observe.traces import build_traces
from mesh.records import RequestRecord

__all__ = [
    "ENVOY",
    "RECORDS",
    "Span",
    "Trace",
    "TraceIndex",
    "bar",
    "group_traces",
    "spans_text",
    "trace_of",
]

ENVOY = "envoy"
"""Source of traces whose spans Envoy's tracer reported to the collector."""
RECORDS = "records"
"""Source of traces whose spans were derived from the run's records."""


@dataclass(frozen=True, slots=True)
class Span:
    """One proxy's span of one hop, as drawn: its place in the tree and on the time axis."""

    name: str
    kind: str
    """``client`` (the caller's sidecar sent the request) or ``server`` (the callee's got it)."""
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
    """A request tree: its id, root request and spans in tree order (children by start)."""

    trace_id: str
    root: str
    start_s: float
    """Seconds from the first span the step's traces hold to this trace's first span."""
    duration_ms: float
    code: int
    spans: tuple[Span, ...]
    source: str = RECORDS
    """:data:`ENVOY` or :data:`RECORDS`: where the spans came from."""

    @property
    def ok(self) -> bool:
        """The root answered without a 5xx."""
        return 0 < self.code < 500


def _workload(service: str) -> str:
    """``product-v1.shop`` (a proxy's node cluster, Envoy's Zipkin service name) -> ``product-v1``."""
    return service.partition(".")[0] or "?"


def _callee(span: zipkin.Span) -> str:
    """The service a client span called: the host of its upstream cluster
    (``outbound|8080|v1|product.shop.svc.cluster.local`` -> ``product``), else of its name
    (the route's decorator, ``product.shop.svc.cluster.local:8080/*``)."""
    parsed = parse_cluster_name(span.tags.get("upstream_cluster", ""))
    host = parsed.host if parsed is not None and parsed.host else span.name
    return host.partition(":")[0].partition("/")[0].partition(".")[0] or "?"


def _request(span: zipkin.Span) -> str:
    """``GET /api/products`` from the span's ``http.method`` and ``http.url`` tags."""
    url = span.tags.get("http.url", "")
    path = urllib.parse.urlsplit(url).path if "://" in url else url
    return f"{span.tags.get('http.method', '')} {path or span.name}".strip()


def _label(span: zipkin.Span, parent: zipkin.Span | None) -> str:
    """``client api-gateway → product GET /products`` (the caller's sidecar sent it),
    ``server product-v1 ← api-gateway GET /products`` (the callee's sidecar received it; the
    caller is its parent client span's proxy, ``outside`` when it has none)."""
    if span.kind == zipkin.CLIENT:
        return f"client {_workload(span.service)} → {_callee(span)} {_request(span)}"
    caller = (
        _workload(parent.service)
        if parent is not None and parent.kind == zipkin.CLIENT
        else "outside"
    )
    return f"server {_workload(span.service)} ← {caller} {_request(span)}"


def trace_of(
    trace_id: str, spans: Sequence[zipkin.Span], origin_us: int, source: str = RECORDS
) -> Trace | None:
    """The drawable trace of one trace id's Zipkin spans (None when it has none);
    ``origin_us`` is the time ``start_s`` counts from."""
    if not spans:
        return None
    tree = build_traces(spans)[0]
    by_id = {s.id: s for s in spans}
    t0 = tree.start_us
    drawn = []
    for t in tree.spans:
        s = t.span
        drawn.append(
            Span(
                name=_label(s, by_id.get(s.parent_id) if s.parent_id else None),
                kind="client" if s.kind == zipkin.CLIENT else "server",
                start_ms=(s.timestamp_us - t0) / 1000.0,
                duration_ms=s.duration_us / 1000.0,
                code=s.status,
                flags=s.tags.get("response_flags", "-") or "-",
                depth=t.depth,
            )
        )
    root = tree.root
    return Trace(
        trace_id=trace_id,
        root=_request(root),
        start_s=(t0 - origin_us) / 1e6,
        duration_ms=tree.duration_us / 1000.0,
        code=root.status,
        spans=tuple(drawn),
        source=source,
    )


class TraceIndex:
    """Spans grouped by trace as they arrive, so the newest traces of a step with thousands
    of requests are found without regrouping everything (the traces view asks on every step
    move and view switch during a run).

    Records are indexed as they arrive; Envoy's spans (:meth:`add_spans`) when the runner
    hands them over. Once a step has Envoy's spans, the view shows those, else the spans derived
    from the records. Not thread safe: the owner (``tui.live.LiveRun``) adds and reads under
    its lock.
    """

    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        self._records: dict[str, list[RequestRecord]] = {}
        self._record_latest: dict[str, float] = {}
        self._spans: dict[str, list[zipkin.Span]] = {}
        self._span_latest: dict[str, float] = {}
        self._origin = {RECORDS: float("inf"), ENVOY: float("inf")}
        """Per source, the earliest start seen (seconds): what ``start_s`` counts from."""
        self._built: dict[tuple[str, str], tuple[int, float, Trace | None]] = {}
        self._newest: tuple[tuple[int, int, int], tuple[Trace, ...]] | None = None
        """The last answer of :meth:`newest`, for (records, spans indexed, limit)."""
        self.records = 0
        """Records indexed so far."""
        self.spans = 0
        """Envoy spans indexed so far."""
        self.add(records)

    @property
    def source(self) -> str:
        """Where :meth:`newest` takes its traces from: :data:`ENVOY` once any Envoy span came."""
        return ENVOY if self._spans else RECORDS

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Index more records (those without a trace or request id are not traces)."""
        groups, latest = self._records, self._record_latest
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
            self._origin[RECORDS] = min(self._origin[RECORDS], r.start_time)

    def add_spans(self, spans: Iterable[zipkin.Span]) -> None:
        """Index spans Envoy's tracer reported."""
        groups, latest = self._spans, self._span_latest
        for s in spans:
            if not s.trace_id:
                continue
            self.spans += 1
            groups.setdefault(s.trace_id, []).append(s)
            start = s.timestamp_us / 1e6
            if start > latest.get(s.trace_id, -1.0):
                latest[s.trace_id] = start
            self._origin[ENVOY] = min(self._origin[ENVOY], start)

    def _build(self, source: str, key: str) -> Trace | None:
        origin = self._origin[source]
        size = len(self._spans[key]) if source == ENVOY else len(self._records[key])
        built = self._built.get((source, key))
        if built is not None and built[0] == size and built[1] == origin:
            return built[2]
        if source == ENVOY:
            spans: Sequence[zipkin.Span] = self._spans[key]
        else:
            group = self._records[key]
            if any(r.trace_id != key for r in group):  # keyed by request id: one trace
                group = [replace(r, trace_id=key) for r in group]
            spans = zipkin.spans_from_records(group)
        trace = trace_of(key, spans, round(origin * 1e6), source)
        self._built[(source, key)] = (size, origin, trace)
        return trace

    def newest(self, limit: int = 50) -> list[Trace]:
        """The ``limit`` most recent traces, newest first (a trace is rebuilt only when it got
        new spans since it was last asked for)."""
        state = (self.records, self.spans, limit)
        if self._newest is not None and self._newest[0] == state:
            return list(self._newest[1])
        source = self.source
        latest = self._span_latest if source == ENVOY else self._record_latest
        keys = heapq.nlargest(limit * 2, latest, key=lambda k: (latest[k], k))
        traces = [t for t in (self._build(source, key) for key in keys) if t is not None]
        traces.sort(key=lambda t: (t.start_s, t.trace_id), reverse=True)
        self._newest = (state, tuple(traces[:limit]))
        return traces[:limit]


def group_traces(records: Iterable[RequestRecord], limit: int = 50) -> list[Trace]:
    """The ``limit`` most recent traces of some records, newest first."""
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
