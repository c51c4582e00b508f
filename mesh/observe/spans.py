"""Spans in Zipkin's v2 shape: from Envoy's tracer, or derived from a run's records.

With tracing on, every sidecar a request crosses reports one span to the collector (Envoy's
Zipkin tracer, as Istio configures it): the client sidecar a ``CLIENT`` span, the server sidecar
a ``SERVER`` span whose ``parentId`` is that client span (the ``x-b3-*`` headers carry it).
When the app copies the trace headers onto its own downstream calls, its sidecar's next
``CLIENT`` span has the ``SERVER`` span as parent, and one request becomes one tree; when it
does not, each downstream call starts a new trace (the tree breaks into pieces).

The simulator has no tracer, but its records hold what the spans would: which proxy saw which
request when, for how long, with which result, under one trace id per request tree.
:func:`spans_from_records` builds the same spans from them, linking each ``SERVER`` span to the
``CLIENT`` span of the same hop and each ``CLIENT`` span to the ``SERVER`` span of the call its
app was serving (the one that encloses it in time on that workload), with ids derived from the
trace id so a seeded run gives the same spans every time.

:func:`to_otlp` renders spans as OTLP/JSON (``resourceSpans``), the other export format.

An executor whose proxies run a real tracer is a :class:`SpanExecutor`: after a step it can hand
over the spans its collector received (the lesson engine passes them to ``RunOptions.on_spans``,
so a live view shows Envoy's own spans rather than spans derived from the records).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mesh.envoy_api.names import parse_cluster_name
from mesh.records import Reporter, RequestRecord

__all__ = ["Span", "SpanExecutor", "span_from_json", "spans_from_records", "to_otlp"]

CLIENT = "CLIENT"
SERVER = "SERVER"


@dataclass(frozen=True, slots=True)
class Span:
    """One Zipkin v2 span (times in microseconds since the epoch, as Zipkin has them)."""

    trace_id: str
    id: str
    name: str
    kind: str
    timestamp_us: int
    duration_us: int
    service: str
    """``localEndpoint.serviceName``: the reporting proxy's node cluster (``workload.ns``)."""
    parent_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def end_us(self) -> int:
        """When the span ended."""
        return self.timestamp_us + self.duration_us

    @property
    def status(self) -> int:
        """``http.status_code`` (0 when absent)."""
        try:
            return int(self.tags.get("http.status_code", "0"))
        except ValueError:
            return 0

    @property
    def error(self) -> bool:
        """Envoy tags a 5xx (or a reset) with ``error``."""
        return "error" in self.tags

    def to_json(self) -> dict[str, Any]:
        """The Zipkin v2 JSON object."""
        out: dict[str, Any] = {
            "traceId": self.trace_id,
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "timestamp": self.timestamp_us,
            "duration": self.duration_us,
            "localEndpoint": {"serviceName": self.service},
            "tags": dict(self.tags),
        }
        if self.parent_id:
            out["parentId"] = self.parent_id
        return out


@runtime_checkable
class SpanExecutor(Protocol):
    """The optional capability of an executor whose proxies report spans to a collector."""

    def step_spans(self, index: int) -> Sequence[Span]:
        """The spans the proxies reported for step ``index`` (called once, right after the
        step's traffic; may wait for the tracers' last batch). Empty when not tracing."""
        ...


def span_from_json(data: Mapping[str, Any]) -> Span:
    """A Zipkin v2 JSON span (as Envoy posts it) -> :class:`Span`."""
    local = data.get("localEndpoint") or {}
    tags = data.get("tags") or {}
    return Span(
        trace_id=str(data.get("traceId", "")),
        id=str(data.get("id", "")),
        parent_id=str(data.get("parentId", "") or ""),
        name=str(data.get("name", "")),
        kind=str(data.get("kind", "")),
        timestamp_us=int(data.get("timestamp", 0) or 0),
        duration_us=int(data.get("duration", 0) or 0),
        service=str(local.get("serviceName", "")),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _span_id(trace_id: str, n: int) -> str:
    return hashlib.blake2b(f"{trace_id}/{n}".encode(), digest_size=8).hexdigest()


def _port(r: RequestRecord) -> str:
    host, sep, port = r.authority.rpartition(":")
    if sep and port.isdigit() and host:
        return port
    parsed = parse_cluster_name(r.upstream_cluster)
    return str(parsed.port) if parsed is not None and parsed.port else ""


def operation(r: RequestRecord) -> str:
    """The span name Envoy gives: the route's decorator, ``<service FQDN>:<port>/*``."""
    port = _port(r)
    return f"{r.destination_service}:{port}/*" if port else f"{r.destination_service}/*"


def _reporter(r: RequestRecord) -> tuple[str, str]:
    if r.reporter is Reporter.SOURCE:
        return r.source_workload, r.source_namespace
    return r.destination_workload, r.destination_namespace


def _tags(r: RequestRecord) -> dict[str, str]:
    workload, namespace = _reporter(r)
    app = r.source_app if r.reporter is Reporter.SOURCE else r.destination_app
    tags = {
        "component": "proxy",
        "guid:x-request-id": r.request_id,
        "http.method": r.method,
        "http.protocol": "HTTP/1.1",
        "http.status_code": str(r.response_code),
        "http.url": f"http://{r.authority}{r.path}",
        "istio.canonical_service": app or workload,
        "istio.namespace": namespace,
        "request_size": str(r.bytes_received),
        "response_flags": r.flags_text,
        "response_size": str(r.bytes_sent),
        "upstream_cluster": r.upstream_cluster,
        "upstream_cluster.name": r.upstream_cluster,
    }
    if not r.server_ok:
        tags["error"] = "true"
    return tags


def _end(r: RequestRecord) -> float:
    return r.start_time + r.duration_ms / 1000.0


def _enclosing(candidates: Sequence[tuple[RequestRecord, str]], start: float) -> str:
    """The id of the latest-starting candidate whose interval holds ``start``."""
    best = ""
    best_start = float("-inf")
    for r, sid in candidates:
        if r.start_time - 1e-6 <= start <= _end(r) + 1e-6 and r.start_time >= best_start:
            best, best_start = sid, r.start_time
    return best


def _tree(trace_id: str, records: Sequence[RequestRecord], epoch: float) -> list[Span]:
    ordered = sorted(records, key=lambda r: (r.start_time, r.reporter is Reporter.DESTINATION))
    ids = [_span_id(trace_id, n) for n in range(len(ordered))]
    clients: dict[tuple[str, str], list[tuple[RequestRecord, str]]] = defaultdict(list)
    servers: dict[str, list[tuple[RequestRecord, str]]] = defaultdict(list)
    for r, sid in zip(ordered, ids, strict=True):
        if r.reporter is Reporter.SOURCE:
            clients[(r.source_workload, r.destination_service)].append((r, sid))
        else:
            servers[r.destination_workload].append((r, sid))
    spans = []
    for r, sid in zip(ordered, ids, strict=True):
        if r.reporter is Reporter.SOURCE:
            parent = _enclosing(servers.get(r.source_workload, ()), r.start_time)
        else:
            parent = _enclosing(
                clients.get((r.source_workload, r.destination_service), ()), r.start_time
            )
        workload, namespace = _reporter(r)
        spans.append(
            Span(
                trace_id=trace_id,
                id=sid,
                parent_id=parent,
                name=operation(r),
                kind=CLIENT if r.reporter is Reporter.SOURCE else SERVER,
                timestamp_us=round((epoch + r.start_time) * 1e6),
                duration_us=max(1, round(r.duration_ms * 1000)),
                service=f"{workload}.{namespace}",
                tags=_tags(r),
            )
        )
    return spans


def spans_from_records(records: Iterable[RequestRecord], epoch: float = 0.0) -> list[Span]:
    """Zipkin spans for every HTTP record with a trace id, parent links as Envoy's tracer sets
    them; ``epoch`` is added to the records' start times (seconds)."""
    groups: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.trace_id and not r.is_tcp:
            groups[r.trace_id].append(r)
    out: list[Span] = []
    for trace_id in sorted(groups):
        out.extend(_tree(trace_id, groups[trace_id], epoch))
    return out


def to_otlp(spans: Iterable[Span]) -> dict[str, Any]:
    """OTLP/JSON (``ExportTraceServiceRequest``) of the spans, one resource per service."""
    by_service: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_service[s.service].append(s)
    resources = []
    for service in sorted(by_service):
        otlp = [
            {
                "traceId": s.trace_id.rjust(32, "0"),
                "spanId": s.id,
                "parentSpanId": s.parent_id,
                "name": s.name,
                "kind": 3 if s.kind == CLIENT else 2,
                "startTimeUnixNano": str(s.timestamp_us * 1000),
                "endTimeUnixNano": str(s.end_us * 1000),
                "attributes": [
                    {"key": k, "value": {"stringValue": v}} for k, v in sorted(s.tags.items())
                ],
                "status": {"code": 2 if s.error else 0},
            }
            for s in by_service[service]
        ]
        resources.append(
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "meshplay"}, "spans": otlp}],
            }
        )
    return {"resourceSpans": resources}
