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
    "grpc-web": Protocol.GRPC_WEB,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "tcp": Protocol.TCP,
    "udp": Protocol.UDP,
    "mongo": Protocol.MONGO,
    "mysql": Protocol.MYSQL,
    "redis": Protocol.REDIS,
}
_APP_PROTOCOLS = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}


def port_protocol(
    name: str, app_protocol: str = "", transport: str = "TCP", port: int = 0
) -> Protocol:
    """Istio's port -> protocol rule (``pkg/config/kube/conversion.go``).

    UDP stays UDP; ``appProtocol`` wins over the name; otherwise the name's prefix before the
    first ``-``; unknown names on 25/53/3306/27017 are TCP; everything else is sniffed.
    """
    if transport.upper() == "UDP":
        return Protocol.UDP
    for candidate in (app_protocol,):
        if candidate:
            lowered = candidate.lower()
            if lowered in _APP_PROTOCOLS:
                return _APP_PROTOCOLS[lowered]
            if lowered in _PREFIXES:
                return _PREFIXES[lowered]
    lowered = name.lower()
    if lowered in _PREFIXES:
        return _PREFIXES[lowered]
    if lowered.startswith("grpc-web"):
        return Protocol.GRPC_WEB
    prefix = lowered.split("-", 1)[0]
    if prefix in _PREFIXES:
        return _PREFIXES[prefix]
    if port in {25, 53, 3306, 27017}:
        return Protocol.TCP
    return Protocol.UNSUPPORTED
