"""The traffic a lesson drives: HTTP requests in a weighted mix, or TCP connections.

:class:`TrafficSpec` is a step's (or the lesson's) ``traffic:`` block, open or closed loop;
:class:`RequestSpec` is one kind of request in its mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mesh.envoy_api.names import BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER
from mesh.model.common import FrozenMap

__all__ = [
    "REQUEST_ID_PLACEHOLDER",
    "SPECIAL_SERVICES",
    "TRAFFIC_PROTOCOLS",
    "TRAFFIC_SCHEMES",
    "RequestSpec",
    "TrafficSpec",
    "parse_address",
]


TRAFFIC_PROTOCOLS = ("http", "tcp")
TRAFFIC_SCHEMES = ("http", "https")
"""Values of ``traffic.protocol``."""

SPECIAL_SERVICES = (PASSTHROUGH_CLUSTER, BLACKHOLE_CLUSTER)
"""``destination_service_name`` of traffic that matched no Service (Istio's metric label):
valid as the service of an ``edge`` (``api-gateway->BlackHoleCluster``)."""


def parse_address(text: str) -> tuple[str, int] | None:
    """``"203.0.113.9:443"`` -> ``("203.0.113.9", 443)``; None when ``text`` is not an IPv4
    address with a port (a Service name, say)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return host, int(port)


REQUEST_ID_PLACEHOLDER = "${request_id}"
"""In a request header value: replaced by the request's ``x-request-id`` when it is sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """One kind of request in the traffic mix, chosen with probability proportional to weight."""

    YAML_KEYS: ClassVar[str] = "snake"

    method: str = "GET"
    path: str = "/"
    headers: FrozenMap[str, str] = field(default_factory=FrozenMap)
    body: str = ""
    weight: float = 1.0

    def headers_for(self, request_id: str) -> dict[str, str]:
        """The headers of one request with id ``request_id``: ``${request_id}`` in a value
        becomes that id, so ``Idempotency-Key: ${request_id}`` gives every request its own key
        (and every retry of it, which Envoy sends with the same headers, the same key)."""
        return {
            k: v.replace(REQUEST_ID_PLACEHOLDER, request_id) if "${" in v else v
            for k, v in self.headers.items()
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficSpec:
    """Load to drive during a step.

    Open loop: ``rate_rps`` Poisson arrivals. Closed loop: ``concurrency`` clients each sending the
    next request when the previous answers (like ``fortio load -c N``). Ends after ``duration_s``
    of simulated/real time or ``count`` requests, whichever comes first.

    ``protocol: tcp`` makes each "request" one TCP connection (no HTTP): the client sends
    ``send_bytes``, the server answers ``receive_bytes``, and the connection stays open for
    ``hold_s`` before the client closes it. ``to`` is then a Service name or an address
    ``IP:port`` (e.g. ``203.0.113.9:443``, a host outside the mesh).

    ``scheme: https`` (``from: ingress`` only): the client speaks TLS to the gateway with the
    Host as SNI, checking the server's certificate against the CA of the Secret
    ``ca_certificate`` names (``curl --cacert``; unset: the mesh's own CA only);
    ``client_certificate`` names a Secret whose certificate and key it presents (``curl --cert
    --key``: what a MUTUAL server asks for). ``sni`` (``protocol: tcp`` only): the
    connection opens with a TLS ClientHello naming that server (the app speaks TLS itself; its
    sidecar routes by SNI).
    """

    YAML_KEYS: ClassVar[str] = "snake"

    from_: str = "outside"
    to: str = "frontend"
    port: int | None = None
    requests: tuple[RequestSpec, ...] = ()
    rate_rps: float | None = None
    concurrency: int | None = None
    duration_s: float | None = None
    count: int | None = None
    warmup_s: float = 0.0
    timeout_s: float = 30.0
    protocol: str = "http"
    send_bytes: int = 0
    receive_bytes: int = 0
    hold_s: float = 0.0
    scheme: str = "http"
    ca_certificate: str = ""
    client_certificate: str = ""
    sni: str = ""

    @property
    def is_tcp(self) -> bool:
        """Each "request" is a TCP connection (``protocol: tcp``)."""
        return self.protocol == "tcp"

    @property
    def address(self) -> tuple[str, int] | None:
        """``(ip, port)`` when ``to`` is an ``IP:port`` address rather than a Service name."""
        return parse_address(self.to)
