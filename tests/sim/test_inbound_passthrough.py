"""Inbound passthrough in the simulator: a connection to a pod port that no Service declares
lands on ``virtualInbound``'s passthrough chains (istiod's ``buildInboundPassthroughChains``),
chosen as Envoy's FilterChainMatch chooses them, per PeerAuthentication mode:

* PERMISSIVE, five chains: HTTP over mTLS (ALPN ``istio-http/*``) and plaintext HTTP
  (``http_inspector``: ``http/1.1``) on ``virtualInbound-catchall-http`` (an HTTP connection
  manager to ``InboundPassthroughCluster``: the sidecar logs an HTTP request), TCP over mTLS
  (``istio-peer-exchange``/``istio``), plaintext TCP and any other TLS on ``virtualInbound``
  (``tcp_proxy``: the sidecar logs a connection).
* STRICT, two chains, both mTLS: plaintext is closed before any byte.
* DISABLE, two chains, both plaintext, and no ``tls_inspector`` on the port: mTLS is
  ``raw_buffer`` there, its bytes pass to the app as opaque TCP, and the client's handshake
  fails.

The pod is ``other-v1-0`` of the test app (no Service selects it); its app listens on 9080.
A client sidecar's mTLS offers the cluster's ``istio-peer-exchange``/``istio`` for TCP and, for
an HTTP request, ``istio-http/1.1`` (its HCM's ``istio.alpn``, :mod:`mesh.envoy.alpn`): the
rows below feed those ALPNs in directly.
"""

from __future__ import annotations

import pytest

from mesh.envoy_api.names import (
    INBOUND_PASSTHROUGH_CLUSTER,
    VIRTUAL_INBOUND,
    VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN,
)
from mesh.records import ConnectionSecurityPolicy
from sim.accesslog import TcpOutcome
from sim.inbound import inbound
from sim.inbound_tcp import serve_tcp
from sim.messages import Request, Response
from sim.world import World
from tests.sim.harness import dst, make_world, one_connection, one_request

POD = "other-v1-0"
PORT = 9080
MESH_ALPN = ("istio-peer-exchange", "istio")
"""What a client cluster's Istio mTLS socket offers (a TCP connection's handshake)."""
HTTP_ALPN = ("istio-http/1.1",)
"""What a client sidecar offers for an HTTP/1.1 request over mTLS (``istio.alpn``)."""


def _policy(mode: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: t}}
spec:
  mtls: {{mode: {mode}}}
"""


def _world(mode: str) -> World:
    return make_world(_policy(mode))


def _address(world: World) -> str:
    return world.pods[POD].pod.address


@pytest.mark.parametrize(
    ("mode", "tls", "alpn", "http", "chain", "terminates"),
    [
        ("PERMISSIVE", False, (), True, VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN, False),
        ("PERMISSIVE", False, (), False, VIRTUAL_INBOUND, False),
        ("PERMISSIVE", True, HTTP_ALPN, True, VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN, True),
        ("PERMISSIVE", True, MESH_ALPN, True, VIRTUAL_INBOUND, True),
        ("PERMISSIVE", True, ("h2", "http/1.1"), False, VIRTUAL_INBOUND, False),  # app's TLS
        ("STRICT", False, (), True, None, False),
        ("STRICT", False, (), False, None, False),
        ("STRICT", True, HTTP_ALPN, True, VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN, True),
        ("STRICT", True, MESH_ALPN, False, VIRTUAL_INBOUND, True),
        ("STRICT", True, ("h2",), False, VIRTUAL_INBOUND, True),  # any TLS: mTLS or nothing
        ("DISABLE", False, (), True, VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN, False),
        ("DISABLE", False, (), False, VIRTUAL_INBOUND, False),
        ("DISABLE", True, MESH_ALPN, False, VIRTUAL_INBOUND, False),  # TLS as opaque bytes
        ("DISABLE", True, HTTP_ALPN, True, VIRTUAL_INBOUND, False),
    ],
)  # fmt: skip
def test_the_passthrough_chain_envoy_would_select(
    mode: str,
    tls: bool,
    alpn: tuple[str, ...],
    http: bool,
    chain: str | None,
    terminates: bool,
) -> None:
    world = _world(mode)
    proxy = world.pods[POD].proxy
    assert proxy is not None
    landing = proxy.tables.inbound(_address(world), PORT, tls=tls, alpn=alpn, http=http)
    if chain is None:
        assert landing.chain is None  # Envoy closes the connection
        return
    assert landing.chain is not None
    assert (landing.chain.name, landing.chain.terminates_tls) == (chain, terminates)
    assert landing.chain.match.destination_port is None


def _served(world: World, *, mtls: bool, alpn: tuple[str, ...]) -> Response:
    """An HTTP request from the client pod over a connection it opens itself (mTLS offering
    ``alpn``, or plaintext) to the passthrough port."""
    pod = world.pods[POD]
    request = Request("GET", "/r", f"{_address(world)}:{PORT}", PORT, {}, "id-1", "")
    proc = world.env.process(
        inbound(
            world,
            pod,
            request,
            client=world.pods["client-v1-0"],
            service_host="",
            attempt=None,
            mtls=mtls,
            port=PORT,
            alpn=alpn,
        )
    )
    world.env.run(until=proc)
    assert isinstance(proc.value, Response)
    return proc.value


@pytest.mark.parametrize("mode", ["PERMISSIVE", "DISABLE"])
def test_plaintext_http_to_a_passthrough_port_is_logged_as_an_http_request(mode: str) -> None:
    # the client sidecar routes the unknown address to PassthroughCluster (plaintext); the
    # server's http_inspector sees HTTP/1.1: virtualInbound-catchall-http's HCM logs it
    world = _world(mode)
    resp, lines = one_request(world, to=f"{_address(world)}:{PORT}")
    assert resp.status != 0 and not resp.local_failure
    (server,) = dst(world.records)
    assert (server.request_protocol, server.route_name, server.upstream_cluster) == (
        "http",
        "default",
        INBOUND_PASSTHROUGH_CLUSTER,
    )
    assert server.destination_service == INBOUND_PASSTHROUGH_CLUSTER
    assert server.connection_security_policy is ConnectionSecurityPolicy.NONE
    assert server.upstream_host == f"{_address(world)}:{PORT}"
    assert any(f"filter chain {VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN}" in x for x in lines)


def test_strict_closes_plaintext_http_and_tcp_to_a_passthrough_port() -> None:
    world = _world("STRICT")
    resp, _ = one_request(world, to=f"{_address(world)}:{PORT}")
    assert (resp.status, resp.flags) == (503, ("UC",))
    out = one_connection(world, f"{_address(world)}:{PORT}", source="outside")
    assert (out.local_failure, out.bytes_sent) == ("reset", 0)
    assert dst(world.records) == []


@pytest.mark.parametrize("mode", ["PERMISSIVE", "DISABLE"])
def test_plaintext_tcp_to_a_passthrough_port_is_logged_as_a_connection(mode: str) -> None:
    world = _world(mode)
    out = one_connection(world, f"{_address(world)}:{PORT}", source="outside")
    assert (out.local_failure, out.bytes_sent) == ("", 2000)
    (server,) = dst(world.records)
    assert (server.request_protocol, server.upstream_cluster, server.bytes_received) == (
        "tcp",
        INBOUND_PASSTHROUGH_CLUSTER,
        100,
    )


@pytest.mark.parametrize(
    ("mode", "alpn", "protocol"),
    [
        ("PERMISSIVE", MESH_ALPN, "tcp"),  # TCP over mTLS: the TCP mTLS chain
        ("PERMISSIVE", HTTP_ALPN, "http"),  # HTTP over mTLS (istio.alpn): the HTTP one
        ("STRICT", MESH_ALPN, "tcp"),
        ("STRICT", HTTP_ALPN, "http"),
    ],
)
def test_mtls_to_a_passthrough_port_is_terminated(
    mode: str, alpn: tuple[str, ...], protocol: str
) -> None:
    world = _world(mode)
    resp = _served(world, mtls=True, alpn=alpn)
    assert not resp.local_failure
    (server,) = dst(world.records)
    assert (server.request_protocol, server.upstream_cluster) == (
        protocol,
        INBOUND_PASSTHROUGH_CLUSTER,
    )
    assert server.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
    assert server.source_workload == "client-v1"


def test_disable_passes_mtls_on_as_opaque_bytes_and_the_handshake_fails() -> None:
    world = _world("DISABLE")
    resp = _served(world, mtls=True, alpn=MESH_ALPN)
    assert resp.local_failure == "connect"  # a client sidecar answers 503 UF
    (server,) = dst(world.records)
    assert (server.request_protocol, server.upstream_cluster) == (
        "tcp",
        INBOUND_PASSTHROUGH_CLUSTER,
    )
    assert server.connection_security_policy is ConnectionSecurityPolicy.NONE
    proc = world.env.process(
        serve_tcp(world, world.pods[POD], PORT, 10, 10, 0.0, client=None, mtls=True, alpn=MESH_ALPN)
    )
    world.env.run(until=proc)
    assert isinstance(proc.value, TcpOutcome)
    assert proc.value.local_failure == "connect"


PORT_LEVEL = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: other, namespace: t}
spec:
  selector: {matchLabels: {app: other}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    9080: {mode: STRICT}
"""


def test_a_port_level_mode_on_an_undeclared_port_gets_its_own_passthrough_chains() -> None:
    # istiod's ForPassthrough adds a chain set on 9080 (no Service targets it) in STRICT:
    # plaintext to 9080 is closed, plaintext to any other undeclared port still passes
    world = make_world(PORT_LEVEL)
    proxy = world.pods[POD].proxy
    assert proxy is not None
    ip = _address(world)
    strict = proxy.tables.inbound(ip, PORT, tls=False, http=False)
    assert strict.chain is None
    other = proxy.tables.inbound(ip, 9081, tls=False, http=False)
    assert other.chain is not None and other.chain.name == VIRTUAL_INBOUND
    mtls = proxy.tables.inbound(ip, PORT, tls=True, alpn=MESH_ALPN, http=False)
    assert mtls.chain is not None and mtls.chain.match.destination_port == PORT
