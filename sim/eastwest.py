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
  balancer. The TLS session is the client's and the server's, end to end: the server sidecar
  sees the client's own SPIFFE identity (so AuthorizationPolicies by principal work across
  clusters) and the client's telemetry names the real server (peer metadata exchange).

Anything that keeps the TLS handshake from completing (a gateway that is down, no listener or
no chain for the SNI, a chain whose cluster has no pod left, a dead pod behind the gateway) is a
connect failure for the client (503 ``UF``): what outlier detection counts to eject the gateway
endpoint, and what locality failover then routes around.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

from mesh.envoy_api.names import sni_name
from mesh.model.multicluster import EASTWEST_GATEWAY
from mesh.topology import Pod
from sim.cluster import ClusterRuntime
from sim.inbound import inbound
from sim.messages import Attempt, Request, Response
from sim.world import PodRuntime, ProxyRuntime, World

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


def _connect_failure() -> Response:
    return Response(503, (), "connection_failure", local_failure="connect")


def _sni(crt: ClusterRuntime) -> str:
    """The SNI the client's auto mTLS sends for this ``outbound|PORT|SUBSET|HOST`` cluster."""
    parts = crt.spec.name.split("|")
    if len(parts) != 4:
        return ""
    return sni_name(int(parts[1]), parts[2], parts[3])


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
    there = cross_delay(world, client, target.pod)
    if there:
        yield env.timeout(there)
    server = target
    if target.pod.workload == EASTWEST_GATEWAY and target.pod.namespace == "istio-system":
        found = _through_gateway(world, target, crt, mtls, port)
        if req.trace is not None:
            req.trace.add(env.now, target.pod.name, _narrate(found, target, crt, there))
        if isinstance(found, Response):
            if there:
                yield env.timeout(cross_delay(world, target.pod, client))
            return found
        server, port = found
        yield env.timeout(world.hop())
    resp: Response = yield from inbound(
        world,
        server,
        req,
        client=proxy.pod,
        service_host=crt.spec.service_host,
        attempt=attempt,
        mtls=mtls,
        port=port,
        alpn=crt.spec.alpn,
    )
    if server is not target:
        yield env.timeout(world.hop())
        resp.workload = server.pod.workload
        resp.namespace = server.pod.namespace
        resp.app = server.app
        resp.version = server.version
        resp.principal = server.pod.identity if server.sidecar else ""
    back = cross_delay(world, target.pod, client) if there else 0.0
    if back:
        yield env.timeout(back)
    return resp


def _narrate(
    found: Response | tuple[PodRuntime, int], gateway: PodRuntime, crt: ClusterRuntime, there: float
) -> str:
    """The gateway hop in words, for ``meshplay explain``."""
    crossing = f" after {there * 1000:.1f} ms across networks" if there else ""
    head = f"east-west gateway ({gateway.pod.network}){crossing}: SNI {_sni(crt)}"
    if isinstance(found, Response):
        return head + " -> no pod reached: the client's connection fails (UF)"
    server, port = found
    return head + f" -> AUTO_PASSTHROUGH tcp_proxy to {server.pod.name}:{port} (TLS not terminated)"


def _through_gateway(
    world: World, gateway: PodRuntime, crt: ClusterRuntime, mtls: bool, port: int
) -> Response | tuple[PodRuntime, int]:
    """The east-west gateway's AUTO_PASSTHROUGH hop: (the pod its tcp_proxy connects to, its
    port), or the client's connect failure."""
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
        return _connect_failure()
    gw_cluster.record_outcome(host, 200, local_failure=False)
    return server, host.endpoint.port
