"""Every protobuf type URL meshplay emits, and the Envoy extension names they configure.

An Envoy extension appears in config twice: by its extension name (``"name":
"envoy.filters.http.router"``) and by the type URL of its config message (``"@type":
"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"``). Both are spelled here
only, for the traffic translator (:mod:`mesh.envoy`) and the security builders
(:mod:`mesh.security`) alike.

Envoy's ``--mode validate`` does not notice a misspelt ``@type`` on a message without fields (an
empty Router config with a typo still loads), so every ``"@type"`` goes through :func:`typed`,
which accepts only :data:`KNOWN_TYPE_URLS`, and the tests check every emitted value against it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACCESS_LOGGER_FILE",
    "ACCESS_LOG_FILE",
    "CLUSTER",
    "CLUSTER_LOAD_ASSIGNMENT",
    "CORS",
    "CORS_POLICY",
    "DOWNSTREAM_TLS_CONTEXT",
    "FAULT",
    "FILTER_CORS",
    "FILTER_FAULT",
    "FILTER_HCM",
    "FILTER_HEADER_MUTATION",
    "FILTER_HTTP_INSPECTOR",
    "FILTER_ISTIO_ALPN",
    "FILTER_JWT_AUTHN",
    "FILTER_LOCAL_RATELIMIT",
    "FILTER_NETWORK_RBAC",
    "FILTER_ORIGINAL_DST",
    "FILTER_RBAC",
    "FILTER_ROUTER",
    "FILTER_TCP_PROXY",
    "FILTER_TLS_INSPECTOR",
    "HCM",
    "HEADER_MUTATION",
    "HTTP_INSPECTOR",
    "HTTP_PROTOCOL_OPTIONS",
    "HTTP_PROTOCOL_OPTIONS_KEY",
    "JWT_AUTHN",
    "KNOWN_TYPE_URLS",
    "LISTENER",
    "LOCAL_RATELIMIT",
    "NETWORK_RBAC",
    "OPENTELEMETRY_CONFIG",
    "ORIGINAL_DST",
    "PREVIOUS_HOSTS",
    "PREVIOUS_PRIORITIES",
    "RAW_BUFFER",
    "RAW_BUFFER_TRANSPORT_SOCKET",
    "RBAC",
    "RETRY_PREVIOUS_HOSTS",
    "RETRY_PREVIOUS_PRIORITIES",
    "ROUTER",
    "ROUTE_CONFIGURATION",
    "ROUTE_FILTER_CONFIG",
    "SECRET",
    "SECURITY_TYPE_URLS",
    "SET_FILTER_STATE",
    "TCP_PROXY",
    "TLS_INSPECTOR",
    "TLS_TRANSPORT_SOCKET",
    "TRACER_OPENTELEMETRY",
    "TRACER_ZIPKIN",
    "TRANSPORT_SOCKET_MATCH",
    "TYPED_STRUCT",
    "UPSTREAM_TLS_CONTEXT",
    "URI_TEMPLATE_MATCH",
    "URI_TEMPLATE_MATCHER",
    "UUID_REQUEST_ID",
    "XDS_TYPED_STRUCT",
    "ZIPKIN_CONFIG",
    "typed",
]

_T = "type.googleapis.com/"

# -- xDS resources ---------------------------------------------------------------------------
LISTENER = _T + "envoy.config.listener.v3.Listener"
CLUSTER = _T + "envoy.config.cluster.v3.Cluster"
ROUTE_CONFIGURATION = _T + "envoy.config.route.v3.RouteConfiguration"
CLUSTER_LOAD_ASSIGNMENT = _T + "envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = _T + "envoy.extensions.transport_sockets.tls.v3.Secret"

# -- traffic extensions ----------------------------------------------------------------------
HCM = _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY = _T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = _T + "envoy.extensions.filters.http.router.v3.Router"
FAULT = _T + "envoy.extensions.filters.http.fault.v3.HTTPFault"
CORS = _T + "envoy.extensions.filters.http.cors.v3.Cors"
CORS_POLICY = _T + "envoy.extensions.filters.http.cors.v3.CorsPolicy"
HEADER_MUTATION = _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
ORIGINAL_DST = _T + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
ACCESS_LOG_FILE = _T + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
PREVIOUS_HOSTS = _T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
PREVIOUS_PRIORITIES = (
    _T + "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
)
HTTP_PROTOCOL_OPTIONS = _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
RAW_BUFFER = _T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
URI_TEMPLATE_MATCH = _T + "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
ZIPKIN_CONFIG = _T + "envoy.config.trace.v3.ZipkinConfig"
OPENTELEMETRY_CONFIG = _T + "envoy.config.trace.v3.OpenTelemetryConfig"
UUID_REQUEST_ID = _T + "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"
SET_FILTER_STATE = _T + "envoy.extensions.filters.http.set_filter_state.v3.Config"
ROUTE_FILTER_CONFIG = _T + "envoy.config.route.v3.FilterConfig"
"""A route's ``typed_per_filter_config`` wrapper that can switch a filter off for the route."""

# -- security extensions ---------------------------------------------------------------------
RBAC = _T + "envoy.extensions.filters.http.rbac.v3.RBAC"
NETWORK_RBAC = _T + "envoy.extensions.filters.network.rbac.v3.RBAC"
JWT_AUTHN = _T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
LOCAL_RATELIMIT = _T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
TLS_INSPECTOR = _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
HTTP_INSPECTOR = _T + "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
DOWNSTREAM_TLS_CONTEXT = _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS_CONTEXT = _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
TYPED_STRUCT = _T + "udpa.type.v1.TypedStruct"
"""A wrapper an EnvoyFilter patch may use around a filter config (read, unwrapped, never emitted)."""
XDS_TYPED_STRUCT = _T + "xds.type.v3.TypedStruct"
"""The xds flavour of :data:`TYPED_STRUCT` (read, unwrapped, never emitted)."""

# -- extension names -------------------------------------------------------------------------
FILTER_HCM = "envoy.filters.network.http_connection_manager"
FILTER_TCP_PROXY = "envoy.filters.network.tcp_proxy"
FILTER_NETWORK_RBAC = "envoy.filters.network.rbac"
FILTER_ROUTER = "envoy.filters.http.router"
FILTER_FAULT = "envoy.filters.http.fault"
FILTER_CORS = "envoy.filters.http.cors"
FILTER_HEADER_MUTATION = "envoy.filters.http.header_mutation"
FILTER_RBAC = "envoy.filters.http.rbac"
FILTER_JWT_AUTHN = "envoy.filters.http.jwt_authn"
FILTER_LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"
FILTER_ORIGINAL_DST = "envoy.filters.listener.original_dst"
FILTER_TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
FILTER_HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
"""Detects plaintext HTTP/1.x or HTTP/2 (``http/1.1`` / ``h2c`` as the connection's application
protocol, what istiod's sniffed-port chains match on); the simulator reads it."""
FILTER_ISTIO_ALPN = "istio.alpn"
"""The HTTP filter name istiod gives its upstream-ALPN filter (istio-proxy's ``istio.alpn``);
meshplay configures stock Envoy's ``set_filter_state`` under that name (:mod:`mesh.envoy.alpn`)."""
FILTER_STATE_APPLICATION_PROTOCOLS = "envoy.network.application_protocols"
"""The well-known filter-state key whose value replaces the upstream TLS handshake's ALPN."""
ACCESS_LOGGER_FILE = "envoy.access_loggers.file"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_TRANSPORT_SOCKET = "envoy.transport_sockets.raw_buffer"
RETRY_PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
RETRY_PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"
URI_TEMPLATE_MATCHER = "envoy.path.match.uri_template.uri_template_matcher"
TRACER_ZIPKIN = "envoy.tracers.zipkin"
TRACER_OPENTELEMETRY = "envoy.tracers.opentelemetry"
HTTP_PROTOCOL_OPTIONS_KEY = HTTP_PROTOCOL_OPTIONS.removeprefix(_T)
"""The key of a cluster's ``typed_extension_protocol_options`` entry for the HTTP upstream
options (the message's full name)."""
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
"""The endpoint metadata namespace a cluster's ``transport_socket_matches`` match on (Istio
writes ``tlsMode: istio`` there for endpoints with a sidecar)."""

SECURITY_TYPE_URLS: frozenset[str] = frozenset(
    {
        RBAC,
        NETWORK_RBAC,
        JWT_AUTHN,
        LOCAL_RATELIMIT,
        TLS_INSPECTOR,
        DOWNSTREAM_TLS_CONTEXT,
        UPSTREAM_TLS_CONTEXT,
    }
)
"""Every ``@type`` the security builders (:mod:`mesh.security`) emit."""

KNOWN_TYPE_URLS: frozenset[str] = frozenset(
    {
        ZIPKIN_CONFIG,
        OPENTELEMETRY_CONFIG,
        UUID_REQUEST_ID,
        SET_FILTER_STATE,
        ROUTE_FILTER_CONFIG,
        LISTENER,
        CLUSTER,
        ROUTE_CONFIGURATION,
        CLUSTER_LOAD_ASSIGNMENT,
        SECRET,
        HCM,
        TCP_PROXY,
        ROUTER,
        FAULT,
        CORS,
        CORS_POLICY,
        HEADER_MUTATION,
        ORIGINAL_DST,
        HTTP_INSPECTOR,
        ACCESS_LOG_FILE,
        PREVIOUS_HOSTS,
        PREVIOUS_PRIORITIES,
        HTTP_PROTOCOL_OPTIONS,
        RAW_BUFFER,
        URI_TEMPLATE_MATCH,
        *SECURITY_TYPE_URLS,
    }
)
"""The closed set of ``@type`` values meshplay may emit (checked by the tests)."""


def typed(type_url: str, **fields: Any) -> dict[str, Any]:
    """A ``typed_config`` body: ``{"@type": type_url, **fields}``."""
    if type_url not in KNOWN_TYPE_URLS:
        raise ValueError(f"unknown type URL {type_url!r}: add it to mesh.envoy_api.type_urls")
    return {"@type": type_url, **fields}
