"""The local runner's parts on their own (no Envoy): file xDS layout, the SPIFFE CA, the process
supervisor and the bounded load generator."""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cluster.local.ca import LocalCA
from cluster.local.ports import free_ports
from cluster.local.procs import Supervisor, pid_alive, stop_pid
from cluster.local.traffic import Target, drive
from cluster.local.xds import ProxyResources, XdsFiles, fold_eds, to_file_sources
from mesh.envoy.accesslog import LogIdentity
from mesh.lesson import RequestSpec, TrafficSpec
from tests.cluster.handmade import client_sidecar


def resources(tmp: Path, weights: dict[str, int]) -> ProxyResources:
    me = LogIdentity("api-gateway-v1", "shop", "api-gateway", "v1", "spiffe://x")
    endpoints = {"v1": (1001, "w1"), "v2": (1002, "w2")}
    return client_sidecar(me, tmp / "log", 1000, endpoints, weights, mtls=True,
                          server_identity="spiffe://cluster.local/ns/shop/sa/product")  # fmt: skip


def test_config_sources_point_at_one_file_per_resource_name(tmp_path: Path) -> None:
    res = resources(tmp_path, {"v1": 1})
    listener = to_file_sources(res.listeners[0], tmp_path)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["rds"]["config_source"]["path_config_source"]["path"] == str(
        tmp_path / "rds" / "8080.json"
    )
    cluster = to_file_sources(res.clusters[0], tmp_path)
    sds = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    path = sds["tls_certificate_sds_secret_configs"][0]["sds_config"]["path_config_source"]["path"]
    assert path == str(tmp_path / "sds" / "default.json")
    eds = cluster["eds_cluster_config"]["eds_config"]["path_config_source"]["path"]
    assert eds.endswith("outbound%7C8080%7Cv1%7Cproduct.shop.svc.cluster.local.json")
    assert res.clusters[0]["eds_cluster_config"]["eds_config"] == {
        "ads": {},
        "resource_api_version": "V3",
    }


def test_eds_is_folded_into_static_clusters_to_save_inotify_watches(tmp_path: Path) -> None:
    folded = fold_eds(resources(tmp_path, {"v1": 1}))
    assert folded.endpoints == []
    assert {c["type"] for c in folded.clusters} == {"STATIC"}
    assert all("eds_cluster_config" not in c for c in folded.clusters)
    assert folded.clusters[0]["load_assignment"]["cluster_name"] == folded.clusters[0]["name"]


def test_only_changed_files_are_rewritten_atomically(tmp_path: Path) -> None:
    files = XdsFiles(tmp_path / "xds")
    first = files.write(resources(tmp_path, {"v1": 90, "v2": 10}))
    assert set(first.changed) == {"lds", "cds", "rds", "eds"}
    again = files.write(resources(tmp_path, {"v1": 90, "v2": 10}))
    assert again.empty and again.changed == {}
    shifted = files.write(resources(tmp_path, {"v1": 10, "v2": 90}))
    assert shifted.changed == {"rds": ("8080",)}
    assert shifted.files == (tmp_path / "xds" / "rds" / "8080.json",)
    body = json.loads(shifted.files[0].read_text())
    assert body["resources"][0]["@type"].endswith("RouteConfiguration")
    assert not list((tmp_path / "xds" / "rds").glob(".*.tmp"))


def test_ca_issues_spiffe_certificates_signed_by_its_root(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    issued = ca.issue("shop", "product")
    assert ca.issue("shop", "product") is issued
    cert = x509.load_pem_x509_certificate(issued.cert_chain.read_bytes())
    root = x509.load_pem_x509_certificate(issued.root.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/product"
    ]
    public = root.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(root)
    assert oct(issued.private_key.stat().st_mode & 0o777) == "0o600"
    files = issued.secrets(inline=False)
    assert files["default"]["tls_certificate"]["certificate_chain"]["filename"] == str(
        issued.cert_chain
    )
    assert files["ROOTCA"]["validation_context"]["trusted_ca"]["filename"] == str(issued.root)
    inline = issued.secrets()
    key = inline["default"]["tls_certificate"]["private_key"]["inline_string"]
    assert key.startswith("-----BEGIN PRIVATE KEY-----")


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]  # fmt: skip


def test_supervisor_stops_children_on_an_exception(tmp_path: Path) -> None:
    pids: list[int] = []

    def crash() -> None:
        with Supervisor(tmp_path, stop_timeout_s=0.5) as sup:
            pids.append(sup.start("a", SLEEPER, env=dict(os.environ)).pid)
            pids.append(sup.start("b", STUBBORN, env=dict(os.environ)).pid)  # ignores SIGTERM
            time.sleep(0.2)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        crash()
    assert len(pids) == 2
    assert not [p for p in pids if pid_alive(p)]


def test_stop_pid_spares_a_reused_pid(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        proc = sup.start("a", SLEEPER, env=dict(os.environ))
        assert proc.start_ticks is not None
        stop_pid(proc.pid, proc.start_ticks + 1)  # not the recorded process: left alone
        assert pid_alive(proc.pid)
        assert stop_pid(proc.pid, proc.start_ticks)
        assert not pid_alive(proc.pid)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok":true}'
        status = 200 if "fail" not in self.path else 503
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_closed_loop_stops_at_its_count(server: int) -> None:
    spec = TrafficSpec(requests=(RequestSpec(path="/ok", weight=3), RequestSpec(path="/fail")),
                       concurrency=4, count=50, duration_s=10)  # fmt: skip
    report = drive(spec, Target("127.0.0.1", server, "x"), random.Random(1))
    assert report.sent == 50
    codes = [o.status for o in report.outcomes]
    assert 20 <= codes.count(200) <= 48 and codes.count(200) + codes.count(503) == 50
    again = drive(spec, Target("127.0.0.1", server, "x"), random.Random(1))
    # the same seed gives the same request ids (the mix and ids come from the seeded rng)
    assert {o.request_id for o in again.outcomes} == {o.request_id for o in report.outcomes}


def test_a_count_without_a_duration_means_all_of_them_within_a_time_bound() -> None:
    # lesson 06 sends 20 orders one at a time, ~0.7 s each: a 10 s default cut it to 16
    from cluster.local.traffic import MAX_COUNT_DURATION_S, _limits

    one_at_a_time = TrafficSpec(concurrency=1, count=20, timeout_s=2.0)
    assert _limits(one_at_a_time) == (20, 40.0)
    assert _limits(TrafficSpec(concurrency=4, count=10, timeout_s=2.0)) == (10, 6.0)
    assert _limits(TrafficSpec(concurrency=1, count=10**6))[1] == MAX_COUNT_DURATION_S
    assert _limits(TrafficSpec(rate_rps=10, count=50, timeout_s=1.0)) == (50, 6.0)
    assert _limits(TrafficSpec(concurrency=1, count=20, duration_s=3.0)) == (20, 3.0)


def test_open_loop_keeps_its_rate_and_stops_at_its_duration(server: int) -> None:
    spec = TrafficSpec(requests=(RequestSpec(path="/ok"),), rate_rps=100, duration_s=1.0)
    report = drive(spec, Target("127.0.0.1", server, "x"), random.Random(2))
    assert 60 <= report.sent <= 140
    assert report.wall_s < 2.0


def test_cancel_stops_traffic_early_and_refused_connections_are_status_zero() -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    spec = TrafficSpec(requests=(RequestSpec(),), rate_rps=50, duration_s=30)
    report = drive(
        spec, Target("127.0.0.1", free_ports(1)[0], "x"), random.Random(3), cancel=cancel
    )
    timer.cancel()
    assert report.wall_s < 3.0
    assert report.sent > 0 and {o.status for o in report.outcomes} == {0}
