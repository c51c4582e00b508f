"""The ALPN a request's upstream TLS handshake offers, from the HCM's ``set_filter_state``.

An HTTP filter can leave a list in the request's filter state under
``envoy.network.application_protocols``; shared with the upstream connection
(``shared_with_upstream``), it replaces the cluster's ``alpn_protocols`` in the handshake. That is
how istiod's ``istio.alpn`` makes an HTTP request over Istio mTLS offer ``istio-http/1.1`` or
``istio-h2`` (:mod:`mesh.envoy.alpn` builds it with stock Envoy's ``set_filter_state``), and how
the server sidecar's ``virtualInbound`` picks its HTTP chain over its TCP one.

Executed from the config, the way Envoy resolves it: for each ``set_filter_state`` of the HCM,
in order, the most specific per-route config wins (the picked weighted cluster's
``typed_per_filter_config``, else the route's, else its virtual host's), a ``FilterConfig`` with
``disabled`` switches the filter off for the request, and the last filter that sets the key
decides. Only constant values are modelled (a format string with ``%`` commands is skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.envoy_api import type_urls as tu
from sim.xds import HcmSpec, RouteSpec

__all__ = ["upstream_alpn"]

_SHARED = frozenset({"ONCE", "TRANSITIVE", 1, 2})


def _alpn_of(config: Mapping[str, Any]) -> tuple[str, ...] | None:
    found: tuple[str, ...] | None = None
    for entry in config.get("on_request_headers") or ():
        if entry.get("object_key") != tu.FILTER_STATE_APPLICATION_PROTOCOLS:
            continue
        if entry.get("shared_with_upstream") not in _SHARED:
            continue
        source = (entry.get("format_string") or {}).get("text_format_source") or {}
        text = str(source.get("inline_string", ""))
        if "%" in text:
            continue
        found = tuple(p for p in text.split(",") if p)
    return found


def upstream_alpn(hcm: HcmSpec, route: RouteSpec, cluster: str) -> tuple[str, ...]:
    """The filter-state ALPN a request routed by ``route`` to ``cluster`` carries upstream
    (empty: none, the cluster's own ``alpn_protocols`` apply)."""
    picked = route.cluster_filters.get(cluster) or {}
    result: tuple[str, ...] = ()
    for f in hcm.filters:
        if f.config.get("@type") != tu.SET_FILTER_STATE:
            continue
        config: Mapping[str, Any] = picked.get(f.name) or route.per_filter.get(f.name) or f.config
        if config.get("@type") == tu.ROUTE_FILTER_CONFIG:
            if config.get("disabled"):
                continue
            config = config.get("config") or f.config
        if config.get("@type") != tu.SET_FILTER_STATE:
            continue
        found = _alpn_of(config)
        if found is not None:
            result = found
    return result
