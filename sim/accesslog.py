"""The access-log entries the simulated proxies write: one RequestRecord per request (HTTP
connection manager) or per connection (``tcp_proxy``) per proxy, with the fields Istio's access
log and standard metrics use (:mod:`sim.records` builds them on the hot path).

* ``reporter=source``: the client sidecar or gateway, with its own workload as the source and the
  upstream it picked as the destination.
* ``reporter=destination``: the server sidecar. Its ``source_*`` labels come from the caller's
  proxy: over HTTP from the peer-metadata headers every client sidecar or gateway adds, over TCP
  from the peer-metadata exchange, which only Istio mTLS carries; ``source_principal`` and
  ``connection_security_policy=mutual_tls`` only from an mTLS peer certificate.
* TCP entries have no method, path or authority, response code 0, ``request_protocol="tcp"``,
  ``bytes_received`` (from the client) / ``bytes_sent`` (to the client) and the connection's
  lifetime as ``duration_ms``. An HTTP exchange carried by ``tcp_proxy`` is such a connection:
  the simulator has no model of HTTP message sizes, so its bytes are 0 (as on HTTP entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mesh.envoy_api.names import INBOUND_PASSTHROUGH_CLUSTER
from mesh.records import (
    LOGGED_REQUEST_HEADERS,
    ConnectionSecurityPolicy,
    Reporter,
    RequestRecord,
    sides_by_request_id,
)
from sim.messages import Request, Response
from sim.records import make_record

if TYPE_CHECKING:
    from sim.pods import PodRuntime

__all__ = [
    "TcpOutcome",
    "exchange_clusters",
    "http_destination",
    "http_source",
    "namespace_of",
    "tcp_destination",
    "tcp_source",
]

UNKNOWN = RequestRecord.UNKNOWN
_UNKNOWN_SOURCE = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


@dataclass(slots=True)
class TcpOutcome:
    """How a connection ended, as the client sidecar's TCP log shows it."""

    flags: tuple[str, ...] = ()
    details: str = ""
    upstream_cluster: str = ""
    upstream_host: str = ""
    destination_service: str = ""
    workload: str = ""
    namespace: str = ""
    app: str = ""
    version: str = ""
    principal: str = ""
    bytes_sent: int = 0
    """To the client app (the server's answer)."""
    bytes_received: int = 0
    """From the client app."""
    local_failure: str = ""
    """``connect`` (no connection), ``reset`` (closed before any byte) or ""."""
    response: Response | None = None
    """The HTTP response the connection carried back, when it carried an HTTP request."""


def _logged(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The request's values of the logged headers, as Envoy's ``%REQ(NAME)%`` would write them."""
    return tuple((k, v) for k in LOGGED_REQUEST_HEADERS if (v := headers.get(k)))


def namespace_of(host: str) -> str:
    """The namespace part of ``name.namespace.svc...`` (``unknown`` for other names)."""
    parts = host.split(".")
    return parts[1] if len(parts) > 2 else UNKNOWN


def http_source(
    client: PodRuntime, req: Request, resp: Response, route_name: str, *, start: float, end: float
) -> RequestRecord:
    """The client sidecar's (or gateway's) entry for one HTTP request."""
    pod = client.pod
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.SOURCE,
        pod.workload,
        pod.namespace,
        client.identity,
        resp.destination_service,
        resp.workload or UNKNOWN,
        resp.namespace or namespace_of(resp.destination_service),
        resp.version or UNKNOWN,
        client.app,
        client.version,
        resp.app or UNKNOWN,
        resp.principal,
        resp.route_name or route_name,
        resp.upstream_cluster,
        resp.upstream_host,
        req.method,
        req.path,
        req.authority,
        resp.status,
        resp.flags,
        resp.attempts,
        0,
        resp.size,
        req.request_id,
        req.trace_id,
        ConnectionSecurityPolicy.UNKNOWN,
        resp.details,
        "http",
        _logged(req.headers),
        client.log_cluster,
    )


def http_destination(  # noqa: PLR0917 - positional on the hot path
    pod: PodRuntime,
    req: Request,
    client: PodRuntime | None,
    service_host: str,
    mtls: bool,
    start: float,
    end: float,
    status: int,
    flags: tuple[str, ...],
    details: str,
    route_name: str,
    cluster: str,
    host: str,
    size: int = 0,
) -> RequestRecord:
    """The server sidecar's entry for one HTTP request (``size``: the app's response body; on
    the passthrough HTTP chain the format names no service: the record's is the cluster)."""
    p = pod.pod
    policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
    if client is not None and (mtls or client.proxy is not None):
        cp = client.pod
        principal = client.identity if mtls else UNKNOWN
        source = (cp.workload, cp.namespace, principal, client.app, client.version)
    else:
        source = _UNKNOWN_SOURCE
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.DESTINATION,
        source[0],
        source[1],
        source[2],
        cluster if cluster == INBOUND_PASSTHROUGH_CLUSTER else (service_host or pod.service_host),
        p.workload,
        p.namespace,
        pod.version or UNKNOWN,
        source[3],
        source[4],
        pod.app,
        pod.identity,
        route_name,
        cluster,
        host,
        req.method,
        req.path,
        req.authority,
        status,
        flags,
        1,
        0,
        size,
        req.request_id,
        req.trace_id,
        policy,
        details,
        "http",
        _logged(req.headers),
        "",
        pod.log_cluster,
    )


def tcp_source(
    client: PodRuntime, address: str, out: TcpOutcome, start: float, end: float
) -> RequestRecord:
    """The client sidecar's entry for one ``tcp_proxy`` connection to ``address``."""
    pod = client.pod
    service = out.destination_service or address
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.SOURCE,
        pod.workload,
        pod.namespace,
        client.identity,
        service,
        out.workload or UNKNOWN,
        out.namespace or namespace_of(service),
        out.version or UNKNOWN,
        client.app,
        client.version,
        out.app or UNKNOWN,
        out.principal,
        "",
        out.upstream_cluster,
        out.upstream_host,
        "",
        "",
        "",
        0,
        out.flags,
        1,
        out.bytes_received,
        out.bytes_sent,
        "",
        "",
        ConnectionSecurityPolicy.UNKNOWN,
        out.details,
        "tcp",
        (),
        client.log_cluster,
    )


def tcp_destination(  # noqa: PLR0917 - one record, all positional like make_record
    pod: PodRuntime,
    client: PodRuntime | None,
    mtls: bool,
    start: float,
    end: float,
    cluster: str,
    host: str,
    flags: tuple[str, ...],
    details: str,
    received: int,
    sent: int,
) -> RequestRecord:
    """The server sidecar's entry for one ``tcp_proxy`` connection (on a passthrough chain the
    format names no service: the record's is the cluster, ``InboundPassthroughCluster``)."""
    p = pod.pod
    if client is not None and mtls:  # TCP peer metadata travels only over Istio mTLS
        cp = client.pod
        source = (cp.workload, cp.namespace, client.identity, client.app, client.version)
    else:
        source = _UNKNOWN_SOURCE
    policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.DESTINATION,
        source[0],
        source[1],
        source[2],
        cluster if cluster == INBOUND_PASSTHROUGH_CLUSTER else pod.service_host,
        p.workload,
        p.namespace,
        pod.version or UNKNOWN,
        source[3],
        source[4],
        pod.app,
        pod.identity,
        "",
        cluster,
        host,
        "",
        "",
        "",
        0,
        flags,
        1,
        received,
        sent,
        "",
        "",
        policy,
        details,
        "tcp",
        (),
        "",
        pod.log_cluster,
    )


def exchange_clusters(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """``records`` with each side of an HTTP request naming the other side's cluster, as
    Istio's peer metadata exchange tells both sidecars (and the local runner's records say):
    a client-side record takes ``destination_cluster`` from the server-side record of the same
    request (the last one when retries tried several), a server-side record ``source_cluster``
    from the client's. A request nobody served, and a TCP connection, keep their own side only."""
    served, sent = sides_by_request_id(records)
    return [_exchanged(r, served, sent) for r in records]


def _exchanged(
    r: RequestRecord, served: dict[str, RequestRecord], sent: dict[str, RequestRecord]
) -> RequestRecord:
    if not r.request_id:
        return r
    if r.reporter is Reporter.SOURCE and r.request_id in served:
        cluster = r.destination_cluster or served[r.request_id].destination_cluster
        return replace(r, destination_cluster=cluster)
    if r.reporter is Reporter.DESTINATION and r.request_id in sent:
        return replace(r, source_cluster=r.source_cluster or sent[r.request_id].source_cluster)
    return r
