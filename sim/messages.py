"""What flows between simulated apps and proxies: requests, responses, attempts, traces.

Bodies and response-code details are Envoy's own strings (reference §7), so a learner reading a
simulated access log sees what a real Envoy would print.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BODY_FAULT_ABORT",
    "BODY_NO_HEALTHY_UPSTREAM",
    "BODY_OVERFLOW",
    "BODY_TIMEOUT",
    "BODY_UC",
    "BODY_UF",
    "Attempt",
    "Request",
    "Response",
    "TlsHello",
    "Trace",
]

BODY_OVERFLOW = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
BODY_UF = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
)
BODY_UC = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
BODY_TIMEOUT = "upstream request timeout"
BODY_NO_HEALTHY_UPSTREAM = "no healthy upstream"
BODY_FAULT_ABORT = "fault filter abort"


class Trace:
    """Decisions taken for one request, in order (what ``meshplay explain`` prints)."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[tuple[float, str, str]] = []

    def add(self, now: float, where: str, text: str) -> None:
        """Record one decision at simulated time ``now``."""
        self.lines.append((now, where, text))


@dataclass(frozen=True, slots=True)
class TlsHello:
    """What a TLS client offers when it connects: the server name (SNI), its ALPN list, the CA
    it checks the server's certificate against (PEM; None: the mesh's own CA only) and the
    certificate it presents when the server asks for one (PEM; None: it has none)."""

    sni: str
    alpn: tuple[str, ...] = ("http/1.1",)
    trusted_ca: bytes | None = None
    client_cert: bytes | None = None
    mesh_certificate: bool = False
    """The client presents its workload certificate from the mesh CA (a sidecar's
    ISTIO_MUTUAL origination, e.g. to an egress gateway) rather than a PEM of its own."""

    @property
    def client_certificate(self) -> bool:
        """The client can present a certificate."""
        return self.client_cert is not None or self.mesh_certificate


@dataclass(slots=True)
class Request:
    """One HTTP request as a proxy or app sees it (header names lower case)."""

    method: str
    path: str
    authority: str
    port: int
    headers: dict[str, str]
    request_id: str
    trace_id: str
    trace: Trace | None = None
    lead: float = 0.0
    """App-to-sidecar hop not yet paid: folded into the next hop's delay (one event less)."""
    forward: dict[str, str] | None = None
    """The headers an app copies from this request onto its downstream calls (worked out on
    the first call)."""
    forward_names: tuple[str, ...] | None = None
    """The header names ``forward`` was worked out for (a call may copy other ones)."""
    address: str = ""
    """What the app dialled: a Service hostname (its sidecar sees the VIP it resolves to) or an
    IP; "" = the host of ``authority``."""
    sent: Request | None = None
    """The request as the app sent it, when this one is the route's rewritten copy (whose
    ``gone_at`` the router reads)."""
    gone_at: float | None = None
    """When the app that sent this request stopped waiting (its own timeout): its sidecar
    logs the exchange as ``0 DC`` ending then."""
    tls: TlsHello | None = None
    """The client opened TLS to the proxy (``https`` to a gateway); None: plaintext."""
    caller: str = ""
    """The address of the pod whose proxy opened the connection to a gateway (an egress
    gateway's downstream); "" = a client outside the mesh (or not at a gateway)."""
    upstream_alpn: tuple[str, ...] = ()
    """The ALPN the HCM's filters left in the request's filter state for the upstream TLS
    handshake (``envoy.network.application_protocols``, :mod:`sim.upstream_alpn`); empty: the
    cluster's own."""


@dataclass(slots=True)
class Response:
    """The answer to a request, with what Envoy would log about it."""

    status: int
    flags: tuple[str, ...] = ()
    details: str = "via_upstream"
    body: str = ""
    upstream_cluster: str = ""
    upstream_host: str = ""
    route_name: str = ""
    destination_service: str = ""
    workload: str = ""
    namespace: str = ""
    app: str = ""
    version: str = ""
    principal: str = ""
    attempts: int = 1
    local_failure: str = ""
    """``connect`` when no connection could be made, ``reset`` when the server closed it before
    any response (a PeerAuthentication mismatch), ``overflow``; "" for a response."""
    return_s: float | None = None
    """The time the response takes back to the app when it is not one network hop: set by a
    pool a DestinationRule sized (a 503 ``UO`` over a local leg, a proxied answer over the
    measured client turnaround; see ``sim.connpool``)."""
    size: int = 0
    """Response body bytes (what the app declared; 0 when unknown)."""
    headers: dict[str, str] | None = None
    """Response headers the model knows of (lower-case names; None = none): those the app
    sets, after the client route's ``response_headers_to_remove`` / ``_to_add``."""


@dataclass(slots=True, eq=False)
class Attempt:
    """One upstream try; ``abandoned`` once the client side gave up on it (timeout)."""

    abandoned: bool = False
    done: bool = False
    waiting: object = None
    holds_slot: bool = False
    pool: object = None
    """The connection pool (``sim.connpool.ConnPool``) that gave the attempt its connection."""
    conn: object = None
    """That connection (``sim.connpool.Connection``): new, or reused with what it remembers."""
    extra: dict[str, str] | None = None
    """Free-form notes on the attempt (none yet: created by whoever needs them)."""
