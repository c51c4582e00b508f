"""The outbound traffic policy on every path a sidecar can send unknown traffic down, in one
table (issue 13 item 1: "REGISTRY_ONLY vs ALLOW_ANY on every path").

istiod puts the policy's catch-all in five places, and the sim must follow each from the
translated config: ``virtualOutbound``'s last chain (a port with no listener), the HTTP route
configuration's last virtual host (``allow_any`` to PassthroughCluster, ``block_all``: 502), the
HTTP wildcard's ``PassthroughFilterChain`` (non-HTTP bytes on an HTTP port), the TLS wildcard's
``PassthroughFilterChain`` (an SNI no ServiceEntry names) and a CIDR listener's
``PassthroughFilterChain`` (an address outside the CIDR). ALLOW_ANY forwards to the address
the app dialled (``PassthroughCluster``); REGISTRY_ONLY accepts and closes (``BlackHoleCluster``,
``UH``) or answers 502 from the route.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesh.lesson import TrafficSpec
from mesh.records import RequestRecord
from mesh.topology import MeshConfig
from sim.traffic import TrafficDriver
from sim.world import World
from tests.sim.harness import make_world, one_connection, one_request, src

ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay, namespace: t}
spec:
  hosts: [api.pay.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: t}
spec:
  hosts: [mongo.example.com]
  addresses: [192.0.2.0/24]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 27017, name: tcp-mongo, protocol: TCP}]
"""


def _http_no_listener(world: World) -> None:
    one_request(world, to="203.0.113.9:8080")  # no Service has 8080: virtualOutbound


def _http_unknown_host(world: World) -> None:
    one_request(world, to="203.0.113.9:9080")  # 0.0.0.0_9080's HCM, no vhost for the Host


def _raw_bytes_on_http_port(world: World) -> None:
    one_connection(world, "203.0.113.9:9080")  # 0.0.0.0_9080: not HTTP, the default chain


def _tls_unknown_sni(world: World) -> None:
    spec = TrafficSpec(
        from_="client", to="198.51.100.7:443", protocol="tcp", count=1, send_bytes=10,
        receive_bytes=10, sni="other.example",
    )  # fmt: skip
    driver = TrafficDriver(world, spec)
    world.env.run(until=world.env.process(driver.open(driver.connection())))


def _outside_the_cidr(world: World) -> None:
    one_connection(world, "198.51.100.1:27017")  # the CIDR listener's default chain


Send = Callable[[World], None]
PATHS: list[tuple[str, Send, str]] = [
    ("virtualOutbound catch-all", _http_no_listener, "tcp"),
    ("allow_any / block_all vhost", _http_unknown_host, "http"),
    ("HTTP wildcard PassthroughFilterChain", _raw_bytes_on_http_port, "tcp"),
    ("TLS wildcard PassthroughFilterChain", _tls_unknown_sni, "tcp"),
    ("CIDR listener PassthroughFilterChain", _outside_the_cidr, "tcp"),
]


def _client_record(mode: str, send: Send) -> RequestRecord:
    world = make_world(ENTRIES, config=MeshConfig(outbound_traffic_policy=mode))
    send(world)
    (record,) = src(world.records)
    return record


@pytest.mark.parametrize(("path", "send", "protocol"), PATHS, ids=[p for p, _, _ in PATHS])
def test_allow_any_passes_through_on_every_path(path: str, send: Send, protocol: str) -> None:
    record = _client_record("ALLOW_ANY", send)
    assert (record.request_protocol, record.upstream_cluster) == (protocol, "PassthroughCluster")
    assert "UH" not in record.response_flags


@pytest.mark.parametrize(("path", "send", "protocol"), PATHS, ids=[p for p, _, _ in PATHS])
def test_registry_only_blocks_on_every_path(path: str, send: Send, protocol: str) -> None:
    record = _client_record("REGISTRY_ONLY", send)
    assert record.request_protocol == protocol
    if protocol == "http":  # the block_all virtual host answers itself: no cluster
        assert (record.response_code, record.route_name) == (502, "block_all")
        assert record.destination_service == "BlackHoleCluster"
    else:  # tcp_proxy to BlackHoleCluster: accepted, then closed
        assert (record.upstream_cluster, record.response_flags) == ("BlackHoleCluster", ("UH",))
