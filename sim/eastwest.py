"""Requests between clusters: cross-network latency and the east-west gateway's hop.

A multi-cluster mesh (docs/multicluster.md) changes only what happens between a client sidecar
and the server it picked:

* the networks' declared one-way latency is paid on the way there and back whenever the two
  pods are in different clusters (lognormal from its median and p99);
* an endpoint that is a network's east-west gateway (split-horizon EDS put it there, weighted by
  the number of remote pods it stands for) is reached over the client's Istio mTLS with the SNI
  ``outbound_.PORT_.SUBSET_.HOST`` of the client's cluster; the gateway's listener on 15443 picks
  the AUTO_PASSTHROUGH filter chain by that SNI and its ``tcp_proxy`` forwards the still
  encrypted bytes to a pod of the chain's SNI-DNAT cluster, chosen by the gateway's own load
  balancer **once per connection**: the client sidecar reuses its connection to the gateway
  (``sim.connpool.Connection``), and every request on it lands on the pod the tcp_proxy picked
  when it was opened; only a new connection makes the gateway pick again. The TLS session is the client's and the server's, end to end: the server sidecar
  sees the client's own SPIFFE identity (so AuthorizationPolicies by principal work across
  clusters) and the client's telemetry names the real server (peer metadata exchange).

A new connection across networks pays what it really pays before its first request: the TCP
handshake's round trip, then the TLS 1.3 handshake's (the ClientHello to the server sidecar
through the gateway, its flight back; the client's Finished goes with the request): three round
trips for the first request against one for a request on a reused connection, which is what
``maxRequestsPerConnection: 1`` costs across a WAN.

Anything that keeps the TLS handshake from completing (a gateway that is down, no listener or
no chain for the SNI, a chain whose cluster has no pod left, a dead pod behind the gateway) is a
connect failure for the client (503 ``UF``): what outlier detection counts to eject the gateway
endpoint, and what locality failover then routes around.

The gateway is a proxy and logs its own ``tcp_proxy`` connections, one entry when a connection
closes (``reporter=source``, the gateway as the source, the pod its SNI-DNAT cluster reached as
the destination, the cluster's service as ``destination_service``, ``request_protocol=tcp``):
here for a connection that closes after its request (``maxRequestsPerConnection: 1``) and for
one whose pod behind the gateway refused it (``UF``). A kept-alive connection is still open when
the step ends and logs nothing in it, as on a real mesh.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.names import sni_name
from mesh.model.multicluster import EASTWEST_GATEWAY
from mesh.topology import Pod
from sim.accesslog import TcpOutcome, tcp_source
from sim.cluster import ClusterRuntime, HostState
from sim.connpool import Connection
from sim.inbound import inbound
from sim.messages import Attempt, Request, Response
from sim.pods import PodRuntime, ProxyRuntime
from sim.world import World

__all__ = ["cross_delay", "deliver"]

Proc = Generator[Any, Any, Any]
_Z99 = 2.3263478740408408


def cross_delay(world: World, a: Pod, b: Pod) -> float:
    """One-way latency between the clusters of ``a`` and ``b`` (0 within a cluster or when the
    lesson declares none for their networks)."""
    mc = world.topology.multicluster
    if mc is None or a.cluster == b.cluster:
        return 0.0
    latency = mc.latency(a.network, b.network)
    if latency is None:
        return 0.0
    median = latency.median.seconds
    p99 = latency.p99.seconds if latency.p99 is not None else median
    sigma = math.log(p99 / median) / _Z99 if p99 > median > 0 else 0.0
    return median * math.exp(sigma * world.rng.gauss(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class _Hop:
    """Where the gateway's ``tcp_proxy`` connected a client connection: the pod and its port,
    through which of the gateway's clusters and hosts (what the gateway's log names)."""

    server: PodRuntime
    port: int
    cluster: ClusterRuntime
    host: HostState


def _connect_failure() -> Response:
    return Response(503, (), "connection_failure", local_failure="connect")


def _sni(crt: ClusterRuntime) -> str:
    """The SNI the client's auto mTLS sends for this ``outbound|PORT|SUBSET|HOST`` cluster."""
    parts = crt.spec.name.split("|")
    if len(parts) != 4:
        return ""
    return sni_name(int(parts[1]), parts[2], parts[3])


def is_eastwest_gateway(pod: Pod) -> bool:
    """An east-west gateway pod: its AUTO_PASSTHROUGH hop is :func:`deliver`'s, not a gateway
    that terminates the caller's connection (an egress gateway)."""
    return pod.workload == EASTWEST_GATEWAY and pod.namespace == "istio-system"


def deliver(
    world: World,
    proxy: ProxyRuntime,
    target: PodRuntime,
    crt: ClusterRuntime,
    req: Request,
    *,
    attempt: Attempt,
    mtls: bool,
    port: int,
) -> Proc:
    """The attempt from ``proxy`` to the endpoint at ``target`` (a pod or an east-west
    gateway), across clusters; returns the Response the client sidecar gets."""
    env = world.env
    client = proxy.pod.pod
    conn = attempt.conn if isinstance(attempt.conn, Connection) else Connection()
    if conn.uses and conn.peer is not None and _pinned(conn) is None:
        # the pod behind the gateway went away and closed the tunnel: the pool connects anew
        conn.uses, conn.peer = 0, None
    fresh = conn.uses == 0
    conn.uses += 1
    there = cross_delay(world, client, target.pod)
    accepted = env.now + there  # when the connection reaches the other side (its SYN)
    if there and fresh:
        # a new connection: the TCP handshake's round trip before the first byte goes out
        yield env.timeout(there + cross_delay(world, target.pod, client))
        there = cross_delay(world, client, target.pod)
    if there:
        yield env.timeout(there)
    server = target
    hop: _Hop | None = None
    if is_eastwest_gateway(target.pod):
        found: Response | _Hop | None = None if fresh else _pinned(conn)
        if found is None:
            found = _through_gateway(world, target, crt, mtls, port)
            if not isinstance(found, Response):
                conn.peer = found
        if req.trace is not None:
            req.trace.add(env.now, target.pod.name, _narrate(found, target, crt, there, fresh))
        if isinstance(found, Response):
            if there:
                yield env.timeout(cross_delay(world, target.pod, client))
            return found
        hop = found
        server, port = hop.server, hop.port
        yield env.timeout(world.hop())
    if there and fresh and mtls:
        # the TLS 1.3 handshake, client to server sidecar: the ClientHello went out with the
        # first bytes above; the server's flight comes back, the client's Finished goes out
        # with the request
        flight = cross_delay(world, target.pod, client)
        yield env.timeout(flight + cross_delay(world, client, target.pod))
    resp: Response = yield from inbound(
        world,
        server,
        req,
        client=proxy.pod,
        service_host=crt.spec.service_host,
        attempt=attempt,
        mtls=mtls,
        port=port,
        alpn=req.upstream_alpn or crt.spec.alpn,
    )
    if server is not target:
        yield env.timeout(world.hop())
        resp.workload = server.pod.workload
        resp.namespace = server.pod.namespace
        resp.app = server.app
        resp.version = server.version
        resp.principal = server.pod.identity if server.sidecar else ""
    back = cross_delay(world, target.pod, client) if there else 0.0
    if hop is not None and crt.spec.max_requests_per_connection == 1:
        # the client closes the connection after its answer: its FIN reaches the gateway a
        # round trip after the answer left it, and the gateway logs the connection
        _log_gateway(world, target, hop.cluster, hop.host, accepted, env.now + 2 * back)
    if back:
        yield env.timeout(back)
    return resp


def _log_gateway(  # noqa: PLR0917 - the entry's fields, in the log's order
    world: World,
    gateway: PodRuntime,
    cluster: ClusterRuntime,
    host: HostState,
    start: float,
    end: float,
    flags: tuple[str, ...] = (),
) -> None:
    """The east-west gateway's access-log entry for one ``tcp_proxy`` connection."""
    ep = host.endpoint
    out = TcpOutcome(
        flags=flags,
        details="",
        upstream_cluster=cluster.spec.name,
        upstream_host=host.key,
        destination_service=cluster.spec.service_host,
        workload=ep.workload,
        namespace=ep.namespace,
        app=ep.app,
        version=ep.version,
    )
    world.record(tcp_source(gateway, host.key, out, start, end))


def _pinned(conn: Connection) -> _Hop | None:
    """The pod a reused connection's gateway hop already connected to, while it lives (a pod
    that went away closed the connection: the pool's next one is new)."""
    peer = conn.peer
    if not isinstance(peer, _Hop) or peer.server.dead:
        return None
    return peer


def _narrate(
    found: Response | _Hop,
    gateway: PodRuntime,
    crt: ClusterRuntime,
    there: float,
    fresh: bool,
) -> str:
    """The gateway hop in words, for ``meshplay explain``."""
    crossing = f" after {there * 1000:.1f} ms across networks" if there else ""
    head = f"east-west gateway ({gateway.pod.network}){crossing}: SNI {_sni(crt)}"
    if isinstance(found, Response):
        return head + " -> no pod reached: the client's connection fails (UF)"
    server, port = found.server, found.port
    if not fresh:
        return head + f" -> the reused connection's tcp_proxy stream to {server.pod.name}:{port}"
    return (
        head + f" -> new connection: AUTO_PASSTHROUGH tcp_proxy picks {server.pod.name}:{port}"
        " (TLS not terminated)"
    )


def _through_gateway(
    world: World, gateway: PodRuntime, crt: ClusterRuntime, mtls: bool, port: int
) -> Response | _Hop:
    """The east-west gateway's AUTO_PASSTHROUGH hop: where its tcp_proxy connects, or the
    client's connect failure (a pod behind the gateway that is gone: the gateway logs its
    failed connection, ``UF``)."""
    gw_proxy = gateway.proxy
    sni = _sni(crt)
    if gateway.dead or gw_proxy is None or not mtls or not sni:
        return _connect_failure()
    landing = gw_proxy.tables.outbound_tls(gateway.pod.address, port, sni, tuple(crt.spec.alpn))
    chain = landing.chain
    if chain is None or not chain.clusters:
        return _connect_failure()  # no listener, or no chain for this SNI: the gateway closes
    gw_cluster = gw_proxy.cluster(chain.clusters[0][0], world)
    if gw_cluster is None:
        return _connect_failure()
    host = gw_cluster.pick_host(None, None, 1)
    if host is None:
        return _connect_failure()
    host.requests += 1
    server = world.by_address.get(host.endpoint.address)
    if server is None or server.dead:
        gw_cluster.cx_connect_fail += 1
        gw_cluster.record_outcome(host, 503, local_failure=True)
        now = world.env.now
        _log_gateway(world, gateway, gw_cluster, host, now, now, ("UF",))
        return _connect_failure()
    gw_cluster.record_outcome(host, 200, local_failure=False)
    return _Hop(server, host.endpoint.port, gw_cluster, host)
