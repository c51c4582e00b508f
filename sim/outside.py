"""The servers outside the mesh: what answers a connection to a ServiceEntry host that no
simulated pod serves.

An external API (a ``MESH_EXTERNAL`` ServiceEntry) listens on the ports the entry declares;
a port declared ``HTTPS`` or ``TLS`` speaks TLS and nothing else. What the sim models is what
the proxy's cluster puts on the wire, as the real server on the local runner judges it
(``cluster.local.external``): plain HTTP to a TLS port is not a ClientHello, so the server
closes the connection (the proxy answers 503 ``UC``); a ClientHello naming another server (SNI)
fails the handshake (503 ``UF``); TLS with the server's own name is answered 200. A plaintext
port takes plain HTTP; TLS sent to it is garbage to the server, which closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mesh.model.gateway import ServiceEntryLocation
from mesh.topology import MeshService, Protocol
from sim.messages import Response

__all__ = ["Outside", "outside_of"]

_TLS = {Protocol.HTTPS, Protocol.TLS}


@dataclass(frozen=True, slots=True)
class Outside:
    """The external servers by ``(address, port)``: the SNI names each TLS port answers to
    (empty for a plaintext port)."""

    tls_names: dict[tuple[str, int], frozenset[str]]

    def answer(self, address: str, port: int, *, tls: bool, sni: str) -> Response:
        """What the server at ``address:port`` makes of a connection (``tls``: the proxy opens
        TLS naming ``sni``) carrying one HTTP request."""
        names = self.tls_names.get((address, port))
        if names is None:  # a server nothing describes (an IP:port): answers whatever it gets
            return Response(200)
        if not names:  # a plaintext port
            if tls:
                return Response(0, (), "connection_termination", local_failure="reset")
            return Response(200)
        if not tls:  # plain HTTP where a ClientHello was expected: closed
            return Response(0, (), "connection_termination", local_failure="reset")
        if sni not in names:  # the handshake fails: no certificate for that name
            details = "upstream_reset_before_response_started{connection_failure}"
            return Response(503, ("UF",), details, local_failure="connect")
        return Response(200)


def outside_of(services: Iterable[MeshService]) -> Outside:
    """The external servers the registry's MESH_EXTERNAL ServiceEntries describe: each host (and
    each of its ``addresses``) on each declared target port."""
    tls_names: dict[tuple[str, int], frozenset[str]] = {}
    for service in services:
        external = service.location is ServiceEntryLocation.MESH_EXTERNAL
        if not service.from_service_entry or not external:
            continue
        for port in service.ports:
            names = frozenset({service.hostname}) if port.protocol in _TLS else frozenset()
            for address in (service.hostname, *service.addresses):
                key = (address, port.target_port)
                tls_names[key] = tls_names.get(key, frozenset()) | names
    return Outside(tls_names)
