"""TCP connections through the simulated mesh: ``tcp_proxy`` on both sidecars, no HTTP.

Client sidecar (outbound). The app dials ``address:port`` (a Service name resolves to its VIP,
a headless Service's to one of its pod IPs); iptables sends the connection to
``virtualOutbound``, which hands it to the listener at exactly that address
(``use_original_dst``: ``<VIP>_<port>``, the TCP listener istiod builds for a TCP service port),
else to ``0.0.0.0_<port>`` (a service without a VIP) or, when there is none, keeps it on its
own chains: ``virtualOutbound-catchall-tcp`` to ``PassthroughCluster`` (ALLOW_ANY) or
``BlackHoleCluster`` (REGISTRY_ONLY). The chain is picked by Envoy's
FilterChainMatch (:meth:`sim.xds.ListenerSpec.select`). Its ``tcp_proxy`` then:

* draws one of its ``weighted_clusters`` (VirtualService ``tcp`` routes), uniform over the
  weight sum, once per connection;
* a missing cluster closes the connection (flag ``NC``); ``ORIGINAL_DST`` without endpoints
  (``PassthroughCluster``) connects to the address the app dialled; a cluster without a host to
  pick (``BlackHoleCluster``: STATIC, no endpoints; an empty subset) closes the accepted
  connection at once (flag ``UH``);
* ``max_connections`` (DestinationRule ``tcp.maxConnections``) caps the cluster's open
  connections: one more is closed with flag ``UO``;
* the host comes from the cluster's load balancer (:meth:`sim.cluster.ClusterRuntime.pick_host`);
  a NetworkPolicy that drops the SYN fails after ``connect_timeout``, a dead pod refuses at once:
  both ``UF,URX`` (and an outlier-detection local-origin failure; ``tcp_proxy`` does not retry).
  An endpoint outside the simulated mesh (a ServiceEntry's address) is a server that accepts.

Server sidecar (inbound). The connection must match a ``virtualInbound`` chain for its
destination port, transport (``tls`` for Istio mTLS, else ``raw_buffer``) and ALPN
(``istio-peer-exchange``, ``istio`` with mTLS): that is PeerAuthentication, executed from the
chains istiod built. No chain: the connection is closed unlogged, the client's log shows ``UF``
after a failed mTLS handshake or ``UC`` for a plaintext connection the server closed. Then the
chain's network RBAC (AuthorizationPolicy on a TCP port: only connection attributes apply):
a denial closes the connection, the server logs it with no flag and the connection termination
details ``rbac_access_denied_matched_policy[...]``; Envoy counts ``<stat_prefix>rbac.denied``
(:attr:`sim.world.World.rbac_denied`). Otherwise ``tcp_proxy`` to ``inbound|<port>||`` and the app,
which reads ``send_bytes``, answers ``receive_bytes`` and keeps the connection ``hold_s``.

Records: one per connection per sidecar, at close, with the TCP access-log fields Istio uses:
no method/path/authority, ``response_code`` 0, ``request_protocol="tcp"``, the flags,
upstream cluster and host, ``bytes_received`` (from the client) / ``bytes_sent`` (to the
client), ``duration_ms`` = the connection's lifetime. Source labels on the server side come from
the peer metadata exchange, which TCP only has over Istio mTLS (ALPN ``istio-peer-exchange``):
a plaintext TCP peer is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.security import RequestContext, evaluate_rbac_filters
from mesh.topology import MeshService
from sim.cluster import ClusterRuntime, HostState
from sim.messages import Trace
from sim.records import make_record
from sim.security import OUTSIDE_IP
from sim.world import PodRuntime, ProxyRuntime, World
from sim.xds import VIRTUAL_INBOUND, VIRTUAL_OUTBOUND, FilterChainSpec

__all__ = ["Connection", "TcpOutcome", "connect", "connect_direct"]

Proc = Generator[Any, Any, Any]
UNKNOWN = RequestRecord.UNKNOWN
ISTIO_TCP_ALPNS = ("istio-peer-exchange", "istio")
"""What a client sidecar offers on an Istio mTLS connection carrying TCP."""
CONNECT_FAILED = ("UF", "URX")
"""Envoy 1.40's ``tcp_proxy`` flags for an upstream connect failure: UF, and URX because its
connect attempts (one by default) are used up (checked on the real binary)."""


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
    """The app of ``proxy``'s pod opens ``conn``: its sidecar's ``tcp_proxy``, the server side,
    one ``reporter=source`` record at close. Returns the :class:`TcpOutcome`."""
    env = world.env
    where = proxy.pod.name
    conn.address = _dialled(world, conn)
    yield env.timeout(world.hop())  # the app's connect to its own sidecar
    start = env.now
    tables = proxy.tables
    listener = tables.outbound_listener(conn.address, conn.port)
    if listener is None:
        listener = tables.virtual_listener(VIRTUAL_OUTBOUND)
    chain = listener.select(conn.address, conn.port) if listener is not None else None
    if chain is None or listener is None:
        _note(conn, world, where, f"no listener takes {conn.address}:{conn.port}: closed")
        out = TcpOutcome(details="filter_chain_not_found")
    elif chain.http:
        _note(conn, world, where, f"listener {listener.name} is HTTP: the bytes are no request")
        out = TcpOutcome(flags=("DPE",), details="http1.codec_error")
    else:
        _note(
            conn,
            world,
            where,
            f"listener {listener.name}, filter chain {chain.name or '#'}: tcp_proxy "
            + ", ".join(f"{n} ({w})" for n, w in chain.clusters),
        )
        out = yield from _tcp_proxy(world, proxy, conn, chain)
    world.record(_source_record(proxy.pod, conn, out, start, env.now))
    yield env.timeout(world.hop())  # the close reaches the app
    return out


def _dialled(world: World, conn: Connection) -> str:
    """The address a Kubernetes client dials for ``conn``: a Service name resolves to its VIP
    (ClusterIP), a headless Service's name to one of its pod IPs; an IP stays as it is."""
    service = conn.service
    if service is None or conn.address != service.hostname:
        return conn.address
    if service.vip and "/" not in service.vip:
        return service.vip
    if service.headless:
        pods = world.pods_of_service.get(service.hostname) or []
        if pods:
            return (
                pods[world.rng.randrange(len(pods))].pod.address
                if len(pods) > 1
                else pods[0].pod.address
            )
    return conn.address


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
        out: TcpOutcome = yield from _passthrough(world, proxy, conn, name)
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


def _upstream(
    world: World, proxy: ProxyRuntime, conn: Connection, crt: ClusterRuntime, host: HostState
) -> Proc:
    """Connect to ``host`` and hand the connection to its server sidecar (or app)."""
    env = world.env
    where = proxy.pod.name
    ep = host.endpoint
    target = world.by_address.get(ep.address)
    security = world.security
    if (
        security.network is not None
        and target is not None
        and not security.connect_allowed(proxy.pod.pod, target.pod, ep.port)
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
        return TcpOutcome(bytes_sent=conn.receive_bytes, bytes_received=conn.send_bytes)
    if target.dead:
        proxy.count(f"cluster.{crt.spec.name}.upstream_cx_connect_fail")
        crt.record_outcome(host, 503, True)
        _note(conn, world, where, "connection refused: the pod is gone (UF)")
        return TcpOutcome(CONNECT_FAILED, "connection_failure")
    mtls = crt.spec.istio_mtls_to(ep)
    _note(conn, world, where, "Istio mTLS (ALPN istio-peer-exchange)" if mtls else "plaintext")
    out: TcpOutcome = yield from serve_tcp(
        world, target, conn, client=proxy.pod, port=ep.port, mtls=mtls
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


def _passthrough(world: World, proxy: ProxyRuntime, conn: Connection, cluster: str) -> Proc:
    """``PassthroughCluster`` (ORIGINAL_DST): straight to the address the app dialled, no
    load balancing, no mTLS. Outside the simulated mesh an external server accepts it."""
    env = world.env
    where = proxy.pod.name
    target = world.by_address.get(conn.address)
    if target is None and conn.service is not None:
        pods = world.pods_of_service.get(conn.service.hostname) or []
        target = pods[world.rng.randrange(len(pods))] if pods else None
    _note(conn, world, where, f"{cluster}: to the original destination {conn.address}:{conn.port}")
    yield env.timeout(world.hop())
    host = f"{conn.address}:{conn.port}"
    if target is None:
        yield env.timeout(conn.hold_s + world.hop())
        out = TcpOutcome(bytes_sent=conn.receive_bytes, bytes_received=conn.send_bytes)
    elif target.dead:
        out = TcpOutcome(CONNECT_FAILED, "connection_failure")
    else:
        port = target.target_port if conn.service is not None else conn.port
        out = yield from serve_tcp(world, target, conn, client=proxy.pod, port=port, mtls=False)
        if out.local_failure:
            out = TcpOutcome(("UC",), "upstream_connection_termination")
        else:
            yield env.timeout(world.hop())
    out.upstream_cluster = cluster
    out.upstream_host = host
    out.destination_service = cluster
    return out


def serve_tcp(
    world: World,
    pod: PodRuntime,
    conn: Connection,
    *,
    client: PodRuntime | None,
    port: int,
    mtls: bool,
) -> Proc:
    """The server side of a connection at ``pod:port``: ``virtualInbound``'s chain (mTLS mode),
    network RBAC, ``tcp_proxy`` to ``inbound|<port>||``, the app. Returns what the client's
    sidecar sees; the server sidecar writes its ``reporter=destination`` record."""
    env = world.env
    start = env.now
    where = pod.name
    proxy = pod.proxy
    if not pod.sidecar or proxy is None:
        _note(conn, world, where, "no sidecar: the connection goes straight to the app")
        if pod.refuse:
            return TcpOutcome(local_failure="connect")
        yield env.timeout(conn.hold_s)
        return TcpOutcome(bytes_sent=conn.receive_bytes, bytes_received=conn.send_bytes)
    listener = proxy.tables.virtual_listener(VIRTUAL_INBOUND)
    transport = "tls" if mtls else "raw_buffer"
    chain = (
        listener.select(pod.pod.address, port, transport, ISTIO_TCP_ALPNS if mtls else ())
        if listener is not None
        else None
    )
    if chain is None:
        _note(
            conn,
            world,
            where,
            f"port {port} takes no {'mTLS' if mtls else 'plaintext'} connection "
            "(PeerAuthentication): closed",
        )
        return TcpOutcome(local_failure="reset")
    cluster = chain.clusters[0][0] if chain.clusters else pod.inbound_cluster
    host = f"{pod.pod.address}:{port}"
    flags: tuple[str, ...] = ()
    details = ""
    received = sent = 0
    decision = evaluate_rbac_filters(chain.rbac, _context(pod, port, client, mtls))
    if not decision.allowed:
        details = f"rbac_access_denied_matched_policy[{decision.policy or 'none'}]"
        prefix = str((chain.rbac[0].get("typed_config") or {}).get("stat_prefix", ""))
        key = f"{pod.name}/{prefix}rbac.denied"
        world.rbac_denied[key] = world.rbac_denied.get(key, 0) + 1
        _note(conn, world, where, f"network RBAC: {details}: connection closed")
        received = conn.send_bytes  # RBAC decides on the first bytes, then closes
    elif chain.http:
        flags, details = ("DPE",), "http1.codec_error"
    elif pod.refuse:
        flags, details = CONNECT_FAILED, "connection_failure"
        _note(conn, world, where, f"{cluster}: the app refuses the connection (UF)")
    else:
        _note(conn, world, where, f"{chain.name}: tcp_proxy to {cluster}, the app holds it")
        yield env.timeout(conn.hold_s)
        received, sent = conn.send_bytes, conn.receive_bytes
    world.record(
        _destination_record(
            pod, client, mtls, start, env.now, cluster, host, flags, details, received, sent
        )
    )
    return TcpOutcome(bytes_sent=sent, bytes_received=conn.send_bytes)


def _context(pod: PodRuntime, port: int, client: PodRuntime | None, mtls: bool) -> RequestContext:
    """What the network RBAC filter sees: the connection only (no HTTP attributes)."""
    return RequestContext(
        method="",
        path="",
        destination_port=port,
        destination_ip=pod.pod.address,
        source_ip=client.pod.address if client is not None else OUTSIDE_IP,
        peer_principal=client.identity if mtls and client is not None else "",
    )


def connect_direct(world: World, client: PodRuntime | None, conn: Connection) -> Proc:
    """A connection without a client sidecar (from outside, or an app without one): kube-proxy
    picks a pod of the Service; only the server sidecar reports."""
    env = world.env
    service = conn.service
    pods = (world.pods_of_service.get(service.hostname) or []) if service is not None else []
    yield env.timeout(world.hop())
    if not pods:
        return TcpOutcome(local_failure="connect")
    target = pods[world.rng.randrange(len(pods))] if len(pods) > 1 else pods[0]
    security = world.security
    if security.network is not None and not security.connect_allowed(
        client.pod if client is not None else None, target.pod, target.target_port
    ):
        yield env.timeout(world.topology.config.connect_timeout_s)
        return TcpOutcome(local_failure="connect")
    if target.dead:
        return TcpOutcome(local_failure="connect")
    out: TcpOutcome = yield from serve_tcp(
        world, target, conn, client=client, port=target.target_port, mtls=False
    )
    yield env.timeout(world.hop())
    return out


def _source_record(
    client: PodRuntime, conn: Connection, out: TcpOutcome, start: float, end: float
) -> RequestRecord:
    pod = client.pod
    service = out.destination_service or conn.address
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.SOURCE,
        pod.workload,
        pod.namespace,
        client.identity,
        service,
        out.workload or UNKNOWN,
        out.namespace or _namespace_of(service),
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
    )


def _namespace_of(host: str) -> str:
    parts = host.split(".")
    return parts[1] if len(parts) > 2 else UNKNOWN


def _destination_record(  # noqa: PLR0917 - one record, all positional like make_record
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
    p = pod.pod
    if client is not None and mtls:  # TCP peer metadata travels only over Istio mTLS
        cp = client.pod
        source = (cp.workload, cp.namespace, client.identity, client.app, client.version)
    else:
        source = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)
    policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.DESTINATION,
        source[0],
        source[1],
        source[2],
        pod.service_host,
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
    )
