"""Traces: spans grouped into trees, where the time went, and pieces of one request put back.

A trace is the spans of one trace id, linked by ``parentId``. :func:`build_traces` orders each
as a tree (depth-first, children by start time). A span's *self time* is its duration minus
the time its children cover: for a server span, the time the app itself spent (plus its
sidecar); the hop with the most self time is where a slow request lost its time
(:func:`slowest_hop`).

When an app does not copy the trace headers onto its downstream calls, Envoy starts a new
trace at each of them: one request becomes several traces, *pieces*, each with a client span
as root. :func:`stitch` puts the pieces back the way a person would, by timing: a piece whose
root is a client span from workload W, inside a server span of W in another trace, belongs
under that server span.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mesh.observe.spans import CLIENT, SERVER, Span

__all__ = [
    "Broken",
    "Trace",
    "TreeSpan",
    "broken_request",
    "build_traces",
    "self_times",
    "slowest_hop",
    "stitch",
    "waterfall",
]


@dataclass(frozen=True, slots=True)
class TreeSpan:
    """A span in its tree: its depth (0 for a root)."""

    span: Span
    depth: int


@dataclass(frozen=True, slots=True)
class Trace:
    """One trace id's spans in tree order."""

    trace_id: str
    spans: tuple[TreeSpan, ...]

    @property
    def roots(self) -> list[Span]:
        """Spans without a parent in this trace (one for a whole tree)."""
        return [t.span for t in self.spans if t.depth == 0]

    @property
    def start_us(self) -> int:
        """When the first span began."""
        return min(t.span.timestamp_us for t in self.spans)

    @property
    def duration_us(self) -> int:
        """From the first span's start to the last span's end."""
        return max(t.span.end_us for t in self.spans) - self.start_us

    @property
    def root(self) -> Span:
        """The earliest root."""
        return min(self.roots, key=lambda s: s.timestamp_us)

    @property
    def error(self) -> bool:
        """The root answered with an error."""
        return self.root.error

    @property
    def piece(self) -> bool:
        """Its root is a client span: the call that started it was not traced itself (its app
        did not propagate the trace headers, or the caller's span was not sampled)."""
        return self.root.kind == CLIENT and self.root.service != ""


def _tree(trace_id: str, spans: Sequence[Span]) -> Trace:
    ids = {s.id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for s in spans:
        if s.parent_id and s.parent_id in ids and s.parent_id != s.id:
            children[s.parent_id].append(s)
        else:
            roots.append(s)
    ordered: list[TreeSpan] = []
    seen: set[str] = set()

    def visit(span: Span, depth: int) -> None:
        if span.id in seen:
            return
        seen.add(span.id)
        ordered.append(TreeSpan(span, depth))
        for child in sorted(children.get(span.id, []), key=lambda c: (c.timestamp_us, c.kind)):
            visit(child, depth + 1)

    for root in sorted(roots, key=lambda r: (r.timestamp_us, r.kind)):
        visit(root, 0)
    return Trace(trace_id, tuple(ordered))


def build_traces(spans: Iterable[Span]) -> list[Trace]:
    """Spans grouped by trace id, each a tree; traces in start order."""
    groups: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        groups[s.trace_id].append(s)
    traces = [_tree(trace_id, group) for trace_id, group in groups.items()]
    return sorted(traces, key=lambda t: (t.start_us, t.trace_id))


def self_times(trace: Trace) -> dict[str, int]:
    """Span id -> its duration minus the union of its children's (microseconds)."""
    children: dict[str, list[Span]] = defaultdict(list)
    for t in trace.spans:
        if t.span.parent_id:
            children[t.span.parent_id].append(t.span)
    out = {}
    for t in trace.spans:
        span = t.span
        covered = 0
        cursor = span.timestamp_us
        for child in sorted(children.get(span.id, []), key=lambda c: c.timestamp_us):
            begin = max(cursor, child.timestamp_us, span.timestamp_us)
            end = min(child.end_us, span.end_us)
            if end > begin:
                covered += end - begin
                cursor = end
        out[span.id] = max(0, span.duration_us - covered)
    return out


def slowest_hop(trace: Trace) -> Span:
    """The server span with the most self time (the app that took the time), or any span when
    the trace has no server span."""
    own = self_times(trace)
    servers = [t.span for t in trace.spans if t.span.kind == SERVER] or [
        t.span for t in trace.spans
    ]
    return max(servers, key=lambda s: own[s.id])


def stitch(traces: Sequence[Trace]) -> list[Trace]:
    """Pieces of one request put back together by timing (see the module docstring); whole
    traces are left as they are."""
    servers: dict[str, list[tuple[Span, Trace]]] = defaultdict(list)
    for trace in traces:
        for t in trace.spans:
            if t.span.kind == SERVER:
                servers[t.span.service].append((t.span, trace))
    parent_of: dict[str, tuple[Span, Trace]] = {}
    for trace in traces:
        if not trace.piece:
            continue
        root = trace.root
        inside = [
            (s, tr)
            for s, tr in servers.get(root.service, ())
            if tr is not trace and s.timestamp_us <= root.timestamp_us and root.end_us <= s.end_us
        ]
        if inside:
            parent_of[trace.trace_id] = max(inside, key=lambda p: p[0].timestamp_us)
    if not parent_of:
        return list(traces)

    def home(trace: Trace) -> Trace:
        seen = {trace.trace_id}
        while trace.trace_id in parent_of:
            trace = parent_of[trace.trace_id][1]
            if trace.trace_id in seen:
                break
            seen.add(trace.trace_id)
        return trace

    merged: dict[str, list[Span]] = defaultdict(list)
    for trace in traces:
        target = home(trace).trace_id
        for t in trace.spans:
            span = replace(t.span, trace_id=target)
            if t.depth == 0 and trace.trace_id in parent_of:
                span = replace(span, parent_id=parent_of[trace.trace_id][0].id)
            merged[target].append(span)
    return build_traces(s for spans in merged.values() for s in spans)


def waterfall(trace: Trace, width: int = 40) -> list[str]:
    """One line per span: indented name, bar on the trace's time axis, duration, status."""
    total = max(trace.duration_us, 1)
    own = self_times(trace)
    slow = slowest_hop(trace).id
    lines = []
    for t in trace.spans:
        s = t.span
        offset = min(width - 1, (s.timestamp_us - trace.start_us) * width // total)
        length = max(1, round(s.duration_us * width / total))
        length = min(length, width - offset)
        bar = "·" * offset + "█" * length + " " * (width - offset - length)
        flags = s.tags.get("response_flags", "-")
        mark = "  <- slowest hop" if s.id == slow and len(trace.spans) > 1 else ""
        label = f"{'  ' * t.depth}{s.kind[0]} {s.service}"
        lines.append(
            f"{label:<38.38} {bar} {s.duration_us / 1000:8.1f} ms "
            f"(self {own[s.id] / 1000:6.1f}) {s.status or '-':>3} {flags}{mark}"
        )
    return lines


@dataclass(frozen=True, slots=True)
class Broken:
    """One request whose trace broke: the pieces Envoy reported, and the tree stitched back."""

    pieces: tuple[Trace, ...]
    stitched: Trace


def broken_request(traces: Sequence[Trace]) -> Broken | None:
    """The slowest request that broke into pieces, beside its stitched tree (None: no trace
    broke, or no piece could be placed)."""
    origin = {t.span.id: trace for trace in traces for t in trace.spans}
    best: Broken | None = None
    for whole in stitch(traces):
        ids = dict.fromkeys(origin[t.span.id].trace_id for t in whole.spans if t.span.id in origin)
        if len(ids) < 2:
            continue
        if best is None or whole.duration_us > best.stitched.duration_us:
            by_id = {trace.trace_id: trace for trace in traces}
            best = Broken(tuple(by_id[i] for i in ids), whole)
    return best
