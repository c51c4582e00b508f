"""Protocol sniffing, executed from the translated config: a Service port whose protocol Istio
cannot tell (no known name prefix, no known ``appProtocol``) gets a ``<VIP>_<port>`` listener with
``http_inspector``, an HTTP connection manager chain for ``http/1.1``/``h2c`` and the
``tcp_proxy`` as the default chain; the server's ``virtualInbound`` has an HTTP and a TCP chain
for the port. HTTP requests are routed by the HCM (VirtualService ``http`` rules apply), raw TCP
bytes are proxied."""

from __future__ import annotations

import pytest

from mesh.topology import MeshConfig
from sim.world import World
from tests.sim.harness import dst, make_world, one_connection, one_request, src

SNIFFED = """
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: web, port: 7070, targetPort: 9080}]
"""
FAULT = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: raw, namespace: t}
spec:
  hosts: [raw]
  http:
  - match: [{uri: {prefix: /teapot}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: raw}}]
  - route: [{destination: {host: raw}}]
"""
DISABLE = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: other, namespace: t}
spec:
  selector: {matchLabels: {app: other}}
  mtls: {mode: DISABLE}
"""
CLUSTER = "outbound|7070||raw.t.svc.cluster.local"


def _vip(world: World) -> str:
    vip: str = world.services["raw.t.svc.cluster.local"].vip
    return vip


def test_http_to_a_sniffed_port_is_routed_by_the_hcm_chain_of_its_vip_listener() -> None:
    # the VirtualService's fault applies: only the HCM chain can have answered 418
    world = make_world(SNIFFED + FAULT)
    resp, lines = one_request(world, to="raw", path="/teapot/1")
    assert resp.status == 418
    (client,) = src(world.records)
    assert (client.request_protocol, client.response_code) == ("http", 418)
    assert any(
        f"listener {_vip(world)}_7070, filter chain #0 [Trans: raw_buffer; App: http/1.1,h2c]"
        in line
        and "route config 'raw.t.svc.cluster.local:7070'" in line
        for line in lines
    )


def test_any_host_header_on_the_sniffed_vip_reaches_its_one_service() -> None:
    # the route config <host>:<port> has one virtual host with domains ["*"]: the listener's
    # address already chose the service
    world = make_world(SNIFFED)
    one_request(world, to="raw", headers={"host": "somewhere.else"})
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_cluster) == ("http", CLUSTER)
    assert client.authority == "somewhere.else"


def test_raw_tcp_to_a_sniffed_port_takes_the_default_tcp_proxy_chain() -> None:
    world = make_world(SNIFFED + FAULT)
    out = one_connection(world, "raw")
    assert (out.local_failure, out.bytes_sent, out.upstream_cluster) == ("", 2000, CLUSTER)
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_cluster, client.response_flags) == (
        "tcp",
        CLUSTER,
        (),
    )
    (server,) = dst(world.records)
    assert (server.request_protocol, server.upstream_cluster) == ("tcp", "inbound|9080||")


@pytest.mark.parametrize(("tcp", "chain", "protocol"), [
    (False, "0.0.0.0_9080 [Trans: raw_buffer; App: http/1.1,h2c; Port: 9080]", "http"),
    (True, "0.0.0.0_9080 [Trans: raw_buffer; Port: 9080]", "tcp"),
])  # fmt: skip
def test_plaintext_from_outside_takes_the_http_or_the_tcp_inbound_chain(
    tcp: bool, chain: str, protocol: str
) -> None:
    # a client without a sidecar: http_inspector tells HTTP (http/1.1) from raw bytes
    world = make_world(SNIFFED)
    address = f"{world.pods['other-v1-0'].pod.address}:9080"
    if tcp:
        out = one_connection(world, address, source="outside")
        assert (out.local_failure, out.bytes_sent) == ("", 2000)
    else:
        _, lines = one_request(world, to=address, source="outside")
        assert any(f"filter chain {chain} " in line for line in lines)  # istiod's name, its match
    (server,) = dst(world.records)
    assert server.request_protocol == protocol


def test_a_sidecar_client_under_disable_reaches_the_http_chain_in_plaintext() -> None:
    # DISABLE: the client sidecar sends plaintext, the server's http_inspector sees http/1.1
    world = make_world(SNIFFED + DISABLE)
    _, lines = one_request(world, to="raw")
    (server,) = dst(world.records)
    assert server.request_protocol == "http"
    http_chain = "filter chain 0.0.0.0_9080 [Trans: raw_buffer; App: http/1.1,h2c; Port: 9080]"
    assert any(http_chain in line for line in lines)


def test_http_over_mtls_from_a_sidecar_lands_on_the_http_mtls_chain_by_istio_alpn() -> None:
    # the client sidecar's istio.alpn (set_filter_state, mesh.envoy.alpn) makes the HTTP
    # request's handshake offer istio-http/1.1 instead of the cluster's istio-peer-exchange/
    # istio: the server's sniffed port takes it on its HTTP mTLS chain, as istiod's would
    world = make_world(SNIFFED)
    _, lines = one_request(world, to="raw")
    (client,) = src(world.records)
    assert client.request_protocol == "http"
    (server,) = dst(world.records)
    assert server.request_protocol == "http"
    assert any("offers ALPN istio-http/1.1,istio" in line for line in lines)
    http_chain = (
        "filter chain 0.0.0.0_9080 [Trans: tls; App: istio-http/1.0,istio-http/1.1,istio-h2; "
        "Port: 9080] -> route config 'inbound|9080||'"
    )
    assert any(http_chain in line for line in lines)


def test_raw_bytes_over_mtls_keep_the_clusters_alpn_and_the_tcp_mtls_chain() -> None:
    # tcp_proxy has no HTTP filter: the handshake offers the cluster's istio-peer-exchange/istio
    world = make_world(SNIFFED)
    one_connection(world, "raw")
    (server,) = dst(world.records)
    assert server.request_protocol == "tcp"


VIPLESS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: t}
spec:
  hosts: [legacy.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 9080, name: api}]
"""


def test_a_vipless_sniffed_entry_upgrades_the_http_wildcard_to_sniffed() -> None:
    # 0.0.0.0_9080 belongs to the HTTP services; the entry's TCP path joins it as the default
    # chain (istiod's AutoOverHTTP): raw bytes to any address on 9080 go to the entry's cluster,
    # HTTP requests are still routed by Host
    world = make_world(VIPLESS)
    one_connection(world, "203.0.113.9:9080")
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_cluster) == (
        "tcp",
        "outbound|9080||legacy.example.com",
    )
    world = make_world(VIPLESS)
    resp, lines = one_request(world, to="reviews")
    assert resp.status == 200
    assert [r.request_protocol for r in src(world.records)] == ["http"]
    assert any(
        "listener 0.0.0.0_9080, filter chain #0 [Trans: raw_buffer; App:" in x for x in lines
    )


@pytest.mark.parametrize(("mode", "cluster", "flags"), [
    ("ALLOW_ANY", "PassthroughCluster", ()),
    ("REGISTRY_ONLY", "BlackHoleCluster", ("UH",)),
])  # fmt: skip
def test_raw_bytes_to_an_http_port_follow_the_outbound_traffic_policy(
    mode: str, cluster: str, flags: tuple[str, ...]
) -> None:
    # the sidecar's HTTP wildcard 0.0.0.0_9080 matches only http/1.1/h2c; anything else takes
    # its PassthroughFilterChain, as istiod builds it (not a codec error in the HCM)
    world = make_world(config=MeshConfig(outbound_traffic_policy=mode))
    one_connection(world, "203.0.113.9:9080")
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_cluster, client.response_flags) == (
        "tcp",
        cluster,
        flags,
    )
