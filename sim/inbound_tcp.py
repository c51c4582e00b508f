"""The server sidecar's ``tcp_proxy`` chains: a connection that lands on a ``virtualInbound``
chain without an HTTP connection manager.

The chain's network RBAC decides first (AuthorizationPolicy on a TCP port: only connection
attributes apply, as istiod builds it): a denial closes the connection; the server logs it with no
flag and the details ``rbac_access_denied_matched_policy[...]``, and Envoy counts
``<stat_prefix>rbac.denied`` (:attr:`sim.world.World.rbac_denied`). Otherwise ``tcp_proxy``
connects to its cluster (``inbound|<port>||``, or ``InboundPassthroughCluster`` on the catch-all
chain): the app, which either holds a raw TCP connection (``hold_s``, answering
``receive_bytes``) or, when the bytes are an HTTP request, serves it like any request; the
sidecar sees only a connection. A chain whose ``tcp_proxy`` has no ``access_log`` (istiod's
catch-all) logs nothing, as in Envoy. TCP peer metadata needs Istio mTLS: a plaintext TCP peer
is ``unknown`` on the server side.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from mesh.envoy_api.names import VIRTUAL_INBOUND
from mesh.security import RequestContext, evaluate_rbac_filters
from sim.accesslog import TcpOutcome, http_destination, tcp_destination
from sim.app import serve
from sim.cni import OUTSIDE_IP
from sim.messages import Request, Response, Trace
from sim.xds import FilterChainSpec
from sim.xds.values import typed_config

if TYPE_CHECKING:
    from sim.pods import PodRuntime
    from sim.world import World

__all__ = [
    "CONNECT_FAILED",
    "network_rbac",
    "serve_http_over_tcp",
    "serve_tcp",
    "serve_tcp_chain",
    "tls_not_terminated",
]

Proc = Generator[Any, Any, Any]
CONNECT_FAILED = ("UF", "URX")
"""Envoy 1.40's ``tcp_proxy`` flags for an upstream connect failure: UF, and URX because its
connect attempts (one by default) are used up (checked on the real binary)."""


def _note(trace: Trace | None, world: World, where: str, text: str) -> None:
    if trace is not None:
        trace.add(world.env.now, where, text)


def network_rbac(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    chain: FilterChainSpec,
    port: int,
    client: PodRuntime | None,
    mtls: bool,
    trace: Trace | None,
) -> str:
    """The chain's network RBAC filters on this connection: "" (allowed) or the details of the
    denial (counted in ``<stat_prefix>rbac.denied``)."""
    if not chain.rbac:
        return ""
    ctx = RequestContext(
        method="",
        path="",
        destination_port=port,
        destination_ip=pod.pod.address,
        source_ip=client.pod.address if client is not None else OUTSIDE_IP,
        peer_principal=client.identity if mtls and client is not None else "",
    )
    decision = evaluate_rbac_filters(chain.rbac, ctx)
    if decision.allowed:
        return ""
    details = f"rbac_access_denied_matched_policy[{decision.policy or 'none'}]"
    prefix = str(typed_config(chain.rbac[0]).get("stat_prefix", ""))
    key = f"{pod.name}/{prefix}rbac.denied"
    world.rbac_denied[key] = world.rbac_denied.get(key, 0) + 1
    _note(trace, world, pod.name, f"network RBAC ({chain.name}): {details}: connection closed")
    return details


def _upstream(chain: FilterChainSpec, pod: PodRuntime) -> str:
    return chain.clusters[0][0] if chain.clusters else pod.inbound_cluster


def serve_tcp_chain(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    chain: FilterChainSpec,
    port: int,
    send_bytes: int,
    receive_bytes: int,
    hold_s: float,
    *,
    client: PodRuntime | None,
    mtls: bool,
    trace: Trace | None,
) -> Proc:
    """A raw TCP connection on ``chain``: returns the :class:`TcpOutcome` the client sees."""
    env = world.env
    start = env.now
    cluster = _upstream(chain, pod)
    flags: tuple[str, ...] = ()
    details = network_rbac(world, pod, chain, port, client, mtls, trace)
    received = sent = 0
    if details:
        received = send_bytes  # RBAC decides on the first bytes, then closes
    elif chain.http:
        flags, details = ("DPE",), "http1.codec_error"
        _note(trace, world, pod.name, f"{chain.name} is HTTP: the bytes are no request (DPE)")
    elif pod.refuse:
        flags, details = CONNECT_FAILED, "connection_failure"
        _note(trace, world, pod.name, f"{cluster}: the app refuses the connection (UF)")
    else:
        _note(trace, world, pod.name, f"{chain.name}: tcp_proxy to {cluster}, the app holds it")
        yield env.timeout(hold_s)
        received, sent = send_bytes, receive_bytes
    if chain.logs:
        host = f"{pod.pod.address}:{port}"
        world.record(
            tcp_destination(
                pod, client, mtls, start, env.now, cluster, host, flags, details, received, sent
            )
        )
    return TcpOutcome(bytes_sent=sent, bytes_received=send_bytes)


def serve_http_over_tcp(
    world: World,
    pod: PodRuntime,
    chain: FilterChainSpec,
    port: int,
    req: Request,
    *,
    client: PodRuntime | None,
    mtls: bool,
) -> Proc:
    """An HTTP request whose connection landed on a ``tcp_proxy`` chain: the app serves it
    end to end, the sidecar logs a TCP connection. Returns the Response the bytes carry back
    (``local_failure="reset"`` when the connection is closed first)."""
    env = world.env
    start = env.now
    cluster = _upstream(chain, pod)
    flags: tuple[str, ...] = ()
    details = network_rbac(world, pod, chain, port, client, mtls, req.trace)
    resp: Response
    if details:
        resp = Response(0, (), "connection_termination", local_failure="reset")
    elif pod.refuse:
        flags, details = CONNECT_FAILED, "connection_failure"
        _note(req.trace, world, pod.name, f"{cluster}: the app refuses the connection (UF)")
        resp = Response(0, (), "connection_termination", local_failure="reset")
    else:
        _note(
            req.trace,
            world,
            pod.name,
            f"filter chain {chain.name} [{chain.match.describe()}]: tcp_proxy to {cluster}; "
            "the HTTP request is bytes here",
        )
        answer = yield from serve(world, pod, req)
        resp = Response(answer.status, size=answer.size, headers=answer.headers)
    if chain.logs:
        host = f"{pod.pod.address}:{port}"
        world.record(
            tcp_destination(pod, client, mtls, start, env.now, cluster, host, flags, details, 0, 0)
        )
    return resp


def tls_not_terminated(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    chain: FilterChainSpec,
    port: int,
    client: PodRuntime | None,
    trace: Trace | None,
) -> TcpOutcome:
    """A client's Istio mTLS landed on a chain that does not terminate TLS (a DISABLE port:
    no ``tls_inspector`` runs there, so the ClientHello is ``raw_buffer``). The chain passes
    the TLS bytes on as if plaintext: an HTTP connection manager fails them as a codec error
    (400 ``DPE``), ``tcp_proxy`` hands them to the app, which speaks no TLS. Either way the
    client's handshake never completes: a connection failure on its side (503 ``UF`` at a
    client sidecar). The server logs what its chain saw."""
    start = world.env.now
    _note(
        trace,
        world,
        pod.name,
        f"{chain.name} does not terminate TLS: the ClientHello reaches "
        + ("the HTTP codec (400 DPE)" if chain.http else "the app, which speaks no TLS")
        + "; the client's TLS handshake fails",
    )
    if chain.logs:
        host = f"{pod.pod.address}:{port}"
        if chain.http:
            record = http_destination(
                pod,
                Request("GET", "/", "", port, {}, "", ""),
                client,
                "",
                False,
                start,
                world.env.now,
                400,
                ("DPE",),
                "http1.codec_error",
                "",
                "",
                "",
            )
        else:
            cluster = _upstream(chain, pod)
            record = tcp_destination(
                pod, client, False, start, world.env.now, cluster, host, (), "", 0, 0
            )
        world.record(record)
    return TcpOutcome(local_failure="connect")


def serve_tcp(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    port: int,
    send_bytes: int,
    receive_bytes: int,
    hold_s: float,
    *,
    client: PodRuntime | None,
    mtls: bool,
    alpn: tuple[str, ...] = (),
    trace: Trace | None = None,
) -> Proc:
    """The server side of a raw TCP connection at ``pod:port``: ``virtualInbound``'s chain
    (PeerAuthentication: none takes it and the connection is closed unlogged), then the chain.
    Returns the :class:`TcpOutcome` the client sees (``local_failure`` when it got nothing)."""
    proxy = pod.proxy
    if not pod.sidecar or proxy is None:
        _note(trace, world, pod.name, "no sidecar: the connection goes straight to the app")
        if pod.refuse:
            return TcpOutcome(local_failure="connect")
        yield world.env.timeout(hold_s)
        return TcpOutcome(bytes_sent=receive_bytes, bytes_received=send_bytes)
    landing = proxy.tables.inbound(
        pod.pod.address, port, tls=mtls, alpn=alpn if mtls else (), http=False
    )
    if landing.chain is None:
        _note(
            trace,
            world,
            pod.name,
            f"{VIRTUAL_INBOUND}: no filter chain takes a {'mTLS' if mtls else 'plaintext'} "
            f"connection to port {port} (PeerAuthentication): closed",
        )
        return TcpOutcome(local_failure="reset")
    _note(trace, world, pod.name, landing.describe())
    if mtls and not landing.chain.terminates_tls:
        return tls_not_terminated(world, pod, landing.chain, port, client, trace)
    out: TcpOutcome = yield from serve_tcp_chain(
        world,
        pod,
        landing.chain,
        port,
        send_bytes,
        receive_bytes,
        hold_s,
        client=client,
        mtls=mtls,
        trace=trace,
    )
    return out
