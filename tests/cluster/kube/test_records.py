"""RequestRecords from ``istio-proxy`` logs: meshplay's Istio access-log format on real Envoy.

No Istio sidecar runs here, but its data plane is Envoy: the real Envoy 1.40 binary loads a
listener whose access log is exactly the ``labels`` of meshplay's providers (the
``%ENVIRONMENT(...)%`` operators fed by the variables Istio's injector sets) and writes the lines
the runner parses, for an HTTP request and for a TCP connection. The reader's own rules (which
lines are access-log lines, the pod's facts, the caller from the client-side line of the same
request) are proved on hand-made lines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kube.records import (
    PodFacts,
    complete_entry,
    link_callers,
    parse_log,
    records_from_logs,
)
from cluster.kube.telemetry import access_log_labels
from cluster.local.envoy import envoy_binary
from mesh.envoy.accesslog import record_from_access_log
from mesh.records import Reporter

PRODUCT = PodFacts("product-v1-7d9f-abcde", "shop", "product-v1", "product", "v1", "product",
                   ("product.shop.svc.cluster.local",))  # fmt: skip
GATEWAY = PodFacts(
    "api-gateway-v1-5c6d-xyz12", "shop", "api-gateway-v1", "api-gateway", "v1", "api-gateway"
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bootstrap(tmp: Path, http_port: int, tcp_port: int, admin: int) -> Path:
    log = str(tmp / "access.log")

    def access_log(reporter: Reporter) -> list[dict[str, Any]]:
        return [{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": log,
                "log_format": {"json_format": access_log_labels(reporter)},
            },
        }]  # fmt: skip

    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "0.0.0.0_8080",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": http_port}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "outbound_0.0.0.0_8080",
                            "access_log": access_log(Reporter.SOURCE),
                            "route_config": {"name": "8080", "virtual_hosts": [{
                                "name": "product.shop.svc.cluster.local:8080", "domains": ["*"],
                                "routes": [{"name": "default", "match": {"prefix": "/"},
                                            "direct_response": {"status": 503, "body": {"inline_string": "no"}}}]}]},
                            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        },
                    }]}],
                },
                {
                    "name": "203.0.113.9_443",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": tcp_port}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster",
                            "access_log": access_log(Reporter.SOURCE),
                        },
                    }]}],
                },
            ],
            "clusters": [{"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "1s"}],
        },
    }  # fmt: skip
    path = tmp / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.envoy
def test_real_envoy_writes_lines_the_runner_reads(tmp_path: Path) -> None:
    """Envoy accepts the providers' format (its operators exist in Envoy 1.40, the
    ``ENVIRONMENT`` ones read Istio's variables) and its lines become complete records: the
    pod's facts added, the logged request headers kept (``end-user``), a ``tcp_proxy`` line
    recognised as TCP by its empty ``%PROTOCOL%``."""
    http_port, tcp_port, admin = _port(), _port(), _port()
    config = _bootstrap(tmp_path, http_port, tcp_port, admin)
    env = {**os.environ, "ISTIO_META_WORKLOAD_NAME": "api-gateway-v1", "POD_NAMESPACE": "shop"}
    argv = [envoy_binary(), "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id",
            "--log-level", "error", "--file-flush-interval-msec", "100"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.read().strip() == b"LIVE":
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "envoy did not start"
            time.sleep(0.1)
        req = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/products/grinder",
            headers={
                "Host": "product:8080",
                "x-request-id": "rid-1",
                "x-b3-traceid": "abc123",
                "end-user": "jason",
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError):
            opener.open(req, timeout=5)
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as s:
            s.settimeout(5)
            s.recv(16)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = (
                (tmp_path / "access.log").read_text() if (tmp_path / "access.log").exists() else ""
            )
            if len(text.splitlines()) >= 2:
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    entries = parse_log("2026-12-04T20:00:00Z info envoy pilot-agent line\n" + text)
    assert len(entries) == 2, text
    http, tcp = sorted(entries, key=lambda e: e.get("protocol") or "")[::-1]
    assert http["source_workload"] == "api-gateway-v1" and http["source_namespace"] == "shop"
    assert http["protocol"] == "HTTP/1.1"
    r = record_from_access_log(complete_entry(http, GATEWAY))
    assert (r.reporter, r.method, r.path, r.authority, r.response_code) == (
        Reporter.SOURCE,
        "GET",
        "/products/grinder",
        "product:8080",
        503,
    )
    assert (r.source_app, r.source_version, r.request_id, r.trace_id) == (
        "api-gateway",
        "v1",
        "rid-1",
        "abc123",
    )
    assert r.source_principal == "cluster.local/ns/shop/sa/api-gateway"
    assert r.header("end-user") == "jason"  # ``user: jason`` expectations select by it
    t = record_from_access_log(complete_entry(tcp, GATEWAY))
    assert t.is_tcp and t.response_flags == ("UH",) and t.upstream_cluster == "BlackHoleCluster"
    assert t.destination_service_name == "BlackHoleCluster"


def _line(**fields: Any) -> str:
    base = {"start_time": "2026-12-04T20:00:01.000Z", "duration_ms": 3, "protocol": "HTTP/1.1",
            "method": "GET", "path": "/products", "response_code": 200, "response_flags": "-"}  # fmt: skip
    return json.dumps({**base, **fields})


def test_only_access_log_lines_are_read() -> None:
    """pilot-agent's text, Envoy's own JSON logs and broken lines are skipped."""
    text = "\n".join([
        "2026-12-04T20:00:00.1Z\tinfo\tads\tADS: new connection",
        '{"level": "info", "msg": "Envoy proxy is ready"}',
        '{"reporter": "source", "start_time": ',
        _line(reporter="source"),
    ])  # fmt: skip
    assert len(parse_log(text)) == 1


def test_server_side_lines_get_the_pod_and_the_caller() -> None:
    """A destination line gets the serving pod's workload and Service, and the caller's
    workload from the client-side line of the same request id to the same service."""
    client = complete_entry(json.loads(_line(reporter="source", request_id="r1",
        upstream_cluster="outbound|8080|v1|product.shop.svc.cluster.local")), GATEWAY)  # fmt: skip
    server = complete_entry(json.loads(_line(reporter="destination", request_id="r1",
        upstream_cluster="inbound|8080||", source_principal="spiffe://cluster.local/ns/shop/sa/api-gateway",
        connection_security_policy="TLSv1.3", destination_workload="product-v1;shop;;;Kubernetes")), PRODUCT)  # fmt: skip
    outsider = complete_entry(json.loads(_line(reporter="destination", request_id="r2",
        upstream_cluster="inbound|8080||")), PRODUCT)  # fmt: skip
    entries = [client, server, outsider]
    link_callers(entries)
    records = [record_from_access_log(e) for e in entries]
    assert records[1].source_app == "api-gateway" and records[1].source_workload == "api-gateway-v1"
    assert (
        records[1].destination_version == "v1"
        and records[1].destination_service == "product.shop.svc.cluster.local"
    )
    assert records[1].connection_security_policy.value == "mutual_tls"
    assert records[2].source_workload == "unknown"


def test_records_before_the_step_and_lines_read_twice_are_left_out() -> None:
    """``since`` cuts lines of earlier steps; a pod's log read before a kill and again at the
    end counts once."""
    text = _line(reporter="source", request_id="a", start_time="2026-12-04T20:00:01.000Z") + "\n" + _line(
        reporter="source", request_id="b", start_time="2026-12-04T20:00:09.000Z")  # fmt: skip
    since = 1796414405.0  # 2026-12-04T20:00:05Z
    records = records_from_logs(
        [(GATEWAY, text), (GATEWAY, text)], run_started_at=since - 5, since=since
    )
    assert [r.request_id for r in records] == ["b"]
    assert records[0].start_time == pytest.approx(9.0)
