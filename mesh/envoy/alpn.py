"""istiod's ``istio.alpn`` on stock Envoy: which ALPN an HTTP request over Istio mTLS offers.

What istiod 1.28 does. ``buildHTTPConnectionManager`` appends istio-proxy's ``istio.alpn``
filter (``xdsfilters.Alpn``, after ``grpc_stats``, before ``fault``/``cors``) to every HTTP
connection manager whose listener class is not sidecar-inbound: a sidecar's outbound HCMs and a
gateway's. Its config maps the upstream HTTP protocol to an ALPN list: HTTP/1.0 ->
``istio-http/1.0, istio``, HTTP/1.1 -> ``istio-http/1.1, istio``, HTTP/2 -> ``istio-h2, istio``.
Per request the filter takes the route's cluster, skips it when the cluster's metadata says
``istio.alpn_override: "false"`` (``AddALPNOverrideToMetadata``: istiod writes it on a cluster
whose DestinationRule TLS mode is SIMPLE or MUTUAL, so TLS origination keeps its own ALPN), asks
the cluster which protocol it speaks upstream for the downstream protocol, and stores that list
as the ``envoy.network.application_protocols`` filter state. The upstream TLS handshake then
offers it instead of the cluster's ``istio-peer-exchange, istio``, and the server sidecar's
``virtualInbound`` takes an HTTP request over mTLS on an HTTP chain (``istio-http/*``,
``istio-h2``) rather than the TCP one. A plaintext cluster has no handshake: nothing changes.

Stock Envoy has no ``istio.alpn``. Its ``set_filter_state`` HTTP filter stores the same filter
state (``shared_with_upstream: ONCE`` hands it to the upstream connection), but from a constant,
so the per-request choice istio-proxy makes from the cluster is made here per route:

* the HCM's ``istio.alpn`` entry (a ``set_filter_state``) sets the HTTP/1.1 list: meshplay's
  clusters speak HTTP/1.1 upstream unless the port is ``http2``/``grpc`` (explicit HTTP/2), and
  the HCM refuses HTTP/1.0 (no ``accept_http_10``);
* a route, or one weighted cluster of a route, whose cluster speaks HTTP/2 carries its own
  ``set_filter_state`` (``typed_per_filter_config``) with the ``istio-h2`` list;
* one whose cluster has ``alpn_override: "false"`` switches the filter off (``FilterConfig``
  ``disabled``): the handshake keeps the cluster's ALPN (none configured: Envoy's HTTP/1.1
  pool offers ``http/1.1``).

Checked on Envoy 1.40 against a TLS server that reports the negotiated protocol: the HCM entry
gives ``istio-http/1.1`` (also for an HTTP/2 downstream to an HTTP/1.1 cluster), a per-route
config ``istio-h2``, a disabled route (or weighted cluster) ``http/1.1``, and a route to a
SIMPLE cluster without the switch-off would have offered ``istio-http/1.1``: the per-route
switch-off is what keeps TLS origination faithful. A route whose cluster is not in the
proxy's config (``cluster_header``, a missing cluster) keeps the HCM's list, where istio-proxy
would set nothing; no handshake happens to a cluster that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesh.envoy_api import type_urls as tu

__all__ = [
    "ALPN_H2",
    "ALPN_HTTP11",
    "alpn_filter",
    "alpn_override_metadata",
    "with_upstream_alpn",
]

Json = Mapping[str, Any]

ALPN_HTTP11: tuple[str, ...] = ("istio-http/1.1", "istio")
"""istiod's ``mtlsHTTP11ALPN``: what an HTTP/1.1 upstream request over Istio mTLS offers."""
ALPN_H2: tuple[str, ...] = ("istio-h2", "istio")
"""istiod's ``mtlsHTTP2ALPN``: what an HTTP/2 upstream request over Istio mTLS offers."""

_OFF = "off"
_H2 = "h2"


def _set_state(alpns: Sequence[str]) -> dict[str, Any]:
    return tu.typed(
        tu.SET_FILTER_STATE,
        on_request_headers=[
            {
                "object_key": tu.FILTER_STATE_APPLICATION_PROTOCOLS,
                "format_string": {"text_format_source": {"inline_string": ",".join(alpns)}},
                "shared_with_upstream": "ONCE",
            }
        ],
    )


def alpn_filter() -> dict[str, Any]:
    """The HCM's ``istio.alpn`` entry: the HTTP/1.1 list for every request (see module doc)."""
    return {"name": tu.FILTER_ISTIO_ALPN, "typed_config": _set_state(ALPN_HTTP11)}


def alpn_override_metadata(tls_mode: str) -> dict[str, str]:
    """The ``istio`` filter-metadata field istiod adds for a DestinationRule TLS mode (an empty
    dict but for SIMPLE and MUTUAL)."""
    return {"alpn_override": "false"} if tls_mode in {"SIMPLE", "MUTUAL"} else {}


def _decision(cluster: Json | None) -> str:
    """What a route to ``cluster`` needs: ``off``, ``h2``, or the empty string (the HCM's
    HTTP/1.1 list, also for a cluster the proxy does not have)."""
    if cluster is None:
        return ""
    istio = ((cluster.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    if istio.get("alpn_override") == "false":
        return _OFF
    options = (cluster.get("typed_extension_protocol_options") or {}).get(
        tu.HTTP_PROTOCOL_OPTIONS_KEY
    ) or {}
    if "http2_protocol_options" in (options.get("explicit_http_config") or {}):
        return _H2
    return ""


def _per_route(decision: str) -> dict[str, Any]:
    if decision == _OFF:
        return tu.typed(tu.ROUTE_FILTER_CONFIG, disabled=True)
    return _set_state(ALPN_H2)


def _with_config(node: Json, decision: str) -> dict[str, Any]:
    out = dict(node)
    per_filter = dict(out.get("typed_per_filter_config") or {})
    per_filter[tu.FILTER_ISTIO_ALPN] = _per_route(decision)
    out["typed_per_filter_config"] = dict(sorted(per_filter.items()))
    return out


def _route(route: dict[str, Any], clusters: Mapping[str, Json]) -> dict[str, Any]:
    action = route.get("route")
    if not isinstance(action, Mapping):
        return route
    if "cluster" in action:
        decision = _decision(clusters.get(action["cluster"]))
        return _with_config(route, decision) if decision else route
    weighted = (action.get("weighted_clusters") or {}).get("clusters") or ()
    decisions = [_decision(clusters.get(w["name"])) for w in weighted]
    if not any(decisions):
        return route
    if len(set(decisions)) == 1:
        return _with_config(route, decisions[0])
    entries = [_with_config(w, d) if d else w for w, d in zip(weighted, decisions, strict=True)]
    new_action = dict(action)
    new_action["weighted_clusters"] = {**action["weighted_clusters"], "clusters": entries}
    return {**route, "route": new_action}


def with_upstream_alpn(
    route_configs: Iterable[dict[str, Any]], clusters: Iterable[Json]
) -> list[dict[str, Any]]:
    """``route_configs`` (served by HCMs that have :func:`alpn_filter`) with the per-route
    ``istio.alpn`` configs their clusters call for (copies where something changes)."""
    by_name = {c["name"]: c for c in clusters}
    out: list[dict[str, Any]] = []
    for rc in route_configs:
        vhosts = rc.get("virtual_hosts") or ()
        new_vhosts = []
        changed = False
        for vh in vhosts:
            routes = [_route(r, by_name) for r in vh.get("routes") or ()]
            if any(a is not b for a, b in zip(routes, vh.get("routes") or (), strict=True)):
                changed = True
                new_vhosts.append({**vh, "routes": routes})
            else:
                new_vhosts.append(vh)
        out.append({**rc, "virtual_hosts": new_vhosts} if changed else rc)
    return out
