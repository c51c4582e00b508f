"""HTTP requests go listener -> filter chain -> HTTP connection manager or tcp_proxy, as Envoy
selects them from the translated config (sim/proxy.py, sim/tcp.py, sim/inbound.py): not a route
table picked by port. What the client app gets, what each sidecar logs."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.envoy_api import type_urls as tu
from mesh.records import ConnectionSecurityPolicy
from mesh.topology import MeshConfig
from sim.world import World
from tests.sim.harness import (
    Listener,
    drive,
    dst,
    make_edited_world,
    make_world,
    one_connection,
    one_request,
    src,
)

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: t}
spec:
  mtls: {mode: STRICT}
"""
LEGACY = """
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: t}
spec:
  selector: {app: reviews}
  ports: [{name: tcp-web, port: 7070, targetPort: 9080}]
"""
EXTERNAL = "203.0.113.9:8080"
"""An address outside the mesh, on a port no Service of the test app has (no listener)."""


def _policy(mode: str) -> MeshConfig:
    return MeshConfig(outbound_traffic_policy=mode)


def test_plain_http_to_a_port_without_http_listener_passes_through_under_allow_any() -> None:
    # 8080 has no outbound listener: virtualOutbound's catch-all tcp_proxies the request's bytes
    # to PassthroughCluster; the external server answers; the sidecar logs a TCP connection
    world = make_world(config=_policy("ALLOW_ANY"))
    resp, lines = one_request(world, to=EXTERNAL)
    assert (resp.status, resp.local_failure) == (200, "")
    (rec,) = world.records
    assert (rec.request_protocol, rec.response_code, rec.method, rec.path) == ("tcp", 0, "", "")
    assert (rec.upstream_cluster, rec.upstream_host, rec.response_flags) == (
        "PassthroughCluster",
        EXTERNAL,
        (),
    )
    assert any("filter chain virtualOutbound-catchall-tcp" in line for line in lines)


def test_plain_http_to_a_port_without_http_listener_is_black_holed_under_registry_only() -> None:
    world = make_world(config=_policy("REGISTRY_ONLY"))
    resp, _ = one_request(world, to=EXTERNAL)
    # the connection is accepted, then closed: the app's HTTP client sees a transport error
    assert (resp.status, resp.local_failure) == (503, "reset")
    (rec,) = world.records
    assert (rec.request_protocol, rec.upstream_cluster, rec.response_flags) == (
        "tcp",
        "BlackHoleCluster",
        ("UH",),
    )


def test_plain_http_to_a_port_with_an_http_listener_still_routes_by_host() -> None:
    # the same unknown address on 9080, where 0.0.0.0_9080 is an HTTP listener: the HCM routes
    # by Host (allow_any vhost: PassthroughCluster, an HTTP record) or answers 502 (block_all)
    for mode, code in (("ALLOW_ANY", 200), ("REGISTRY_ONLY", 502)):
        world = make_world(config=_policy(mode))
        resp, _ = one_request(world, to="203.0.113.9:9080")
        (rec,) = src(world.records)
        assert (resp.status, rec.response_code, rec.request_protocol) == (code, code, "http")


def test_http_to_a_tcp_service_port_is_tcp_proxied_end_to_end() -> None:
    # legacy:7070 is a tcp- port: its <VIP>_7070 listener tcp_proxies; the app behind it still
    # answers the HTTP request, and both sidecars log one TCP connection each
    world = make_world(LEGACY)
    resp, lines = one_request(world, to="legacy")
    assert resp.status == 200
    client = src(world.records)
    assert [(r.request_protocol, r.response_code, r.upstream_cluster) for r in client] == [
        ("tcp", 0, "outbound|7070||legacy.t.svc.cluster.local")
    ]
    vip = world.services["legacy.t.svc.cluster.local"].vip
    assert any(f"listener {vip}_7070" in line for line in lines)
    (server,) = dst(world.records)
    assert (server.request_protocol, server.connection_security_policy) == (
        "tcp",
        ConnectionSecurityPolicy.MUTUAL_TLS,
    )
    assert server.source_workload == "client-v1"  # peer metadata over Istio mTLS


def test_the_same_app_over_its_http_port_is_logged_as_http() -> None:
    world = make_world(LEGACY)
    resp, _ = one_request(world, to="reviews")
    assert resp.status == 200
    assert [r.request_protocol for r in src(world.records)] == ["http"]


def _other_pod_address(world: World) -> str:
    return world.pods["other-v1-0"].pod.address  # other-v1 has no Service: no inbound chain


@pytest.mark.parametrize(("policy", "refused"), [("", False), (STRICT, True)])
def test_strict_refuses_plaintext_on_a_port_no_service_exposes(policy: str, refused: bool) -> None:
    # virtualInbound's passthrough chains follow the workload's mode (istiod's ForPassthrough):
    # STRICT matches only TLS there, so plaintext from outside is closed; PERMISSIVE passes it
    world = make_world(policy)
    out = one_connection(world, f"{_other_pod_address(world)}:9080", source="outside")
    if refused:
        assert (out.local_failure, out.bytes_sent) == ("reset", 0)
        assert world.records == []  # closed before any chain: nothing logged
    else:
        assert (out.local_failure, out.bytes_sent) == ("", 2000)
        # the plaintext passthrough chain's tcp_proxy logs the connection, as istiod's does
        assert [(r.request_protocol, r.upstream_cluster) for r in world.records] == [
            ("tcp", "InboundPassthroughCluster")
        ]


def test_strict_closes_a_passed_through_plaintext_request_to_a_port_no_service_exposes() -> None:
    # the client sidecar routes an unknown Host on 9080 to PassthroughCluster (plaintext); the
    # server's STRICT passthrough chain takes no plaintext: 503 UC at the client (item 66)
    world = make_world(STRICT)
    resp, lines = one_request(world, to=f"{_other_pod_address(world)}:9080")
    assert (resp.status, resp.flags) == (503, ("UC",))
    assert any("no filter chain takes a plaintext connection to port 9080" in x for x in lines)
    assert dst(world.records) == []


def _sniffed(keep_inspector: bool) -> Any:
    """Turn the client's 0.0.0.0_9080 into an istiod-style sniffed listener: an HCM chain for
    ``http/1.1``/``h2c`` and a tcp_proxy chain for everything else."""

    def edit(pod: str, listener: Listener) -> Listener:
        if pod != "client-v1-0" or listener["name"] != "0.0.0.0_9080":
            return listener
        (http_chain,) = listener["filter_chains"]
        http_chain["filter_chain_match"] = {"application_protocols": ["http/1.1", "h2c"]}
        cluster = "outbound|9080||reviews.t.svc.cluster.local"
        tcp_chain = {
            "filters": [
                {
                    "name": tu.FILTER_TCP_PROXY,
                    "typed_config": tu.typed(
                        tu.TCP_PROXY,
                        stat_prefix=cluster,
                        cluster=cluster,
                        access_log=[{"name": "envoy.access_loggers.file"}],
                    ),
                }
            ],
            "name": "tcp",
        }
        listener["filter_chains"] = [http_chain, tcp_chain]
        # the translated wildcard already runs http_inspector: keep it, or take it away
        listener["listener_filters"] = (
            [{"name": tu.FILTER_HTTP_INSPECTOR}] if keep_inspector else []
        )
        return listener

    return edit


@pytest.mark.parametrize(("inspector", "protocol"), [(True, "http"), (False, "tcp")])
def test_http_inspector_decides_between_the_http_and_the_tcp_chain_of_a_sniffed_port(
    inspector: bool, protocol: str
) -> None:
    # with http_inspector the request offers application protocol http/1.1 and takes the HCM
    # chain; without it nothing is detected and only the chain without ALPN matches
    world = make_edited_world(edit=_sniffed(inspector))
    resp, _ = one_request(world)
    assert resp.status == 200
    assert [r.request_protocol for r in src(world.records)] == [protocol]


def test_raw_tcp_to_a_sniffed_port_takes_the_tcp_chain_not_the_hcm() -> None:
    # the client's sniffed listener tcp_proxies raw bytes to the port's TCP chain; the server's
    # 9080 chain is HTTP only, so there they are a codec error
    world = make_edited_world(edit=_sniffed(True))
    one_connection(world, "reviews")
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_cluster, client.response_flags) == (
        "tcp",
        "outbound|9080||reviews.t.svc.cluster.local",
        (),
    )
    (server,) = dst(world.records)
    assert server.response_flags == ("DPE",)
    # as translated, 0.0.0.0_9080 (HTTP only) passes non-HTTP bytes to PassthroughFilterChain,
    # as istiod's sidecar wildcard does (ALLOW_ANY: PassthroughCluster to the dialled VIP)
    plain = make_world()
    one_connection(plain, "reviews")
    assert [(r.upstream_cluster, r.response_flags) for r in src(plain.records)] == [
        ("PassthroughCluster", ())
    ]


def test_ingress_traffic_reaches_the_gateway_listener_behind_its_service_port() -> None:
    # the ingress gateway's Service maps 80 -> 8080: the gateway's bound 0.0.0.0_8080 listener
    # (RDS http.8080) routes the request
    gateway = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: t}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-gateway, namespace: t}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{route: [{destination: {host: reviews}}]}]
"""
    records = drive(make_world(gateway), source="ingress", to="reviews", count=5, rate=20)
    gateway_records = [r for r in src(records) if r.source_workload == "istio-ingressgateway"]
    assert {(r.response_code, r.upstream_cluster) for r in gateway_records} == {
        (200, "outbound|9080||reviews.t.svc.cluster.local")
    }
    assert len(dst(records)) == 5


def test_ingress_without_a_gateway_listener_is_refused_and_logged_nowhere() -> None:
    world = make_world()
    resp, lines = one_request(world, source="ingress")
    assert (resp.status, resp.local_failure) == (503, "connect")
    assert world.records == []
    assert any("refused" in line for line in lines)
