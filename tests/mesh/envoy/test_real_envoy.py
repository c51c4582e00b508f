"""The translation runs on real Envoy: two sidecars on 127.0.0.1 through a PortMap.

frontend's app uses its sidecar as a plain HTTP proxy (absolute-form URL, like ``HTTP_PROXY``)
or sends ``Host: product:8080`` to it; the client sidecar routes by host to
``outbound|8080||product...``, whose endpoint is product's sidecar inbound port, which forwards to
product's app. Between the sidecars the translation's auto mTLS applies (SPIFFE certificates from
the local CA; product's default PERMISSIVE chains also take a plaintext client). Both sidecars'
JSON access logs parse back into RequestRecords, with the peer principal from the certificate.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cluster.local.ca import LocalCA
from mesh.envoy import (
    PodPorts,
    PortMap,
    TranslateOptions,
    bootstrap,
    record_from_access_log,
    translate,
)
from mesh.model import FrozenMap
from mesh.records import ConnectionSecurityPolicy, Reporter
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port, read_log, wait_ready

ENVOY = Path(sys.executable).parent / "envoy"

MESH = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: product, namespace: shop}
spec:
  selector: {app: product}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product, version: v1}}
    spec:
      serviceAccountName: product
      containers: [{name: app, image: product, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: shop}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend, version: v1}}
    spec:
      containers: [{name: app, image: frontend, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: product, namespace: shop}
spec:
  hosts: [product]
  http:
  - name: teapot
    match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: product}}]
  - name: all
    route: [{destination: {host: product}}]
"""


class _App(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "host": self.headers.get("host")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.envoy
def test_two_sidecars_route_proxy_requests_and_log_records(tmp_path: Path, app_server: int) -> None:
    loaded = load_text(MESH, "mesh.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    topology = build_topology(loaded.resources, include_istio_system=False)
    front_out, front_in, product_in = free_port(), free_port(), free_port()
    port_map = PortMap.of(
        {
            "frontend-v1-0": PodPorts(
                listeners=FrozenMap({8080: front_out}),
                inbound=FrozenMap({8080: front_in}),
                app=FrozenMap({8080: free_port()}),
            ),
            "product-v1-0": PodPorts(
                inbound=FrozenMap({8080: product_in}), app=FrozenMap({8080: app_server})
            ),
        }
    )
    options = TranslateOptions(port_map=port_map, access_log_path=str(tmp_path / "{pod}.log"))
    config = translate(loaded.resources, topology, options)
    ca = LocalCA(tmp_path / "ca")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admins = {}
        for pod in ("frontend-v1-0", "product-v1-0"):
            admins[pod] = free_port()
            path = tmp_path / f"{pod}.yaml"
            _, ns, _, sa = (
                config[pod].pod.identity.removeprefix("spiffe://cluster.local/").split("/")
            )
            secrets = tuple(ca.issue(ns, sa).secrets().values())
            doc = bootstrap(config[pod], admin_port=admins[pod], secrets=secrets)
            path.write_text(yaml.safe_dump(doc))
            cmd = [str(ENVOY), "-c", str(path), "--concurrency", "1", "--disable-hot-restart"]
            cmd += ["--file-flush-interval-msec", "50", "-l", "error"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 20
        for proc, admin in zip(procs, admins.values(), strict=True):
            wait_ready(admin, proc, deadline)

        proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{front_out}"})
        opener = urllib.request.build_opener(proxy)
        with opener.open("http://product:8080/items?id=1", timeout=5) as response:
            assert response.status == 200
            assert json.loads(response.read())["path"] == "/items?id=1"
        request = urllib.request.Request(
            f"http://127.0.0.1:{front_out}/plain", headers={"Host": "product.shop:8080"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["path"] == "/plain"
        with pytest.raises(urllib.error.HTTPError) as fault:
            opener.open("http://product:8080/fault", timeout=5)
        assert fault.value.code == 418
        # a client without a sidecar, in plaintext, straight to product's inbound port
        direct = urllib.request.Request(
            f"http://127.0.0.1:{product_in}/direct", headers={"Host": "product.shop:8080"}
        )
        with urllib.request.urlopen(direct, timeout=5) as response:
            assert json.loads(response.read())["path"] == "/direct"

        client = [
            record_from_access_log(e) for e in read_log(tmp_path / "frontend-v1-0.log", 3, deadline)
        ]
        server = [
            record_from_access_log(e) for e in read_log(tmp_path / "product-v1-0.log", 3, deadline)
        ]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    by_path = {r.path: r for r in client}
    ok = by_path["/items?id=1"]
    assert ok.reporter is Reporter.SOURCE
    assert (ok.source_workload, ok.source_namespace) == ("frontend-v1", "shop")
    assert ok.destination_service == "product.shop.svc.cluster.local"
    assert (ok.destination_workload, ok.destination_version) == ("product-v1", "v1")
    assert ok.upstream_cluster == "outbound|8080||product.shop.svc.cluster.local"
    assert ok.route_name == "all"
    assert (ok.response_code, ok.attempts) == (200, 1)
    teapot = by_path["/fault"]
    assert (teapot.response_code, teapot.response_flags, teapot.route_name) == (
        418,
        ("FI",),
        "teapot",
    )

    assert ok.destination_principal == "cluster.local/ns/shop/sa/product"
    inbound = {r.path: r for r in server}["/items?id=1"]
    assert inbound.reporter is Reporter.DESTINATION
    assert (inbound.source_workload, inbound.source_app) == ("frontend-v1", "frontend")
    assert inbound.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
    assert inbound.source_principal == config["frontend-v1-0"].pod.identity.removeprefix(
        "spiffe://"
    )
    assert inbound.destination_principal == "cluster.local/ns/shop/sa/product"
    plain = {r.path: r for r in server}["/direct"]
    assert plain.connection_security_policy is ConnectionSecurityPolicy.NONE
    assert (plain.source_principal, plain.response_code) == ("unknown", 200)
    assert inbound.destination_workload == "product-v1"
    assert inbound.destination_service == "product.shop.svc.cluster.local"
    assert inbound.upstream_cluster == "inbound|8080||"
    assert inbound.request_id == ok.request_id != ""
    assert "/fault" not in {r.path for r in server}, "a fault abort never reaches the server"
