"""TLS origination and the egress gateway on real Envoy (lesson 23's configuration): the
partner API is a real server on 127.0.0.1 that counts TLS handshakes by SNI, so the tests can
tell that Envoy (not the app, which sends plain HTTP) opened TLS, and where. One mesh per module.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.accesslog import AccessLogTail
from cluster.local.apps import ROOT
from cluster.local.external import ExternalServer, external_ports
from cluster.local.mesh import LocalMesh
from cluster.local.runner import traffic_targets
from cluster.local.traffic import drive
from mesh.envoy.translate import translate
from mesh.lesson import Lesson, RequestSpec, TrafficSpec, load_lesson
from mesh.metrics import edge_key
from mesh.records import Reporter, RequestRecord
from mesh.source import load_text
from mesh.state import MeshState
from mesh.topology import build_topology
from sim.messages import Response
from sim.traffic import TrafficDriver, drain
from sim.world import World

pytestmark = pytest.mark.envoy

LESSON = ROOT / "lessons" / "23-egress-gateway-tls-origination"
HOST = "rates.partner.example"


@pytest.fixture(scope="module")
def lesson() -> Lesson:
    return load_lesson(LESSON)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, lesson: Lesson) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path_factory.mktemp("mesh"), seed=7) as m:
        m.outside = external_ports(r for rs in lesson.files.values() for r in rs)
        m.start(lesson.app.resources)  # the app and the installed egress gateway
        yield m


def configure(mesh: LocalMesh, lesson: Lesson, *files: str) -> None:
    state = MeshState(lesson.app.resources)
    for f in files:
        state = state.apply(lesson.resources_of(f"istio/{f}"))
    mesh.apply(state.resources)


def partner(mesh: LocalMesh, port: int) -> ExternalServer:
    assert mesh.outside_servers is not None
    return mesh.outside_servers.servers[HOST, port]


def send(mesh: LocalMesh, count: int = 12) -> list[RequestRecord]:
    spec = TrafficSpec(
        from_="order-v1", to=HOST, port=80, requests=(RequestSpec(path="/v1/rates"),),
        rate_rps=40, count=count, duration_s=5,
    )  # fmt: skip
    tails = [AccessLogTail(p) for p in mesh.access_logs()]
    for tail in tails:
        tail.skip_to_end()
    report = drive(spec, traffic_targets(mesh, spec), random.Random(5))
    assert report.sent == count
    time.sleep(0.35)
    return [r for tail in tails for r in tail.read()]


def sim_one(lesson: Lesson, resources: list[Any]) -> list[RequestRecord]:
    """The records of one request from order to the partner on the sim, same configuration."""
    topology = build_topology(resources)
    world = World(topology, lesson.app.behavior, translate(resources, topology), seed=3,
                  resources=resources)  # fmt: skip
    driver = TrafficDriver(world, TrafficSpec(from_="order", to=HOST, port=80, count=1))
    proc = world.env.process(driver.send(driver.request(RequestSpec(path="/v1/rates"))))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)
    assert isinstance(proc.value, Response)
    return list(world.records)


def edge(records: list[RequestRecord], client: str, service: str) -> list[RequestRecord]:
    return [
        r for r in records if r.reporter is Reporter.SOURCE and edge_key(r) == (client, service)
    ]


BASE = ("sidecar-registry-only.yaml", "service-entry-partner.yaml")


def test_plain_http_reaches_the_partners_plaintext_port(mesh: LocalMesh, lesson: Lesson) -> None:
    configure(mesh, lesson, *BASE)
    before = partner(mesh, 80).requests
    records = edge(send(mesh), "order", "rates")
    assert [r.response_code for r in records] == [200] * 12
    assert {r.upstream_cluster for r in records} == {f"outbound|80||{HOST}"}
    assert partner(mesh, 80).requests - before == 12


def test_plain_http_to_the_tls_port_is_closed_by_the_partner(
    mesh: LocalMesh, lesson: Lesson
) -> None:
    configure(mesh, lesson, *BASE, "virtual-service-80-to-443.yaml")
    server = partner(mesh, 443)
    refused, handshakes = server.refused, sum(server.handshakes.values())
    records = edge(send(mesh), "order", "rates")
    assert {(r.response_code, r.response_flags) for r in records} == {(503, ("UC",))}
    assert server.refused > refused  # not a ClientHello: the partner closed the connection
    assert sum(server.handshakes.values()) == handshakes


def test_the_sidecar_originates_tls_with_the_partners_sni(mesh: LocalMesh, lesson: Lesson) -> None:
    configure(
        mesh, lesson, *BASE, "virtual-service-80-to-443.yaml",
        "destination-rule-originate-tls.yaml",
    )  # fmt: skip
    server = partner(mesh, 443)
    handshakes, requests = server.handshakes[HOST], server.requests
    records = edge(send(mesh), "order", "rates")
    assert [r.response_code for r in records] == [200] * 12
    assert {r.upstream_cluster for r in records} == {f"outbound|443||{HOST}"}
    assert server.requests - requests == 12  # every request arrived inside TLS
    assert server.handshakes[HOST] > handshakes  # Envoy's ClientHello named the partner
    assert set(server.handshakes) == {HOST}


def test_the_egress_gateway_is_a_hop_and_originates_tls(
    mesh: LocalMesh, lesson: Lesson, tmp_path: Path
) -> None:
    configure(
        mesh, lesson, *BASE, "egress-gateway.yaml", "virtual-service-via-egress-gateway.yaml",
        "destination-rule-originate-tls-at-gateway.yaml",
    )  # fmt: skip
    server = partner(mesh, 443)
    handshakes, requests = server.handshakes[HOST], server.requests
    records = send(mesh)
    first = edge(records, "order", "istio-egressgateway")
    second = edge(records, "istio-egressgateway", "rates")
    assert [r.response_code for r in first] == [200] * 12
    assert [r.response_code for r in second] == [200] * 12
    assert not edge(records, "order", "rates")  # nothing leaves order's pod for the partner
    assert {r.upstream_cluster for r in first} == {
        "outbound|80|partner|istio-egressgateway.istio-system.svc.cluster.local"
    }
    assert {r.upstream_cluster for r in second} == {f"outbound|443||{HOST}"}
    assert server.requests - requests == 12
    assert server.handshakes[HOST] > handshakes
    gateway_log = mesh.access_log("istio-egressgateway-0").read_text()
    assert f"outbound|443||{HOST}" in gateway_log  # the gateway's own access log shows the hop
    # the gateway's HCM (use_remote_address, no internal_address_config, as istiod builds it)
    # counts order's sidecar as external: Envoy 1.40 gives each request a new x-request-id
    assert all(r.request_id for r in first + second)
    assert not {r.request_id for r in first} & {r.request_id for r in second}
    assert len({r.request_id for r in second}) == 12


def test_the_sim_also_renews_the_request_id_at_the_egress_gateway(lesson: Lesson) -> None:
    """The same configuration on the sim: the two hops carry different request ids, as on
    real Envoy above (the sim used to keep the sidecar's id across the gateway)."""
    state = MeshState(lesson.app.resources)
    for f in (*BASE, "egress-gateway.yaml", "virtual-service-via-egress-gateway.yaml",
              "destination-rule-originate-tls-at-gateway.yaml"):  # fmt: skip
        state = state.apply(lesson.resources_of(f"istio/{f}"))
    records = sim_one(lesson, list(state.resources))
    first = edge(records, "order", "istio-egressgateway")
    second = edge(records, "istio-egressgateway", "rates")
    assert [r.response_code for r in first + second] == [200, 200]
    assert first[0].request_id != second[0].request_id
    assert first[0].trace_id == second[0].trace_id


WRONG_SNI = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-partner, namespace: shop}
spec:
  host: rates.partner.example
  workloadSelector: {matchLabels: {app: order}}
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: other.example, credentialName: partner-ca}
"""


def test_a_client_hello_naming_another_server_fails_as_the_sim_says(
    mesh: LocalMesh, lesson: Lesson
) -> None:
    configure(mesh, lesson, *BASE, "virtual-service-80-to-443.yaml")
    loaded = load_text(WRONG_SNI, "dr.yaml")
    assert loaded.ok
    mesh.apply(MeshState(mesh.resources).apply(loaded.resources).resources)
    server = partner(mesh, 443)
    requests = server.requests
    records = edge(send(mesh, count=4), "order", "rates")
    # the handshake fails (a connect failure), retried twice by Istio's default policy
    assert {(r.response_code, frozenset(r.response_flags), r.attempts) for r in records} == {
        (503, frozenset({"UF", "URX"}), 3)
    }
    assert server.requests == requests


NO_ROUTE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: partner-api, namespace: shop}
spec:
  hosts: [rates.partner.example]
  http:
  - match: [{uri: {prefix: /nothing-here}}]
    route: [{destination: {host: rates.partner.example}}]
"""


def test_a_sidecars_404_nr_names_the_host_as_istios_sidecar_stats_do(
    mesh: LocalMesh, lesson: Lesson
) -> None:
    """No route matches at order's sidecar: real Envoy answers 404 NR with no upstream cluster.
    Istio's sidecar stats (outbound, host header fallback on) then report the Host header as
    sent as ``destination_service``; the record parsed from the real access log says the
    same, and so does the sim."""
    configure(mesh, lesson, *BASE)
    loaded = load_text(NO_ROUTE, "vs.yaml")
    assert loaded.ok
    mesh.apply(MeshState(mesh.resources).apply(loaded.resources).resources)
    records = [r for r in send(mesh, count=4) if r.reporter is Reporter.SOURCE]
    assert {(r.response_code, r.response_flags, r.upstream_cluster) for r in records} == {
        (404, ("NR",), "")
    }
    assert {r.destination_service for r in records} == {r.authority for r in records} != {""}
    (sim,) = [r for r in sim_one(lesson, list(mesh.resources)) if r.reporter is Reporter.SOURCE]
    assert (sim.response_code, sim.destination_service) == (404, records[0].destination_service)
