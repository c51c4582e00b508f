"""The TCP access log on real Envoy 1.40: a ``tcp_proxy`` built by the translator's listener
builder, to a local socket server (only 127.0.0.1), writes one JSON line per connection that
parses back into a ``request_protocol="tcp"`` RequestRecord."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh.envoy.accesslog import LogIdentity, record_from_access_log
from mesh.envoy.listeners import TcpChain, TcpLog, tcp_listener
from mesh.envoy.ports import ListenerAddress
from mesh.envoy_api.names import PASSTHROUGH_CLUSTER
from mesh.records import Reporter
from tests.mesh.envoy.real_envoy import free_port, read_log, wait_ready

ENVOY = Path(sys.executable).parent / "envoy"
CLUSTER = "outbound|5432||db.shop.svc.cluster.local"
ME = LogIdentity("client-v1", "shop", "client", "v1", "spiffe://cluster.local/ns/shop/sa/client")


@pytest.fixture
def db_server() -> Iterator[int]:
    """Reads 5 bytes, answers 11, closes: one connection at a time, bounded to 10."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        for _ in range(10):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                conn.recv(5)
                conn.sendall(b"hello world")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


@pytest.mark.envoy
def test_tcp_proxy_access_log_line_parses_into_a_tcp_record(tmp_path: Path, db_server: int) -> None:
    listen, refused, admin = free_port(), free_port(), free_port()
    log = TcpLog(str(tmp_path / "client.log"), ME, Reporter.SOURCE)
    listeners = [
        tcp_listener(
            ListenerAddress("127.0.0.1", port, True), [TcpChain(cluster)], log, PASSTHROUGH_CLUSTER
        )
        for port, cluster in ((listen, CLUSTER), (refused, "outbound|1||gone.shop"))
    ]
    doc = {
        "node": {"id": "sidecar~127.0.0.1~client.shop~shop.svc.cluster.local", "cluster": "c"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": [
                _cluster(CLUSTER, db_server),
                _cluster("outbound|1||gone.shop", free_port()),
            ],
        },
    }
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(doc))
    cmd = [str(ENVOY), "-c", str(config), "--concurrency", "1", "--disable-hot-restart"]
    cmd += ["--file-flush-interval-msec", "50", "-l", "error"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        wait_ready(admin, proc, deadline)
        with socket.create_connection(("127.0.0.1", listen), timeout=5) as s:
            s.sendall(b"query")
            answer = b""
            while chunk := s.recv(100):
                answer += chunk
        assert answer == b"hello world"
        with socket.create_connection(("127.0.0.1", refused), timeout=5) as s:
            s.settimeout(5)
            assert s.recv(100) == b""  # Envoy accepted, the upstream refused: closed
        lines = read_log(tmp_path / "client.log", 2, deadline)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    ok, failed = (record_from_access_log(line) for line in lines)
    assert (ok.request_protocol, ok.method, ok.path, ok.response_code) == ("tcp", "", "", 0)
    assert (ok.bytes_received, ok.bytes_sent) == (5, 11)
    assert ok.upstream_cluster == CLUSTER
    assert ok.upstream_host == f"127.0.0.1:{db_server}"
    assert ok.destination_service == "db.shop.svc.cluster.local"
    assert (ok.source_workload, ok.reporter, ok.response_flags) == (
        "client-v1",
        Reporter.SOURCE,
        (),
    )
    assert ok.duration_ms >= 0 and ok.ok
    # Envoy 1.40 tcp_proxy: a refused connect is UF, and URX (its one connect attempt used up)
    assert failed.response_flags == ("UF", "URX") and not failed.ok
    assert failed.bytes_sent == 0
