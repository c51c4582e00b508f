"""Explain one request hop by hop, as ``meshplay explain`` does, from its RequestRecords.

Every proxy a request crosses writes one record with the same ``x-request-id``; a request that
fans out shares the trace id. Reading the records in time order tells the request's story: which
route matched, which cluster and host were picked, how many attempts, and what each response flag
means for the learner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.metrics import edge_key
from mesh.records import RESPONSE_FLAGS, Reporter, RequestRecord

__all__ = ["FLAG_MEANING", "Hop", "explain_request", "recent_requests"]

FLAG_MEANING: dict[str, str] = {
    "UO": "upstream overflow: a circuit breaker (DestinationRule connectionPool limit) was full, "
    "so Envoy answered 503 without sending the request",
    "UH": "no healthy upstream: every endpoint of the cluster was missing or ejected by outlier "
    "detection",
    "NR": "no route: no VirtualService rule (or default route) matched the request",
    "NC": "no cluster: the route points at a cluster that does not exist (a missing subset?)",
    "URX": "retries exhausted: every attempt the retry policy allowed failed",
    "UT": "upstream request timeout: the route's timeout elapsed before an answer",
    "UF": "upstream connection failure: the connection to the chosen endpoint could not be made",
    "UC": "upstream connection terminated mid-request",
    "UR": "upstream reset the stream",
    "FI": "fault injected: the VirtualService fault.abort answered for the service",
    "DI": "delay injected: the VirtualService fault.delay held the request",
    "RL": "rate limited by the local rate limit filter",
    "UAEX": "denied by external authorization",
    "DC": "the downstream client closed the connection",
    "LR": "reset locally by Envoy",
}
"""What a response flag means, in the words a lesson uses."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One record of the request, explained."""

    record: RequestRecord
    edge: str
    lines: tuple[str, ...]


def recent_requests(
    records: Sequence[RequestRecord], client: str, service: str, limit: int = 20
) -> list[RequestRecord]:
    """The newest client-side records on an edge (failed ones kept first among equals)."""
    mine = [
        r
        for r in records
        if edge_key(r) == (client, service)
        and (r.reporter is Reporter.SOURCE or client == "outside")
    ]
    mine.sort(key=lambda r: r.start_time, reverse=True)
    return mine[:limit]


def _hop_lines(r: RequestRecord) -> tuple[str, ...]:
    side = "client sidecar" if r.reporter is Reporter.SOURCE else "server sidecar"
    lines = [
        f"{side} of {r.source_workload if r.reporter is Reporter.SOURCE else r.destination_workload}"
        f" reported {r.response_code or 'no response'} after {r.duration_ms:.1f} ms"
    ]
    if r.route_name:
        lines.append(f'route "{r.route_name}" matched {r.method} {r.path}')
    if r.upstream_cluster:
        host = f" host {r.upstream_host}" if r.upstream_host else ""
        lines.append(f"cluster {r.upstream_cluster}{host}")
    if r.destination_version not in ("", RequestRecord.UNKNOWN):
        lines.append(f"answered by {r.destination_workload} (version {r.destination_version})")
    if r.attempts > 1:
        lines.append(f"{r.attempts} attempts: the retry policy tried again")
    if r.reporter is Reporter.DESTINATION and r.connection_security_policy.value != "unknown":
        lines.append(f"connection: {r.connection_security_policy.value}")
    for flag in r.response_flags:
        meaning = FLAG_MEANING.get(flag, RESPONSE_FLAGS.get(flag, "unknown flag"))
        lines.append(f"flag {flag}: {meaning}")
    if r.response_code_details and r.response_code_details not in ("via_upstream", "-"):
        lines.append(f"details: {r.response_code_details}")
    return tuple(lines)


def explain_request(records: Iterable[RequestRecord], request: RequestRecord) -> list[Hop]:
    """Every hop of ``request`` (same request id, else same trace), in time order."""
    key_id = request.request_id
    if key_id:
        hops = [r for r in records if r.request_id == key_id]
    elif request.trace_id:
        hops = [r for r in records if r.trace_id == request.trace_id]
    else:
        hops = [request]
    hops.sort(key=lambda r: (r.start_time, r.reporter is Reporter.DESTINATION))
    out = []
    for r in hops:
        client, service = edge_key(r)
        out.append(Hop(r, f"{client}->{service}", _hop_lines(r)))
    return out
