"""The latency-injecting hop between clusters: it adds the declared one-way delay to each
direction (a request/response pays it twice, a new connection's handshake once more each way),
carries bytes intact and in order, and closes a client's connection when the far side is
down."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.netdelay import Route, hop_argv, measure_rtt_ms
from cluster.local.ports import free_ports
from cluster.local.procs import Supervisor


class Echo:
    """A TCP server on 127.0.0.1: answers ``ping`` lines with one write, echoes anything else,
    closes when the client half-closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                if data.startswith(b"GET "):  # measure_rtt_ms: one answer, then close
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    return
                conn.sendall(data)


def _wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"hop on {port} not listening")


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    with Supervisor(Path(tmp_path_factory.mktemp("netdelay")) / "logs") as s:
        yield s


def _hop(sup: Supervisor, name: str, target: int, delay_ms: float) -> int:
    (port,) = free_ports(1)
    sup.start(name, hop_argv(sys.executable, [Route(port, target, delay_ms / 1000.0)]),
              env={"PYTHONPATH": str(ROOT)}, cwd=ROOT)  # fmt: skip
    _wait_listening(port)
    return port


@pytest.mark.parametrize("delay_ms", [10.0, 30.0])
def test_the_hop_adds_the_declared_delay_each_way(sup: Supervisor, delay_ms: float) -> None:
    echo = Echo()
    hop = _hop(sup, f"hop-{delay_ms:g}", echo.port, delay_ms)
    direct = measure_rtt_ms(echo.port, count=15)
    via = measure_rtt_ms(hop, count=15)
    added = via - direct
    # a new connection each time: the TCP handshake's round trip, then one delay for the
    # request and one for the answer (and its close, which travels with it)
    assert 4 * delay_ms - 1.0 <= added <= 4 * delay_ms + 12.0, (direct, via)
    sup.stop(f"hop-{delay_ms:g}")


def test_bytes_arrive_intact_and_in_order(sup: Supervisor) -> None:
    echo = Echo()
    hop = _hop(sup, "hop-bulk", echo.port, 5.0)
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the hop buffers at once
    got = bytearray()
    with socket.create_connection(("127.0.0.1", hop), timeout=10.0) as conn:

        def send() -> None:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=send)
        writer.start()
        while data := conn.recv(65536):
            got.extend(data)
        writer.join()
    assert bytes(got) == payload
    sup.stop("hop-bulk")


def test_a_down_target_closes_the_clients_connection(sup: Supervisor) -> None:
    (nobody,) = free_ports(1)
    hop = _hop(sup, "hop-down", nobody, 5.0)
    with socket.create_connection(("127.0.0.1", hop), timeout=10.0) as conn:
        conn.sendall(b"hello")
        assert conn.recv(10) == b""
    sup.stop("hop-down")


def test_a_declared_p99_spreads_each_chunks_delay_lognormally() -> None:
    """``latency: {median: 10ms, p99: 30ms}``: half the chunks wait less than 10 ms, one in a
    hundred more than 30 ms (the sim's link latency has the same shape)."""
    route = Route(1, 2, 0.010, 0.030)
    rng = random.Random(7)
    samples = sorted(route.sample(rng) for _ in range(20_000))
    assert abs(samples[10_000] - 0.010) < 0.0004
    assert abs(samples[19_800] - 0.030) < 0.0025
    assert Route(1, 2, 0.010).sample(rng) == 0.010  # no p99: a fixed delay
