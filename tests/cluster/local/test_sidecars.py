"""Real Envoy sidecars in front of the real product service (v1 and v2), configured by hand in
the translator's shapes: weighted routing, access-log records, live xDS updates, rejected
updates, mTLS through file-based SDS, and a killed replica."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cluster.accesslog import AccessLogTail
from cluster.local.apps import ROOT, app_argv, app_env
from cluster.local.ca import LocalCA
from cluster.local.envoy import ConfigRejectedError, EnvoyProxy
from cluster.local.ports import free_ports
from cluster.local.procs import Supervisor
from cluster.local.traffic import Target, drive
from mesh.app import load_app
from mesh.envoy.accesslog import LogIdentity
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model.common import FrozenMap
from mesh.model.kubernetes import Deployment
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from tests.cluster.handmade import client_sidecar, server_sidecar

pytestmark = pytest.mark.envoy

APP = ROOT / "lessons" / "apps" / "ecommerce"
SA_GATEWAY = "spiffe://cluster.local/ns/shop/sa/api-gateway"
SA_PRODUCT = "spiffe://cluster.local/ns/shop/sa/product"


@dataclass
class Mesh:
    sup: Supervisor
    client: EnvoyProxy
    servers: dict[str, EnvoyProxy]
    logs: list[Path]
    outbound_port: int
    endpoints: dict[str, tuple[int, str]]
    me: LogIdentity
    ca: LocalCA
    client_log: Path

    def drive(self, n: int, headers: dict[str, str] | None = None) -> list[RequestRecord]:
        tails = [AccessLogTail(p) for p in self.logs]
        for t in tails:
            t.skip_to_end()
        request = RequestSpec(path="/products", headers=FrozenMap(headers or {}))
        spec = TrafficSpec(requests=(request,), concurrency=4, count=n, duration_s=20)
        report = drive(
            spec, Target("127.0.0.1", self.outbound_port, "product:8080", True), random.Random(3)
        )
        assert report.sent == n
        time.sleep(0.35)  # access logs are flushed every 100 ms
        return [r for t in tails for r in t.read()]

    def outbound(self, weights: dict[str, int], mtls: bool = True) -> object:
        return client_sidecar(
            self.me, self.client_log, self.outbound_port, self.endpoints, weights,
            mtls=mtls, server_identity=SA_PRODUCT,
            secrets=list(self.ca.issue("shop", "api-gateway").secrets().values()),
        )  # fmt: skip


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    work = tmp_path_factory.mktemp("sidecars")
    app = load_app(APP)
    deployments = {r.name: r for r in app.resources if isinstance(r, Deployment)}
    ca = LocalCA(work / "ca")
    product_secrets = list(ca.issue("shop", "product").secrets().values())
    with Supervisor(work / "logs") as sup:
        ports = free_ports(12)
        endpoints: dict[str, tuple[int, str]] = {}
        servers: dict[str, EnvoyProxy] = {}
        logs = []
        for i, version in enumerate(("v1", "v2")):
            container = deployments[f"product-{version}"].spec.template.spec.containers[0]
            app_port, admin, inbound, envoy_admin = ports[i * 4 : i * 4 + 4]
            env = app_env(container, port=app_port, admin_port=admin,
                          data_dir=work / f"data-{version}", http_proxy=None, seed=1)  # fmt: skip
            sup.start(f"product-{version}", app_argv(container), env=env, cwd=ROOT)
            me = LogIdentity(f"product-{version}", "shop", "product", version, SA_PRODUCT)
            log = work / f"product-{version}.access.log"
            logs.append(log)
            proxy = EnvoyProxy(name=f"product-{version}", workdir=work / f"envoy-{version}",
                               supervisor=sup, node_id=f"sidecar~product-{version}",
                               node_cluster="product.shop", admin_port=envoy_admin,
                               inline_routes=False)  # fmt: skip
            proxy.start(server_sidecar(me, log, inbound, app_port, mtls=True,
                                       secrets=product_secrets))  # fmt: skip
            servers[version] = proxy
            endpoints[version] = (inbound, f"product-{version};shop;product;{version};Kubernetes")
        outbound_port, client_admin = ports[8:10]
        me = LogIdentity("api-gateway-v1", "shop", "api-gateway", "v1", SA_GATEWAY)
        client_log = work / "api-gateway.access.log"
        logs.append(client_log)
        client = EnvoyProxy(name="api-gateway", workdir=work / "envoy-client", supervisor=sup,
                            node_id="sidecar~api-gateway", node_cluster="api-gateway.shop",
                            admin_port=client_admin, inline_routes=False)  # fmt: skip
        m = Mesh(sup, client, servers, logs, outbound_port, endpoints, me, ca, client_log)
        client.start(m.outbound({"v1": 90, "v2": 10}))  # type: ignore[arg-type]
        for proxy in (client, *servers.values()):
            proxy.wait_ready()
        with httpx.Client(trust_env=False) as http:
            for i in range(2):
                admin = ports[i * 4 + 1]
                deadline = time.monotonic() + 20
                while True:
                    try:
                        if http.get(f"http://127.0.0.1:{admin}/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, sup.procs[f"product-v{i + 1}"].log_tail()
                    time.sleep(0.05)
        yield m


def test_weighted_routing_splits_requests_and_both_sidecars_log_each_request(mesh: Mesh) -> None:
    records = mesh.drive(300)
    source = [r for r in records if r.reporter is Reporter.SOURCE]
    dest = [r for r in records if r.reporter is Reporter.DESTINATION]
    assert len(source) == 300 and len(dest) == 300
    assert all(r.response_code == 200 for r in source)
    versions = Counter(r.destination_version for r in source)
    assert 0.04 <= versions["v2"] / 300 <= 0.18, versions
    assert {r.request_id for r in source} == {r.request_id for r in dest}
    one = source[0]
    assert one.source_workload == "api-gateway-v1"
    assert one.destination_service == "product.shop.svc.cluster.local"
    assert one.upstream_cluster.startswith("outbound|8080|v")


def test_both_sidecars_log_the_user_header_expectations_select_by(mesh: Mesh) -> None:
    """``%REQ(END-USER)%`` in the JSON format: real Envoy writes the header on both sides, so
    ``header: {end-user: jason}`` and ``user: jason`` select the same requests as on sim."""
    records = mesh.drive(20, {"end-user": "jason", "x-other": "1"})
    assert len(records) == 40
    assert {r.request_headers for r in records} == {(("end-user", "jason"),)}
    plain = mesh.drive(10)
    assert {r.header("end-user") for r in plain} == {""}


def test_sidecars_speak_mutual_tls_with_spiffe_identities(mesh: Mesh) -> None:
    records = mesh.drive(20)
    dest = [r for r in records if r.reporter is Reporter.DESTINATION]
    assert dest and all(
        r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS for r in dest
    )
    assert {r.source_principal for r in dest} == {SA_GATEWAY.removeprefix("spiffe://")}
    assert {r.destination_principal for r in dest} == {SA_PRODUCT.removeprefix("spiffe://")}


def test_weights_change_live_without_restarting_envoy(mesh: Mesh) -> None:
    pid = mesh.client.process.pid if mesh.client.process else 0
    written = mesh.client.apply(mesh.outbound({"v1": 0, "v2": 100}))  # type: ignore[arg-type]
    assert written.changed == {"rds": ("8080",)}
    records = mesh.drive(40)
    assert {r.destination_version for r in records if r.reporter is Reporter.SOURCE} == {"v2"}
    assert mesh.client.process is not None and mesh.client.process.pid == pid
    mesh.client.apply(mesh.outbound({"v1": 90, "v2": 10}))  # type: ignore[arg-type]


def test_rejected_route_names_resource_and_envoy_message_and_old_config_serves(mesh: Mesh) -> None:
    good = mesh.outbound({"v1": 100, "v2": 0})
    mesh.client.apply(good)  # type: ignore[arg-type]
    bad = mesh.outbound({"v1": 0, "v2": 100})
    route = bad.routes[0]  # type: ignore[attr-defined]
    route["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "([unclosed"}}
    with pytest.raises(ConfigRejectedError) as info:
        mesh.client.apply(bad)  # type: ignore[arg-type]
    (rejection,) = info.value.rejections
    assert rejection.kind == "rds" and rejection.resource == "8080"
    assert "missing ]" in rejection.message
    assert "error[MPY5001] RouteConfiguration 8080" in str(info.value)
    records = mesh.drive(20)
    assert {r.destination_version for r in records if r.reporter is Reporter.SOURCE} == {"v1"}
    unknown = mesh.outbound({"v1": 50, "v2": 50})
    unknown.clusters[0]["bogus_field"] = 1  # type: ignore[attr-defined]
    with pytest.raises(ConfigRejectedError) as info:
        mesh.client.apply(unknown)  # type: ignore[arg-type]
    assert info.value.rejections[0].kind == "cds"
    assert "bogus_field" in info.value.rejections[0].message
    mesh.client.apply(mesh.outbound({"v1": 90, "v2": 10}))  # type: ignore[arg-type]


def test_killed_replica_fails_with_uf_until_restarted(mesh: Mesh) -> None:
    mesh.client.apply(mesh.outbound({"v1": 100, "v2": 0}))  # type: ignore[arg-type]
    mesh.sup.stop("product-v1")
    records = mesh.drive(10)
    source = [r for r in records if r.reporter is Reporter.SOURCE]
    assert {r.response_code for r in source} == {503}
    # the server sidecar cannot connect to its app: it answers 503 UF; the client passes it on
    dest = [r for r in records if r.reporter is Reporter.DESTINATION]
    assert dest and all("UF" in r.response_flags for r in dest)
    mesh.sup.restart("product-v1")
    deadline = time.monotonic() + 20
    while True:
        codes = {r.response_code for r in mesh.drive(4) if r.reporter is Reporter.SOURCE}
        if codes == {200}:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
