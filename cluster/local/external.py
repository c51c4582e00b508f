"""The partner APIs outside the mesh, for real: one small HTTP server per external ServiceEntry
host, on 127.0.0.1, that the local runner's Envoys reach where the host's DNS would lead.

A host's ports are served as the ServiceEntry declares them: ``HTTPS``/``TLS`` ports speak TLS
only, with a certificate for the host issued by the run's CA (so a DestinationRule that trusts
that CA, through ``credentialName``, verifies it), and the others plain HTTP. A TLS port
checks what the proxy put on the wire: bytes that are not a TLS ClientHello are dropped
(the connection is closed, as a TLS server does with plain HTTP: Envoy logs 503 ``UC``), a
ClientHello naming another server fails the handshake; every completed handshake is counted
with its SNI, so a test can tell that the proxy, not the app, originated TLS.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from cluster.local.ca import LocalCA
from mesh.model import Resource, ServiceEntry
from mesh.model.gateway import ServiceEntryLocation, ServiceEntryResolution

__all__ = ["ExternalServer", "ExternalServers", "external_ports"]

_TLS = {"HTTPS", "TLS"}
_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a handshake (the ClientHello)


def external_ports(resources: Iterable[Resource]) -> dict[tuple[str, int], bool]:
    """``(host, target port) -> speaks TLS`` of every MESH_EXTERNAL, DNS-resolved ServiceEntry
    host in ``resources`` (the hosts a local run must stand up: nothing else resolves them)."""
    ports: dict[tuple[str, int], bool] = {}
    for r in resources:
        if not isinstance(r, ServiceEntry) or r.location is not ServiceEntryLocation.MESH_EXTERNAL:
            continue
        if r.resolution not in {ServiceEntryResolution.DNS, ServiceEntryResolution.DNS_ROUND_ROBIN}:
            continue
        for host in r.hosts:
            if "*" in host:
                continue
            for p in r.ports:
                tls = (p.protocol or "").upper() in _TLS
                ports[host, p.target_port or p.number] = tls
    return ports


@dataclass
class ExternalServer:
    """One port of one external host."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    sock: socket.socket
    handshakes: Counter[str] = field(default_factory=Counter)
    """Completed TLS handshakes by the SNI the client sent."""
    refused: int = 0
    """Connections closed because they were not TLS (on a TLS port) or failed the handshake."""
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _sni: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = self._check_sni

    def _check_sni(
        self, _s: ssl.SSLObject | ssl.SSLSocket, name: str | None, _c: ssl.SSLContext
    ) -> int | None:
        """The ClientHello's server name: this host's, or the handshake fails."""
        self._sni.name = name or ""
        return None if name == self.host else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        stream: socket.socket = conn
        try:
            if self.tls is not None:
                first = conn.recv(1, socket.MSG_PEEK)
                if not first or first[0] != _HANDSHAKE:
                    with self.lock:
                        self.refused += 1
                    return  # plain bytes on a TLS port: closed, no answer
                try:
                    stream = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self.lock:
                        self.refused += 1
                    return
                with self.lock:
                    self.handshakes[getattr(self._sni, "name", "")] += 1
            self._http(stream)
        except OSError:
            return
        finally:
            stream.close()
            conn.close()

    def _http(self, stream: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = stream.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            while len(buffer) < length:
                chunk = stream.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            with self.lock:
                self.requests += 1
            scheme = "https" if self.tls is not None else "http"
            body = f'{{"served_by": "{self.host}", "scheme": "{scheme}"}}'.encode()
            stream.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )


class ExternalServers:
    """The external hosts of a run, started together, stopped together."""

    def __init__(self, ports: dict[tuple[str, int], bool], ca: LocalCA) -> None:
        self.stop_event = threading.Event()
        self.servers: dict[tuple[str, int], ExternalServer] = {}
        for (host, port), tls in sorted(ports.items()):
            context: ssl.SSLContext | None = None
            if tls:
                cert = ca.issue_server(f"external-{host}", (host,))
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(str(cert.cert_chain), str(cert.private_key))
                context.set_alpn_protocols(["http/1.1"])
            sock = socket.create_server(("127.0.0.1", 0))
            sock.settimeout(0.2)  # the accept loop looks at the stop event this often
            self.servers[host, port] = ExternalServer(host, port, context, sock)
        self._threads = [
            threading.Thread(target=s.serve, args=(self.stop_event,), daemon=True)
            for s in self.servers.values()
        ]
        for t in self._threads:
            t.start()

    def addresses(self) -> dict[tuple[str, int], int]:
        """``(host, port) -> local port`` of every server (what DNS would resolve)."""
        return {key: s.local_port for key, s in self.servers.items()}

    def close(self) -> None:
        self.stop_event.set()
        for s in self.servers.values():
            s.sock.close()
        for t in self._threads:
            t.join(timeout=1.0)
