"""Free TCP ports on 127.0.0.1, allocated by the kernel (bind port 0), never fixed.

All sockets of one allocation are held open together, so the ports handed out are distinct; they
are closed just before the processes bind them. Envoy listeners are emitted with
``enable_reuse_port: false``, so should another program grab a port in between, the Envoy exits
with "Address already in use" instead of silently sharing it.
"""

from __future__ import annotations

import socket

__all__ = ["LOOPBACK", "free_ports"]

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()
