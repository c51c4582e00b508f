"""Render a ProxyConfig as a static Envoy bootstrap.

The translation writes what istiod sends over ADS: HCMs reference route configs by RDS name and
EDS clusters fetch their endpoints, both from ``{ads: {}}``. A static bootstrap (goldens,
``envoy --mode validate``, the real-Envoy tests) inlines each route config into its HCM and each
load assignment into its cluster (EDS -> STATIC). File-based xDS, where a new configuration is
applied without a restart, is the local runner's (``cluster/local/xds.py``: one file per
resource name, as Envoy's path config sources need).
"""

from __future__ import annotations

import copy
from typing import Any

from mesh.envoy.translate import ProxyConfig
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.values import socket_address

__all__ = ["bootstrap"]

Json = dict[str, Any]


def _walk(node: Any, visit: Any) -> Any:
    """Copy ``node`` bottom-up, letting ``visit(dict) -> dict`` replace each dict."""
    if isinstance(node, dict):
        return visit({k: _walk(v, visit) for k, v in node.items()})
    if isinstance(node, list):
        return [_walk(v, visit) for v in node]
    return node


def _static_listener(listener: Json, routes: dict[str, Json]) -> Json:
    """Inline each HCM's route configuration; strip ``sds_config`` from the secret references
    of DownstreamTlsContexts (a static bootstrap supplies them as static secrets)."""

    def visit(d: Json) -> Json:
        d = _strip_sds_source(d)
        rds = d.get("rds")
        if d.get("@type") == tu.HCM and isinstance(rds, dict):
            name = rds["route_config_name"]
            out = {k: v for k, v in d.items() if k != "rds"}
            out["route_config"] = copy.deepcopy(routes.get(name, {"name": name}))
            return out
        return d

    result: Json = _walk(listener, visit)
    return result


def _static_cluster(cluster: Json, assignments: dict[str, Json]) -> Json:
    out = _walk(cluster, _strip_sds_source)
    if out.get("type") == "EDS":
        out.pop("eds_cluster_config", None)
        out["type"] = "STATIC"
        out["load_assignment"] = copy.deepcopy(
            assignments.get(cluster["name"], {"cluster_name": cluster["name"], "endpoints": []})
        )
    return dict(sorted(out.items()))


def _strip_sds_source(d: Json) -> Json:
    """A static SDS reference is a secret config with a name and no ``sds_config``."""
    if "name" in d and "sds_config" in d and len(d) == 2:
        return {"name": d["name"]}
    return d


def bootstrap(
    proxy: ProxyConfig,
    *,
    admin_port: int,
    admin_address: str = "127.0.0.1",
    secrets: tuple[Json, ...] = (),
) -> Json:
    """A static Envoy bootstrap for one proxy, everything inlined. ``secrets`` supplies the
    SDS secrets named by Istio mTLS clusters and PeerAuthentication chains (``default``,
    ``ROOTCA``), as an SDS server sends them: a static secret is a plain ``Secret``, so their
    ``@type`` is dropped."""
    base: Json = {
        "admin": {"address": socket_address(admin_address, admin_port)},
        "node": dict(proxy.node),
    }
    routes = {r["name"]: r for r in proxy.routes}
    assignments = {e["cluster_name"]: e for e in proxy.endpoints}
    resources: Json = {
        "clusters": [_static_cluster(c, assignments) for c in proxy.clusters],
        "listeners": [_static_listener(x, routes) for x in proxy.listeners],
    }
    all_secrets = [*proxy.secrets, *secrets]
    if all_secrets:
        resources["secrets"] = [{k: v for k, v in x.items() if k != "@type"} for x in all_secrets]
    base["static_resources"] = resources
    return base
