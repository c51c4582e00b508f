"""The client sidecar's ``tcp_proxy``: a connection the app opens, carrying raw TCP
(``protocol: tcp`` traffic) or an HTTP request whose connection landed on a TCP chain.

The app dials ``address:port`` (a Service name resolves to its VIP, a headless Service's to one
of its pod IPs: :meth:`sim.world.World.dial`); iptables sends the connection to
``virtualOutbound``, which hands it to the listener at exactly that address (``use_original_dst``:
``<VIP>_<port>``, the TCP listener istiod builds for a TCP service port), else to
``0.0.0.0_<port>`` (a service without a VIP, or an HTTP port) or, when there is none, keeps it on
its own chains: ``virtualOutbound-catchall-tcp`` to ``PassthroughCluster`` (ALLOW_ANY) or
``BlackHoleCluster`` (REGISTRY_ONLY). The chain is picked by Envoy's FilterChainMatch
(:meth:`sim.xds.tables.ProxyTables.outbound`). Raw bytes on an HTTP chain are a codec error
(``DPE``). Its ``tcp_proxy`` then:

* draws one of its ``weighted_clusters`` (VirtualService ``tcp`` routes), uniform over the
  weight sum, once per connection;
* a missing cluster closes the connection (flag ``NC``); ``ORIGINAL_DST`` without endpoints
  (``PassthroughCluster``) connects to the address the app dialled (a VIP through kube-proxy);
  a cluster without a host to pick (``BlackHoleCluster``: STATIC, no endpoints; an empty
  subset) closes the accepted connection at once (flag ``UH``);
* ``max_connections`` (DestinationRule ``tcp.maxConnections``) caps the cluster's open
  connections: one more is closed with flag ``UO``;
* the host comes from the cluster's load balancer (:meth:`sim.cluster.ClusterRuntime.pick_host`);
  a NetworkPolicy that drops the SYN fails after ``connect_timeout``, a dead pod refuses at once:
  both ``UF,URX`` (and an outlier-detection local-origin failure; ``tcp_proxy`` does not retry).
  An endpoint outside the simulated mesh (a ServiceEntry's address) is a server that accepts.

The server side is :mod:`sim.inbound_tcp` (raw TCP) or :mod:`sim.inbound` (an HTTP request, on
whichever chain it lands). A chain whose server closes it unlogged (PeerAuthentication) shows as
``UF`` after a failed mTLS handshake or ``UC`` for a plaintext connection. One
``reporter=source`` TCP record per connection, at close, when the chain's ``tcp_proxy`` logs.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mesh.topology import MeshService
from sim.accesslog import TcpOutcome, tcp_source
from sim.cluster import ClusterRuntime, HostState
from sim.inbound import inbound
from sim.inbound_tcp import CONNECT_FAILED, serve_tcp
from sim.messages import Request, Response, Trace
from sim.pods import PodRuntime, ProxyRuntime
from sim.world import World
from sim.xds import FilterChainSpec, Landing

__all__ = ["Connection", "TcpOutcome", "connect", "http_over_tcp"]

Proc = Generator[Any, Any, Any]


@dataclass(slots=True)
class Connection:
    """One TCP connection an app opens: where to, how many bytes each way, how long."""

    address: str
    """The address the app dialled: an IP, or a Service hostname (its ClusterIP)."""
    port: int
    send_bytes: int = 0
    receive_bytes: int = 0
    hold_s: float = 0.0
    service: MeshService | None = None
    """The Service behind ``address`` when it is one (what kube-proxy balances over)."""
    trace: Trace | None = None
    request: Request | None = None
    """The HTTP request the bytes carry (None: raw TCP)."""
    sni: str = ""
    """The server name of the TLS ClientHello the app sends first ("" = not TLS)."""


def _note(conn: Connection, world: World, where: str, text: str) -> None:
    if conn.trace is not None:
        conn.trace.add(world.env.now, where, text)


def _pick_cluster(chain: FilterChainSpec, world: World) -> str:
    clusters = chain.clusters
    if len(clusters) == 1:
        return clusters[0][0]
    if not clusters or chain.total_weight <= 0:
        return clusters[0][0] if clusters else ""
    r = world.rng.random() * chain.total_weight
    for name, weight in clusters:
        if r < weight:
            return name
        r -= weight
    return clusters[-1][0]


def connect(world: World, proxy: ProxyRuntime, conn: Connection) -> Proc:
    """The app of ``proxy``'s pod opens ``conn`` (raw TCP): its sidecar's listener and chain,
    ``tcp_proxy``, the server side. Returns the :class:`TcpOutcome`."""
    env = world.env
    if conn.service is not None and conn.address == conn.service.hostname:
        conn.address = world.dial(conn.address)
    yield env.timeout(world.hop())  # the app's connect to its own sidecar
    start = env.now
    if conn.sni:  # the app speaks TLS: tls_inspector reads the SNI (and no ALPN here)
        landing = proxy.tables.outbound_tls(conn.address, conn.port, conn.sni, ())
    else:
        landing = proxy.tables.outbound(conn.address, conn.port, http=False)
    out: TcpOutcome = yield from _through(world, proxy, landing, conn)
    if landing.chain is None or landing.chain.logs:
        world.record(tcp_source(proxy.pod, conn.address, out, start, env.now))
    yield env.timeout(world.hop())  # the close reaches the app
    return out


def http_over_tcp(
    world: World, proxy: ProxyRuntime, landing: Landing, req: Request, address: str
) -> Proc:
    """An HTTP request whose connection to ``address:req.port`` landed on a ``tcp_proxy``
    chain: the bytes go through as a TCP connection (logged as one), the app's HTTP exchange
    happens end to end. Returns the Response the app gets (a closed connection: 503, what the
    services make of a transport error)."""
    env = world.env
    start = env.now
    conn = Connection(address, req.port, trace=req.trace, request=req)
    conn.service = world.services.get(req.address)
    out: TcpOutcome = yield from _through(world, proxy, landing, conn)
    if landing.chain is not None and landing.chain.logs:
        world.record(tcp_source(proxy.pod, conn.address, out, start, env.now))
    if out.response is not None:
        return out.response
    return Response(503, (), "connection_termination", local_failure="reset")


def _through(world: World, proxy: ProxyRuntime, landing: Landing, conn: Connection) -> Proc:
    where = proxy.pod.name
    chain = landing.chain
    if chain is None or landing.listener is None:
        _note(conn, world, where, f"no listener takes {conn.address}:{conn.port}: closed")
        return TcpOutcome(details="filter_chain_not_found")
    if chain.http:
        _note(conn, world, where, f"{landing.describe()} is HTTP: the bytes are no request")
        return TcpOutcome(flags=("DPE",), details="http1.codec_error")
    _note(
        conn,
        world,
        where,
        f"{landing.describe()}: tcp_proxy " + ", ".join(f"{n} ({w})" for n, w in chain.clusters),
    )
    out: TcpOutcome = yield from _tcp_proxy(world, proxy, conn, chain)
    return out


def _tcp_proxy(world: World, proxy: ProxyRuntime, conn: Connection, chain: FilterChainSpec) -> Proc:
    where = proxy.pod.name
    name = _pick_cluster(chain, world)
    if len(chain.clusters) > 1:
        _note(conn, world, where, f"weighted clusters: picked {name}")
    crt = proxy.cluster(name, world)
    if crt is None:
        _note(conn, world, where, f"cluster {name!r} does not exist: closed (NC)")
        return TcpOutcome(("NC",), "cluster_not_found", name, destination_service=name)
    spec = crt.spec
    if spec.type == "ORIGINAL_DST" and not spec.endpoints:
        out: TcpOutcome = yield from _passthrough(world, proxy, conn, crt)
        return out
    if conn.trace is not None:
        pick = crt.choose(None, None, 1)
        host, why = pick.host, f" by {pick.reason}"
    else:
        host, why = crt.pick_host(None, None, 1), ""
    service = spec.service_host or name
    if host is None:
        reason = "no endpoints" if not crt.hosts else "no healthy endpoint"
        proxy.count(f"cluster.{name}.upstream_cx_none_healthy")
        _note(conn, world, where, f"{name}: {reason}: connection accepted, then closed (UH)")
        return TcpOutcome(("UH",), "no_healthy_upstream", name, destination_service=service)
    active = proxy.tcp_active.get(name, 0)
    if active >= spec.thresholds.max_connections:
        proxy.count(f"cluster.{name}.upstream_cx_overflow")
        _note(conn, world, where, f"{name}: max_connections reached: closed (UO)")
        return TcpOutcome(("UO",), "overflow", name, destination_service=service)
    _note(
        conn,
        world,
        where,
        f"endpoint {host.key} ({host.endpoint.pod or host.endpoint.workload}){why}",
    )
    proxy.tcp_active[name] = active + 1
    proxy.count(f"cluster.{name}.upstream_cx_total")
    host.active += 1
    try:
        out = yield from _upstream(world, proxy, conn, crt, host)
    finally:
        host.active -= 1
        proxy.tcp_active[name] -= 1
        proxy.count(f"cluster.{name}.upstream_cx_destroy")
    ep = host.endpoint
    out.upstream_cluster = name
    out.upstream_host = host.key
    out.destination_service = service
    out.workload, out.namespace, out.app, out.version = (
        ep.workload,
        ep.namespace,
        ep.app,
        ep.version,
    )
    out.principal = ep.identity
    return out


def _serve(  # noqa: PLR0917
    world: World,
    target: PodRuntime,
    conn: Connection,
    client: PodRuntime | None,
    port: int,
    mtls: bool,
    alpn: tuple[str, ...],
) -> Proc:
    """The server side, for raw bytes or for the HTTP request they carry."""
    if conn.request is None:
        out: TcpOutcome = yield from serve_tcp(
            world,
            target,
            port,
            conn.send_bytes,
            conn.receive_bytes,
            conn.hold_s,
            client=client,
            mtls=mtls,
            alpn=alpn,
            trace=conn.trace,
        )
        return out
    resp: Response = yield from inbound(
        world,
        target,
        conn.request,
        client=client,
        service_host=target.service_host,
        attempt=None,
        mtls=mtls,
        port=port,
        alpn=alpn,
    )
    if resp.local_failure:
        return TcpOutcome(local_failure=resp.local_failure)
    return TcpOutcome(response=resp)


def _upstream(
    world: World, proxy: ProxyRuntime, conn: Connection, crt: ClusterRuntime, host: HostState
) -> Proc:
    """Connect to ``host`` and hand the connection to its server sidecar (or app)."""
    env = world.env
    where = proxy.pod.name
    ep = host.endpoint
    target = world.by_address.get(ep.address)
    cni = world.cni
    if (
        cni.enforcing
        and target is not None
        and not cni.connect_allowed(proxy.pod.pod, target.pod, ep.port)
    ):
        yield env.timeout(crt.spec.connect_timeout)
        proxy.count(f"cluster.{crt.spec.name}.upstream_cx_connect_fail")
        crt.record_outcome(host, 503, True)
        _note(conn, world, where, "NetworkPolicy dropped the SYN: connect timeout (UF)")
        return TcpOutcome(CONNECT_FAILED, "connection_failure")
    yield env.timeout(world.hop())
    if target is None:  # an address outside the simulated mesh (a ServiceEntry endpoint)
        _note(conn, world, where, f"{ep.host} is outside the mesh: its server accepts")
        crt.record_outcome(host, 200, False)
        yield env.timeout(conn.hold_s + world.hop())
        return _external(conn)
    if target.dead:
        proxy.count(f"cluster.{crt.spec.name}.upstream_cx_connect_fail")
        crt.record_outcome(host, 503, True)
        _note(conn, world, where, "connection refused: the pod is gone (UF)")
        return TcpOutcome(CONNECT_FAILED, "connection_failure")
    mtls = crt.spec.istio_mtls_to(ep)
    _note(conn, world, where, "Istio mTLS (ALPN istio-peer-exchange)" if mtls else "plaintext")
    out: TcpOutcome = yield from _serve(
        world, target, conn, proxy.pod, ep.port, mtls, crt.spec.alpn
    )
    if out.local_failure:
        if out.local_failure == "connect":
            proxy.count(f"cluster.{crt.spec.name}.upstream_cx_connect_fail")
        crt.record_outcome(host, 503, True)
        if mtls:  # the server closed during the TLS handshake: a failed connect
            return TcpOutcome(CONNECT_FAILED, "connection_failure")
        return TcpOutcome(("UC",), "upstream_connection_termination", bytes_received=0)
    crt.record_outcome(host, 200, False)  # a connect success resets the consecutive errors
    yield env.timeout(world.hop())
    return out


def _external(conn: Connection) -> TcpOutcome:
    """What a server outside the simulated mesh answers: the bytes, or 200 to a request."""
    if conn.request is not None:
        return TcpOutcome(response=Response(200))
    return TcpOutcome(bytes_sent=conn.receive_bytes, bytes_received=conn.send_bytes)


def _passthrough(world: World, proxy: ProxyRuntime, conn: Connection, crt: ClusterRuntime) -> Proc:
    """``PassthroughCluster`` (ORIGINAL_DST): straight to the address the app dialled (through
    kube-proxy for a VIP), no load balancing, no mTLS. Outside the simulated mesh an external
    server accepts it; a VIP on a port its Service lacks answers nothing (connect timeout)."""
    env = world.env
    where = proxy.pod.name
    cluster = crt.spec.name
    target, port = world.kube_proxy(conn.address, conn.port)
    _note(conn, world, where, f"{cluster}: to the original destination {conn.address}:{conn.port}")
    host = f"{conn.address}:{conn.port}"
    if target is None and port == 0:
        yield env.timeout(crt.spec.connect_timeout)
        _note(conn, world, where, "nothing answers at that address: connect timeout (UF)")
        out = TcpOutcome(CONNECT_FAILED, "connection_failure")
    else:
        yield env.timeout(world.hop())
        if target is None:
            yield env.timeout(conn.hold_s + world.hop())
            out = _external(conn)
        elif target.dead:
            out = TcpOutcome(CONNECT_FAILED, "connection_failure")
        else:
            out = yield from _serve(world, target, conn, proxy.pod, port, False, ())
            if out.local_failure:
                out = TcpOutcome(("UC",), "upstream_connection_termination")
            else:
                yield env.timeout(world.hop())
    out.upstream_cluster = cluster
    out.upstream_host = host
    out.destination_service = cluster
    return out
