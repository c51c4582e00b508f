"""istio.networking.v1.VirtualService and its messages (virtual_service.proto).

A VirtualService configures how requests to a host are routed *after* the client sidecar has
intercepted them: match conditions, weighted destinations, retries, timeouts, faults, mirroring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mesh.model.common import Duration, FrozenMap, Percent, PortSelector, Resource, StringMatch

__all__ = [
    "CorsPolicy",
    "Delegate",
    "Destination",
    "HTTPBody",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPFaultInjectionAbort",
    "HTTPFaultInjectionDelay",
    "HTTPMatchRequest",
    "HTTPMirrorPolicy",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "L4MatchAttributes",
    "RegexRewrite",
    "RouteDestination",
    "TCPRoute",
    "TLSMatchAttributes",
    "TLSRoute",
    "VirtualService",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """A service (by registry host name), optional subset of a DestinationRule, optional port."""

    host: str
    subset: str = ""
    port: PortSelector | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderOperations:
    """Header manipulation: ``set`` overwrites, ``add`` appends, ``remove`` deletes."""

    set: FrozenMap[str, str] = field(default_factory=FrozenMap)
    add: FrozenMap[str, str] = field(default_factory=FrozenMap)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Headers:
    """Request and response header operations of a route or destination."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRouteDestination:
    """One weighted destination of an HTTP route (weights are relative, Istio passes them as-is)."""

    destination: Destination
    weight: int | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDestination:
    """One weighted destination of a TCP or TLS route."""

    destination: Destination
    weight: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPMatchRequest:
    """Conditions ANDed together; the route matches when *any* of its match blocks matches.

    A header or query-parameter StringMatch with no field set (``{}``) tests presence.
    """

    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: FrozenMap[str, StringMatch] = field(default_factory=FrozenMap)
    port: int | None = None
    source_labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    gateways: tuple[str, ...] = ()
    query_params: FrozenMap[str, StringMatch] = field(default_factory=FrozenMap)
    ignore_uri_case: bool = False
    without_headers: FrozenMap[str, StringMatch] = field(default_factory=FrozenMap)
    source_namespace: str = ""
    stat_prefix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRedirect:
    """Answer with a 301 (or ``redirect_code``) pointing elsewhere instead of forwarding."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"derivePort"})

    uri: str = ""
    authority: str = ""
    port: int | None = None
    scheme: str = ""
    redirect_code: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPBody:
    """Body of a direct response."""

    string: str | None = None
    bytes: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPDirectResponse:
    """Answer directly from the proxy with a fixed status and body."""

    status: int
    body: HTTPBody | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegate:
    """Route delegation to another VirtualService (gateway-bound VirtualServices only)."""

    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegexRewrite:
    """Regex-based path rewrite."""

    match: str
    rewrite: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRewrite:
    """Rewrite the path prefix (or regex) and/or authority before forwarding."""

    uri: str = ""
    authority: str = ""
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRetry:
    """Retry policy. Set on a route it replaces Istio's default (2 retries on connect-failure,
    refused-stream, unavailable, cancelled, retriable-status-codes); ``attempts: 0`` disables retries.
    """

    attempts: int | None = None
    per_try_timeout: Duration | None = None
    retry_on: str = ""
    retry_remote_localities: bool | None = None
    backoff: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPFaultInjectionDelay:
    """Delay a share of requests before forwarding (response flag DI)."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"exponentialDelay"})

    fixed_delay: Duration | None = None
    percentage: Percent | None = None
    percent: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPFaultInjectionAbort:
    """Abort a share of requests with a status (response flag FI)."""

    http_status: int | None = None
    grpc_status: str = ""
    http2_error: str = ""
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPFaultInjection:
    """Fault injection on the client side: delay and/or abort."""

    delay: HTTPFaultInjectionDelay | None = None
    abort: HTTPFaultInjectionAbort | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPMirrorPolicy:
    """One mirror destination with its own percentage."""

    destination: Destination
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPolicy:
    """Cross-origin resource sharing policy of a route."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"allowOrigin", "unmatchedPreflights"})

    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: Duration | None = None
    allow_credentials: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute:
    """One ordered HTTP rule: the first rule whose match applies decides the request's fate."""

    name: str = ""
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class L4MatchAttributes:
    """Match conditions of a TCP route."""

    destination_subnets: tuple[str, ...] = ()
    port: int | None = None
    source_labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TCPRoute:
    """An ordered TCP rule (by destination port / subnet)."""

    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSMatchAttributes:
    """Match conditions of a TLS (SNI) route."""

    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    port: int | None = None
    source_labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRoute:
    """An ordered rule for unterminated TLS traffic, matched by SNI."""

    match: tuple[TLSMatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualService(Resource):
    """networking.istio.io VirtualService."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1", "v1alpha3")
    KIND: ClassVar[str] = "VirtualService"
    PLURAL: ClassVar[str] = "virtualservices"

    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()
