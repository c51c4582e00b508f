"""The generator pod's program (``python -m cluster.kube.loadgen``), run for real on 127.0.0.1.

It is what the pod runs, started the way the pod starts it (a process with ``MESHPLAY_TRAFFIC``
in its environment), against servers on this machine: its event lines, the project's generator
underneath (counts, ``${request_id}``), ``${jwt:EMAIL}`` from a token service, TCP
connections, and the knobs command. A last test proves it needs nothing the services image
lacks (no Kubernetes client, no web framework).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cluster.kube.loadgen import ENV_VAR, GeneratorJob, traffic_from_json, traffic_to_json
from cluster.local.traffic import Target
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model import FrozenMap

ROOT = Path(__file__).resolve().parents[3]


class _Shop(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        self._reply(200, {"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/users":
            self._reply(201, {"email": body["email"]})
        elif self.path == "/login":
            self._reply(200, {"access_token": f"token-of-{body['email']}"})
        else:
            self._reply(200, {"ok": True})

    def do_PUT(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.seen.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        self._reply(200, {"latency_ms": 5.0, "error_rate": 0.0, "refuse": False})


@pytest.fixture
def shop() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Shop,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def _program(job: GeneratorJob, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_VAR: job.to_json(), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cluster.kube.loadgen", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_job_survives_its_trip_through_the_environment() -> None:
    """TrafficSpec -> JSON -> TrafficSpec is the identity (headers, weights, TCP fields)."""
    spec = TrafficSpec(from_="order", to="payment", port=8080, rate_rps=5.0, count=20, timeout_s=60,
                       requests=(RequestSpec(method="POST", path="/charges", body="{}", weight=2.0,
                                             headers=FrozenMap({"idempotency-key": "${request_id}"})),),
                       protocol="tcp", send_bytes=517, receive_bytes=4096, hold_s=0.2)  # fmt: skip
    assert traffic_from_json(json.loads(json.dumps(traffic_to_json(spec)))) == spec
    job = GeneratorJob(spec, (Target("10.0.0.1", 8080, "payment:8080"),), 7, "http://user:8080")
    assert GeneratorJob.from_json(job.to_json()) == job


def test_program_drives_http_and_reports_its_events(shop: tuple[int, list[dict[str, Any]]]) -> None:
    """Twenty requests, closed loop: ``started`` (an epoch time), then ``done`` with the count;
    every request carries its own ``x-request-id`` and ``${request_id}`` becomes it; a
    ``${jwt:...}`` header carries the token the user service issued."""
    port, seen = shop
    spec = TrafficSpec(to="order", concurrency=2, count=20, requests=(RequestSpec(
        method="GET", path="/orders", headers=FrozenMap({
            "idempotency-key": "key-${request_id}", "authorization": "Bearer ${jwt:alice@shop.example}"})),))  # fmt: skip
    job = GeneratorJob(
        spec, (Target("127.0.0.1", port, "order:8080"),), 3, f"http://127.0.0.1:{port}"
    )
    out = _program(job)
    assert out.returncode == 0, out.stderr
    events = _events(out.stdout)
    assert events[0]["event"] == "started" and events[0]["at"] > 1.7e9
    assert events[-1]["event"] == "done" and events[-1]["sent"] == 20 and events[-1]["failed"] == 0
    orders = [s for s in seen if s["path"] == "/orders"]
    assert len(orders) == 20
    for s in orders:
        headers = {k.lower(): v for k, v in s["headers"].items()}
        assert headers["idempotency-key"] == "key-" + headers["x-request-id"]
        assert headers["authorization"] == "Bearer token-of-alice@shop.example"
    assert len({s["headers"].get("x-request-id") for s in orders}) == 20


def test_program_reports_a_token_service_that_fails() -> None:
    """No token service: one ``error`` event with the reason, exit 1."""
    spec = TrafficSpec(to="order", count=1, concurrency=1,
                       requests=(RequestSpec(headers=FrozenMap({"authorization": "Bearer ${jwt:a@b.c}"})),))  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    job = GeneratorJob(
        spec, (Target("127.0.0.1", closed, "order:8080"),), 1, f"http://127.0.0.1:{closed}"
    )
    out = _program(job)
    assert out.returncode == 1
    (event,) = _events(out.stdout)
    assert event["event"] == "error" and "cannot get tokens" in event["message"]


def test_program_opens_tcp_connections() -> None:
    """``protocol: tcp``: one connection per "request", bytes sent and read, bounded."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    got: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                got.append(len(conn.recv(1024)))
                conn.sendall(b"x" * 64)

    threading.Thread(target=serve, daemon=True).start()
    spec = TrafficSpec(
        to="127.0.0.1:1", protocol="tcp", send_bytes=100, receive_bytes=64, rate_rps=50.0, count=5
    )
    job = GeneratorJob(spec, (Target("127.0.0.1", server.getsockname()[1], ""),), 1)
    try:
        out = _program(job)
    finally:
        server.close()
    assert out.returncode == 0, out.stderr
    assert _events(out.stdout)[-1] == {"event": "done", "sent": 5, "failed": 0, "dropped": 0}
    assert got == [100] * 5


def test_knobs_command_puts_the_knobs(shop: tuple[int, list[dict[str, Any]]]) -> None:
    """``knobs PORT JSON`` is a PUT of the JSON to 127.0.0.1:PORT/admin/knobs."""
    port, seen = shop
    out = subprocess.run([sys.executable, "-m", "cluster.kube.loadgen", "knobs", str(port), '{"latency_ms": 5}'],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert seen == [{"path": "/admin/knobs", "body": {"latency_ms": 5}}]


def test_program_needs_only_what_the_services_image_has() -> None:
    """Importing the program with the Kubernetes and docker clients, the web stack and the
    simulator blocked succeeds: the image's packages (plus PyYAML) are enough."""
    blocked = ["kubernetes", "docker", "fastapi", "httpx", "simpy", "networkx", "textual", "uvicorn",
               "sqlalchemy", "rich", "pydantic", "psycopg", "redis", "envoy", "websocket", "urllib3"]  # fmt: skip
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("not in the image: " + name)
sys.meta_path.insert(0, Block())
import cluster.kube.loadgen
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    dockerfile = (ROOT / "services/Dockerfile").read_text()
    assert "COPY mesh/ /app/mesh/" in dockerfile and "COPY cluster/ /app/cluster/" in dockerfile
    assert '"pyyaml' in dockerfile and '"cryptography' in dockerfile
