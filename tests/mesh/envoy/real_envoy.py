"""Helpers for the tests that start a real Envoy 1.40 process: a free port, a bounded upstream
server, Envoys started from bootstrap files and stopped by PID, wait for an admin ``/ready``, read
a JSON access log."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (never a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def http_or_raw_server(connections: int, timeout_s: float) -> Iterator[int]:
    """An app on 127.0.0.1 (its port is yielded) that answers an HTTP request (GET or POST) with
    200 ``http`` and any other bytes with ``raw``: one connection at a time, at most
    ``connections`` of them, none after ``timeout_s`` without one; closed on exit."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(timeout_s)

    def serve() -> None:
        for _ in range(connections):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(4096)
                except OSError:
                    continue
                if data[:4] in {b"GET ", b"POST"}:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nhttp"
                    )
                else:
                    conn.sendall(b"raw")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def wait_ready(admin: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the admin listener on ``admin`` says ready; the tail of stderr if Envoy exits."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"envoy exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=0.5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise AssertionError("envoy did not become ready in time")


def read_log(path: Path, expected: int, deadline: float) -> list[dict[str, Any]]:
    """The first ``expected`` or more JSON lines of an access log, once Envoy has flushed them."""
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= expected:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: fewer than {expected} access-log lines")


@contextmanager
def running_envoys(
    configs: Sequence[tuple[Path, int | None]], *, flush_ms: int | None = 50, timeout_s: float = 30
) -> Iterator[tuple[list[subprocess.Popen[bytes]], float]]:
    """One Envoy per (bootstrap file, admin port) on one worker thread, errors only, each ready
    (when its admin port is given) before the body runs; yields the processes and the deadline
    (``timeout_s`` from the start) for the body's own waits. ``flush_ms``: how often access
    logs are flushed (None: Envoy's default). Every process is stopped on exit, killed if it
    does not end within 5 s."""
    from tests.mesh.envoy.test_golden import envoy_binary  # the test module's locator

    procs: list[subprocess.Popen[bytes]] = []
    try:
        for config, admin in configs:
            cmd = [str(envoy_binary()), "-c", str(config), "--concurrency", "1", "-l", "error"]
            cmd += ["--disable-hot-restart"]
            if flush_ms is not None:
                cmd += ["--file-flush-interval-msec", str(flush_ms)]
            if admin is not None:
                cmd += ["--base-id", str(admin)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + timeout_s
        for proc, (_, admin) in zip(procs, configs, strict=True):
            if admin is not None:
                wait_ready(admin, proc, deadline)
        yield procs, deadline
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
