"""Every protobuf type URL the translator emits, and the Envoy filter names they configure.

Envoy's ``--mode validate`` does not notice a misspelt ``@type`` on a message without fields (an
empty Router config with a typo still loads), so every ``"@type"`` the translator writes comes from
this module and the tests check each emitted value against :data:`KNOWN_TYPE_URLS`.
"""

from __future__ import annotations

from typing import Any

from mesh.security.envoy_types import (
    FILTER_JWT_AUTHN,
    FILTER_LOCAL_RATELIMIT,
    FILTER_NETWORK_RBAC,
    FILTER_RBAC,
    FILTER_TLS_INSPECTOR,
    SECURITY_TYPE_URLS,
    TLS_TRANSPORT_SOCKET,
)

__all__ = [
    "ACCESS_LOG_FILE",
    "CLUSTER",
    "CLUSTER_LOAD_ASSIGNMENT",
    "CORS",
    "CORS_POLICY",
    "FAULT",
    "FILTER_CORS",
    "FILTER_FAULT",
    "FILTER_HCM",
    "FILTER_HEADER_MUTATION",
    "FILTER_HTTP_INSPECTOR",
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
    "HTTP_PROTOCOL_OPTIONS",
    "KNOWN_TYPE_URLS",
    "LISTENER",
    "ORIGINAL_DST",
    "PREVIOUS_HOSTS",
    "PREVIOUS_PRIORITIES",
    "RAW_BUFFER",
    "ROUTER",
    "ROUTE_CONFIGURATION",
    "SECRET",
    "TCP_PROXY",
    "TLS_TRANSPORT_SOCKET",
    "UPSTREAM_TLS_CONTEXT",
    "URI_TEMPLATE_MATCH",
    "typed",
]

_T = "type.googleapis.com/"

LISTENER = _T + "envoy.config.listener.v3.Listener"
CLUSTER = _T + "envoy.config.cluster.v3.Cluster"
ROUTE_CONFIGURATION = _T + "envoy.config.route.v3.RouteConfiguration"
CLUSTER_LOAD_ASSIGNMENT = _T + "envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = _T + "envoy.extensions.transport_sockets.tls.v3.Secret"

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
UPSTREAM_TLS_CONTEXT = _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
RAW_BUFFER = _T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
URI_TEMPLATE_MATCH = _T + "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"

FILTER_HCM = "envoy.filters.network.http_connection_manager"
FILTER_TCP_PROXY = "envoy.filters.network.tcp_proxy"
FILTER_ROUTER = "envoy.filters.http.router"
FILTER_FAULT = "envoy.filters.http.fault"
FILTER_CORS = "envoy.filters.http.cors"
FILTER_HEADER_MUTATION = "envoy.filters.http.header_mutation"
FILTER_ORIGINAL_DST = "envoy.filters.listener.original_dst"
FILTER_HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
"""Listener filter that detects plaintext HTTP/1.x or HTTP/2 (``http/1.1`` / ``h2c`` as the
connection's application protocol, what istiod's sniffed-port chains match on)."""
# The security filters' names (mesh.security.envoy_types) are re-exported here so that every
# reader of Envoy config (the simulator included) spells Envoy names from one module:
# FILTER_RBAC, FILTER_NETWORK_RBAC, FILTER_JWT_AUTHN, FILTER_LOCAL_RATELIMIT,
# FILTER_TLS_INSPECTOR, TLS_TRANSPORT_SOCKET.

KNOWN_TYPE_URLS: frozenset[str] = frozenset(
    {
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
        ACCESS_LOG_FILE,
        PREVIOUS_HOSTS,
        PREVIOUS_PRIORITIES,
        HTTP_PROTOCOL_OPTIONS,
        UPSTREAM_TLS_CONTEXT,
        RAW_BUFFER,
        URI_TEMPLATE_MATCH,
        *SECURITY_TYPE_URLS,
    }
)
"""The closed set of ``@type`` values the translator may emit (checked by the tests), the
security filters' and TLS contexts' (:data:`mesh.security.SECURITY_TYPE_URLS`) included."""


def typed(type_url: str, **fields: Any) -> dict[str, Any]:
    """A ``typed_config`` body: ``{"@type": type_url, **fields}``."""
    if type_url not in KNOWN_TYPE_URLS:
        raise ValueError(f"unknown type URL {type_url!r}: add it to mesh.envoy.type_urls")
    return {"@type": type_url, **fields}
