"""The stand-in for an external API (``cluster.local.external``), without Envoy: a TLS port
answers only a TLS client that names the host, closes plain HTTP, and counts handshakes by SNI;
a plaintext port answers plain HTTP; only MESH_EXTERNAL DNS ServiceEntry hosts are stood up."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.local.ca import LocalCA
from cluster.local.external import ExternalServers, external_ports
from mesh.source import load_text

HOST = "rates.partner.example"
ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: shop}
spec:
  hosts: [rates.partner.example]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: shop}
spec:
  hosts: [psp.example.com]
  addresses: [203.0.113.9]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 203.0.113.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: shop}
spec:
  hosts: [legacy.internal]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""
REQUEST = b"GET /v1/rates HTTP/1.1\r\nhost: rates.partner.example\r\n\r\n"


def eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """The server counts on its own thread, after the client has seen the outcome."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


@pytest.fixture
def servers(ca: LocalCA) -> Iterator[ExternalServers]:
    loaded = load_text(ENTRIES, "entries.yaml")
    assert loaded.ok
    s = ExternalServers(external_ports(loaded.resources), ca)
    yield s
    s.close()


def test_only_external_dns_hosts_are_stood_up(servers: ExternalServers) -> None:
    assert set(servers.servers) == {(HOST, 80), (HOST, 443)}
    assert servers.servers[HOST, 443].tls is not None
    assert servers.servers[HOST, 80].tls is None


def _tls(ca: LocalCA, port: int, sni: str) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca.root_file))
    ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        tls.sendall(REQUEST)
        return tls.recv(4096)


def test_tls_port_answers_a_client_naming_the_host(servers: ExternalServers, ca: LocalCA) -> None:
    server = servers.servers[HOST, 443]
    answer = _tls(ca, server.local_port, HOST)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"scheme": "https"' in answer
    assert dict(server.handshakes) == {HOST: 1}
    assert server.requests == 1


def test_tls_port_fails_the_handshake_for_another_name(
    servers: ExternalServers, ca: LocalCA
) -> None:
    server = servers.servers[HOST, 443]
    with pytest.raises(ssl.SSLError):
        _tls(ca, server.local_port, "other.example")
    assert eventually(lambda: server.refused == 1)
    assert server.requests == 0


def test_tls_port_closes_plain_http(servers: ExternalServers) -> None:
    server = servers.servers[HOST, 443]
    with socket.create_connection(("127.0.0.1", server.local_port), timeout=5) as raw:
        raw.sendall(REQUEST)
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:  # closed with the request unread: a reset
            answer = b""
        assert answer == b""  # closed, no answer
    assert eventually(lambda: server.refused == 1)
    assert not server.handshakes


def test_plaintext_port_answers_plain_http(servers: ExternalServers) -> None:
    server = servers.servers[HOST, 80]
    with socket.create_connection(("127.0.0.1", server.local_port), timeout=5) as raw:
        raw.sendall(REQUEST)
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    assert server.requests == 1
