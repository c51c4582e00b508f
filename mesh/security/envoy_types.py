"""Type URLs and filter names of the security half of the Envoy configuration.

``mesh.envoy.type_urls`` keeps the closed set of ``@type`` values the traffic translator emits;
this module is its security counterpart (RBAC, jwt_authn, local_ratelimit, the TLS contexts and
the TLS inspector). :data:`SECURITY_TYPE_URLS` is what the translator's ``KNOWN_TYPE_URLS`` must
be extended with once the security filters are wired in.
"""

from __future__ import annotations

from typing import Any

from mesh.envoy.values import ADS

__all__ = [
    "ADS",
    "DOWNSTREAM_TLS_CONTEXT",
    "FILTER_JWT_AUTHN",
    "FILTER_LOCAL_RATELIMIT",
    "FILTER_NETWORK_RBAC",
    "FILTER_RBAC",
    "FILTER_TLS_INSPECTOR",
    "JWT_AUTHN",
    "LOCAL_RATELIMIT",
    "NETWORK_RBAC",
    "RBAC",
    "SECURITY_TYPE_URLS",
    "TLS_INSPECTOR",
    "TLS_TRANSPORT_SOCKET",
    "TYPED_STRUCT",
    "UPSTREAM_TLS_CONTEXT",
    "XDS_TYPED_STRUCT",
    "typed",
]

_T = "type.googleapis.com/"

RBAC = _T + "envoy.extensions.filters.http.rbac.v3.RBAC"
NETWORK_RBAC = _T + "envoy.extensions.filters.network.rbac.v3.RBAC"
JWT_AUTHN = _T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
LOCAL_RATELIMIT = _T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
TLS_INSPECTOR = _T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
DOWNSTREAM_TLS_CONTEXT = _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS_CONTEXT = _T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
TYPED_STRUCT = _T + "udpa.type.v1.TypedStruct"
XDS_TYPED_STRUCT = _T + "xds.type.v3.TypedStruct"

FILTER_RBAC = "envoy.filters.http.rbac"
FILTER_NETWORK_RBAC = "envoy.filters.network.rbac"
FILTER_JWT_AUTHN = "envoy.filters.http.jwt_authn"
FILTER_LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"
FILTER_TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"

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
"""Every ``@type`` the security builders emit (TypedStruct wrappers are unwrapped, never emitted)."""


def typed(type_url: str, **fields: Any) -> dict[str, Any]:
    """A ``typed_config`` body ``{"@type": type_url, **fields}`` for one of the security types."""
    if type_url not in SECURITY_TYPE_URLS:
        raise ValueError(f"unknown security type URL {type_url!r}")
    return {"@type": type_url, **fields}
