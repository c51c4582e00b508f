"""The protocol Istio gives a service port, from its name or ``appProtocol``
(``pkg/config/kube/conversion.go``): HTTP ports get the HTTP connection manager, TCP ports
``tcp_proxy``, and an unknown one is sniffed."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Protocol", "port_protocol"]


class Protocol(StrEnum):
    """The protocol Istio assigns a port (by name prefix or appProtocol); UNSUPPORTED = sniffed."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"
    MONGO = "Mongo"
    MYSQL = "MySQL"
    REDIS = "Redis"
    UNSUPPORTED = "UNSUPPORTED"

    @property
    def is_http(self) -> bool:
        """Whether Envoy handles it with the HTTP connection manager."""
        return self in {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB}


_PREFIXES = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "tcp": Protocol.TCP,
    "udp": Protocol.UDP,
    "mongo": Protocol.MONGO,
    "mysql": Protocol.MYSQL,
    "redis": Protocol.REDIS,
}
"""``protocol.Parse`` on a name's prefix before the first ``-``, case-insensitive."""
_KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}
"""The ``appProtocol`` values Kubernetes itself defines, matched exactly (case-sensitive)."""
_WELL_KNOWN_PORTS = frozenset({25, 53, 3306, 27017})
"""SMTP, DNS, MySQL, MongoDB: never sniffed (a server-first protocol would hang)."""


def port_protocol(
    name: str, app_protocol: str = "", transport: str = "TCP", port: int = 0
) -> Protocol:
    """Istio's port -> protocol rule (``ConvertProtocol`` in ``pkg/config/kube/conversion.go``).

    UDP stays UDP. A set ``appProtocol`` *replaces* the port name: one of Kubernetes' own values
    (``kubernetes.io/h2c``, ``/ws``, ``/wss``) maps directly, anything else is read exactly as a
    name would be, so an ``appProtocol`` Istio does not know makes the port unsupported (sniffed)
    even when the name says ``http``: istiod never falls back to the name. The name (or
    appProtocol) is read by its prefix before the first ``-`` (``grpc-web`` first, since it
    contains one); an unknown one on 25/53/3306/27017 is TCP, anywhere else it is sniffed.
    """
    if transport.upper() == "UDP":
        return Protocol.UDP
    text = name
    if app_protocol:
        if app_protocol in _KUBERNETES_APP_PROTOCOLS:
            return _KUBERNETES_APP_PROTOCOLS[app_protocol]
        text = app_protocol
    lowered = text.lower()
    if lowered.startswith("grpc-web"):
        return Protocol.GRPC_WEB
    found = _PREFIXES.get(lowered.split("-", 1)[0], Protocol.UNSUPPORTED)
    if found is Protocol.UNSUPPORTED and port in _WELL_KNOWN_PORTS:
        return Protocol.TCP
    return found
