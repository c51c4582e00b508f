"""Free TCP ports on 127.0.0.1, allocated per run, never fixed.

Ports are picked below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``, usually
32768-60999), where nothing else gets ports implicitly: a port handed out by ``bind(0)`` is in
that range, and between the moment we release it and the moment Envoy or the app binds it, any
outgoing connection on the machine may take it as its source port. Candidates are checked by
binding them; all sockets of one allocation are held together, so the ports are distinct, and
closed just before the processes start. Istio's own 150xx ports are avoided. Envoy listeners
carry ``enable_reuse_port: false``, so a clash that still happens fails loudly ("Address
already in use") instead of two processes silently sharing a port.

A port handed out is not handed out again by this process for :data:`HANDED_HOLD_S`: a second
allocation during one start-up (a multi-cluster mesh's links, the monitoring beside a mesh)
cannot pick a port the first one released a moment ago and whose process has not bound it yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOOPBACK", "free_ports", "start_lock"]

LOOPBACK = "127.0.0.1"
LOW = 20000
AVOID = range(15000, 15100)
HANDED_HOLD_S = 300.0
"""How long a port this process handed out stays off the candidates (a start-up's span)."""
_handed: dict[int, float] = {}


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, LOW + 1000)


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that are free right now."""
    chooser = rng or random.Random(os.getpid() ^ time.monotonic_ns())
    high = _ephemeral_low()
    now = time.monotonic()
    for old, at in list(_handed.items()):
        if now - at > HANDED_HOLD_S:
            del _handed[old]
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        attempts = 0
        while len(ports) < count:
            attempts += 1
            if attempts > count * 50:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((LOOPBACK, 0))  # crowded range: let the kernel choose
            else:
                port = chooser.randrange(LOW, high)
                if port in AVOID or port in ports or port in _handed:
                    continue
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    sock.close()
                    continue
            socks.append(sock)
            ports.append(int(sock.getsockname()[1]))
        _handed.update(dict.fromkeys(ports, now))
        return ports
    finally:
        for sock in socks:
            sock.close()


@contextlib.contextmanager
def start_lock() -> Iterator[None]:
    """Serialise mesh start-ups across meshplay processes on this machine.

    Ports are checked free, released, then bound by Envoy and the apps a moment later; two meshes
    starting at the same time (two test runs, ``meshplay up`` beside a lesson run) could pick the
    same port in that gap. Holding this lock from allocation until every process has bound its
    ports closes the gap between meshplay processes (a start takes a few seconds).
    """
    path = Path(tempfile.gettempdir()) / "meshplay-local-start.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
