"""The whole e-commerce app on real Envoy sidecars, configured by the translator: start-up,
requests through the call graph, live Istio config, an Envoy NACK, knobs, a killed pod,
traffic from a workload and through the ingress gateway, proxy-status. One mesh per module."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.accesslog import AccessLogTail
from cluster.local.apps import ROOT
from cluster.local.envoy import ConfigRejectedError
from cluster.local.mesh import LocalMesh
from cluster.local.runner import traffic_targets
from cluster.local.state import MeshStateFile, live_config_dump, proxy_status
from cluster.local.traffic import drive
from mesh.app import load_app
from mesh.lesson import BreakAction, RequestSpec, TrafficSpec
from mesh.metrics import edge_key
from mesh.model import Resource
from mesh.records import Reporter, RequestRecord
from mesh.source import load_text
from mesh.state import MeshState
from tests.tls_secrets import make_ca, secret_yaml

pytestmark = pytest.mark.envoy

LESSON = ROOT / "lessons" / "01-request-routing" / "istio"
GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [shop-gateway]
  http:
  - route:
    - destination: {host: frontend, port: {number: 8080}}
"""
BAD_REGEX = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: product, namespace: shop}
spec:
  hosts: [product]
  http:
  - match:
    - uri: {regex: "([unclosed"}
    route:
    - destination: {host: product, subset: v2}
  - route:
    - destination: {host: product, subset: v1}
"""


def _load(text: str) -> tuple[Resource, ...]:
    loaded = load_text(text, "test.yaml", default_namespace="shop")
    assert loaded.ok, [d.render() for d in loaded.errors]
    return loaded.resources


def _files(*names: str) -> tuple[Resource, ...]:
    return tuple(r for n in names for r in _load((LESSON / n).read_text()))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    with LocalMesh(tmp_path_factory.mktemp("mesh"), seed=7) as m:
        m.start(app.resources)
        yield m


def send(mesh: LocalMesh, spec: TrafficSpec) -> list[RequestRecord]:
    tails = [AccessLogTail(p) for p in mesh.access_logs()]
    for tail in tails:
        tail.skip_to_end()
    report = drive(spec, traffic_targets(mesh, spec), random.Random(5))
    assert report.sent > 0
    time.sleep(0.35)
    return [r for tail in tails for r in tail.read()]


def client_records(records: list[RequestRecord], edge: tuple[str, str]) -> list[RequestRecord]:
    return [r for r in records if r.reporter is Reporter.SOURCE and edge_key(r) == edge]


def products(n: int = 30, **kw: object) -> TrafficSpec:
    return TrafficSpec(
        from_="outside", to="api-gateway", requests=(RequestSpec(path="/api/products"),),
        concurrency=3, count=n, duration_s=20, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_seven_services_with_sidecars_start(mesh: LocalMesh) -> None:
    sidecars = [p for p in mesh.pods.values() if p.proxy is not None]
    assert len(sidecars) == 9  # 8 replicas of 7 services + the ingress gateway
    assert {p.pod.name for p in mesh.pods.values() if p.skipped} == {"postgres-0", "redis-0"}
    # a hang bound, not a speed test: 5 s on an idle machine (benchmarks/bench_local.py measures
    # it); a loaded 2-core machine has taken 12-23 s, and a slow machine must not fail CI
    assert mesh.started_s < 60.0, mesh.started_s


def test_storefront_request_crosses_the_call_graph_through_sidecars(mesh: LocalMesh) -> None:
    spec = TrafficSpec(
        from_="outside", to="frontend", requests=(RequestSpec(path="/api/products"),),
        concurrency=2, count=10, duration_s=20,
    )  # fmt: skip
    records = send(mesh, spec)
    edges = Counter(edge_key(r) for r in records if r.reporter is Reporter.SOURCE)
    assert edges[("frontend", "api-gateway")] == 10
    assert edges[("api-gateway", "product")] == 10
    inbound = [r for r in records if r.reporter is Reporter.DESTINATION]
    assert {r.destination_workload for r in inbound} >= {"frontend-v1", "api-gateway-v1"}
    assert all(r.response_code == 200 for r in records)


def test_sidecars_use_mutual_tls_and_outside_callers_stay_plaintext(mesh: LocalMesh) -> None:
    records = send(mesh, products(10))
    inbound = [r for r in records if r.reporter is Reporter.DESTINATION]
    product = [r for r in inbound if r.destination_service_name == "product"]
    gateway = [r for r in inbound if r.destination_service_name == "api-gateway"]
    assert product and {r.connection_security_policy.value for r in product} == {"mutual_tls"}
    assert {r.source_principal for r in product} == {"cluster.local/ns/shop/sa/api-gateway"}
    assert {r.destination_principal for r in product} == {"cluster.local/ns/shop/sa/product"}
    assert gateway and {r.connection_security_policy.value for r in gateway} == {"none"}
    outbound = client_records(records, ("api-gateway", "product"))
    assert {r.destination_principal for r in outbound} == {"cluster.local/ns/shop/sa/product"}


def test_applied_virtual_service_pins_traffic_live(mesh: LocalMesh) -> None:
    state = MeshState(mesh.resources).apply(
        _files("destination-rule.yaml", "virtual-service-all-v1.yaml")
    )
    mesh.apply(state.resources)
    records = client_records(send(mesh, products()), ("api-gateway", "product"))
    assert len(records) == 30
    assert {r.destination_version for r in records} == {"v1"}
    assert {r.upstream_cluster for r in records} == {
        "outbound|8080|v1|product.shop.svc.cluster.local"
    }


def test_envoy_rejection_surfaces_message_and_old_routes_keep_serving(mesh: LocalMesh) -> None:
    pinned = MeshState(mesh.resources).apply(
        _files("destination-rule.yaml", "virtual-service-all-v1.yaml")
    )
    mesh.apply(pinned.resources)
    with pytest.raises(ConfigRejectedError) as info:
        mesh.apply(pinned.apply(_load(BAD_REGEX)).resources)
    rejected = {r.proxy for r in info.value.rejections}
    assert "api-gateway-v1-0" in rejected
    one = next(r for r in info.value.rejections if r.proxy == "api-gateway-v1-0")
    # routes travel inside their listener here (one inotify watch less per route config)
    assert one.kind == "lds"
    assert one.resource == "0.0.0.0_8080 (RouteConfiguration 8080)"
    assert "missing ]" in one.message
    assert "error[MPY5001] Listener 0.0.0.0_8080 (RouteConfiguration 8080)" in str(info.value)
    records = client_records(send(mesh, products(10)), ("api-gateway", "product"))
    assert {r.destination_version for r in records} == {"v1"}
    mesh.apply(pinned.resources)


def test_error_rate_knob_fails_a_version_until_restored(mesh: LocalMesh) -> None:
    state = MeshState(mesh.resources).apply(_files("destination-rule.yaml"))
    state = state.delete(_files("virtual-service-all-v1.yaml"))
    mesh.apply(state.resources)
    mesh.break_workload(BreakAction(workload="product-v2", error_rate=1.0))
    records = client_records(send(mesh, products(40)), ("api-gateway", "product"))
    by_version = {
        v: {r.response_code for r in records if r.destination_version == v} for v in ("v1", "v2")
    }
    assert by_version["v1"] == {200}
    assert by_version["v2"] == {500}
    mesh.break_workload(BreakAction(workload="product-v2", restore=True))
    records = client_records(send(mesh, products(20)), ("api-gateway", "product"))
    assert {r.response_code for r in records} == {200}


def test_killed_pod_is_retried_on_the_other_version_then_restored(mesh: LocalMesh) -> None:
    mesh.break_workload(BreakAction(workload="product-v1", kill=1))
    records = client_records(send(mesh, products(20)), ("api-gateway", "product"))
    assert {r.destination_version for r in records} == {"v2"}
    # Istio's default retry policy retries connect failures on another host
    assert any(r.attempts > 1 for r in records)
    mesh.break_workload(BreakAction(workload="product-v1", restore=True))
    records = client_records(send(mesh, products(40)), ("api-gateway", "product"))
    assert {r.destination_version for r in records} == {"v1", "v2"}


def test_wait_idle_sees_a_call_that_outlives_its_callers_timeout(mesh: LocalMesh) -> None:
    # the client gives up after 0.3 s; api-gateway's call to the slowed product goes on for
    # ~0.8 s and is only logged then: the runner must wait for it before reading the logs
    mesh.break_workload(BreakAction(workload="product-v1", latency_ms=800))
    mesh.break_workload(BreakAction(workload="product-v2", latency_ms=800))
    try:
        tails = [AccessLogTail(p) for p in mesh.access_logs()]
        for tail in tails:
            tail.skip_to_end()
        report = drive(
            products(2, timeout_s=0.3), traffic_targets(mesh, products(2)), random.Random(3)
        )
        assert {o.status for o in report.outcomes} == {0}  # the client timed out
        assert mesh.requests_in_flight() > 0
        assert mesh.wait_idle(5.0)
        time.sleep(0.35)
        records = client_records([r for t in tails for r in t.read()], ("api-gateway", "product"))
        assert len(records) == 2 and all(r.duration_ms >= 790 for r in records)
    finally:
        for v in ("product-v1", "product-v2"):
            mesh.break_workload(BreakAction(workload=v, restore=True))


def test_traffic_from_a_workload_leaves_through_its_sidecar(mesh: LocalMesh) -> None:
    spec = TrafficSpec(
        from_="frontend-v1", to="product", requests=(RequestSpec(path="/products"),),
        rate_rps=50, count=15, duration_s=5,
    )  # fmt: skip
    records = client_records(send(mesh, spec), ("frontend", "product"))
    assert len(records) == 15
    assert {r.source_workload for r in records} == {"frontend-v1"}


def test_ingress_gateway_routes_by_gateway_virtual_service(mesh: LocalMesh) -> None:
    mesh.apply(MeshState(mesh.resources).apply(_load(GATEWAY)).resources)
    spec = TrafficSpec(
        from_="ingress", to="shop.example.com", requests=(RequestSpec(path="/api/products"),),
        concurrency=2, count=10, duration_s=10,
    )  # fmt: skip
    records = client_records(send(mesh, spec), ("ingress", "frontend"))
    assert len(records) == 10 and {r.response_code for r in records} == {200}


TLS_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gateway, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http-bookinfo, protocol: HTTP}
    hosts: [bookinfo.example.com]
  - port: {number: 80, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, credentialName: secure-cred}
  - port: {number: 443, name: https-mtls, protocol: HTTPS}
    hosts: [partner.example.com]
    tls: {mode: MUTUAL, credentialName: partner-cred}
  - port: {number: 443, name: https-nocred, protocol: HTTPS}
    hosts: [nocred.example.com]
    tls: {mode: SIMPLE, credentialName: absent-cred}
  - port: {number: 443, name: https-files, protocol: HTTPS}
    hosts: [files.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: /etc/istio/ingressgateway-certs/tls.crt
      privateKey: /etc/istio/ingressgateway-certs/tls.key
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-shop, namespace: shop}
spec:
  hosts: [bookinfo.example.com, secure.example.com, partner.example.com]
  gateways: [tls-gateway]
  http:
  - route:
    - destination: {host: frontend, port: {number: 8080}}
"""


CA = make_ca()
STRANGER = make_ca("someone else", "other.org").issue("client.example.com")
SECURE, PARTNER, CLIENT = (
    CA.issue(h) for h in ("secure.example.com", "partner.example.com", "client.example.com")
)
TLS_SECRETS = "---\n".join([
    secret_yaml("secure-cred", "istio-system", {"tls.crt": SECURE.cert_pem,
                                                 "tls.key": SECURE.key_pem}),
    secret_yaml("partner-cred", "istio-system", {"tls.crt": PARTNER.cert_pem,
                                                  "tls.key": PARTNER.key_pem}),
    secret_yaml("partner-cred-cacert", "istio-system", {"ca.crt": CA.cert_pem}),
    secret_yaml("client-ca", "shop", {"cacert": CA.cert_pem}, tls=False),
    secret_yaml("client", "shop", {"tls.crt": CLIENT.cert_pem, "tls.key": CLIENT.key_pem}),
    secret_yaml("stranger", "shop", {"tls.crt": STRANGER.cert_pem, "tls.key": STRANGER.key_pem}),
])  # fmt: skip


@pytest.mark.parametrize(
    ("host", "scheme", "ca", "cert", "statuses"),
    [
        # a server on the targetPort 8080 (Bookinfo's Gateway) serves the Service's port 80
        ("bookinfo.example.com", "http", "", "", {200}),
        # httpsRedirect: plaintext gets Envoy's 301 to https://
        ("secure.example.com", "http", "", "", {301}),
        # SIMPLE: TLS with SNI, the lesson's secure-cred, a client trusting the lesson's CA
        ("secure.example.com", "https", "client-ca", "", {200}),
        # ... and a client that does not trust it (only the run's mesh CA): no handshake
        ("secure.example.com", "https", "", "", {0}),
        # MUTUAL: with a client certificate the CA signed, without one, with a stranger's
        ("partner.example.com", "https", "client-ca", "client", {200}),
        ("partner.example.com", "https", "client-ca", "", {0}),
        ("partner.example.com", "https", "client-ca", "stranger", {0}),
        # credentialName without a Secret: the chain is not ready, the others serve
        ("nocred.example.com", "https", "client-ca", "", {0}),
        # certificate files a real gateway pod would have mounted: none here, same outcome
        ("files.example.com", "https", "client-ca", "", {0}),
    ],
)
def test_ingress_gateway_ports_and_https_servers_on_real_envoy(
    mesh: LocalMesh, host: str, scheme: str, ca: str, cert: str, statuses: set[int]
) -> None:
    mesh.apply(
        MeshState(mesh.resources).apply(_load(TLS_GATEWAY + "---\n" + TLS_SECRETS)).resources
    )
    spec = TrafficSpec(
        from_="ingress", to=host, scheme=scheme, client_certificate=cert, ca_certificate=ca,
        requests=(RequestSpec(path="/api/products"),), concurrency=1, count=3, duration_s=10,
    )  # fmt: skip
    report = drive(spec, traffic_targets(mesh, spec), random.Random(5))
    assert {o.status for o in report.outcomes} == statuses, [o.error for o in report.outcomes]


def test_proxy_status_reads_every_envoy_live(
    mesh: LocalMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHPLAY_STATE_DIR", str(tmp_path))
    record = MeshStateFile.of(mesh, "ecommerce")
    record.write(tmp_path / "local.json")
    again = MeshStateFile.read(tmp_path / "local.json")
    assert again is not None and again.alive()
    rows = [proxy_status(p) for p in again.pods if p.proxy != "none"]
    assert len(rows) == 9
    assert {r.state for r in rows} == {"LIVE"}
    assert all(r.cds == "SYNCED" for r in rows)
    # the NACKed regex above shows on the sidecars that rejected it (routes ride in listeners)
    rejected = {r.name for r in rows if r.lds.startswith("REJECTED")}
    assert "api-gateway-v1-0" in rejected
    assert "istio-ingressgateway-0" not in rejected
    dump = live_config_dump("product-v1", "dynamic_active_clusters")
    names = {c["cluster"]["name"] for c in dump["configs"]}
    assert "outbound|8080|v1|product.shop.svc.cluster.local" in names
