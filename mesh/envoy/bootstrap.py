"""Render a ProxyConfig as an Envoy bootstrap: fully static, or file-based xDS.

The translation writes what istiod sends over ADS: HCMs reference route configs by RDS name and
EDS clusters fetch their endpoints, both from ``{ads: {}}``. A static bootstrap (goldens,
``envoy --mode validate``) inlines each route config into its HCM and each load assignment into
its cluster (EDS -> STATIC). A dynamic bootstrap (the local runner) points LDS/CDS at files in
``xds_dir`` and rewrites every ADS source to ``path_config_source`` on ``rds.yaml`` / ``eds.yaml``
/ ``sds.yaml``; :func:`xds_files` renders those files as ``DiscoveryResponse`` documents so an
atomic rename applies a new configuration without a restart.
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any

from mesh.envoy import type_urls as tu
from mesh.envoy.translate import ProxyConfig
from mesh.envoy.values import socket_address

__all__ = ["XDS_FILES", "bootstrap", "xds_files"]

Json = dict[str, Any]

XDS_FILES = {
    "lds": "lds.yaml",
    "cds": "cds.yaml",
    "rds": "rds.yaml",
    "eds": "eds.yaml",
    "sds": "sds.yaml",
}
"""File names inside ``xds_dir``, one per resource type."""


def _path_source(xds_dir: str, kind: str) -> Json:
    directory = str(PurePosixPath(xds_dir))
    return {
        "path_config_source": {
            "path": f"{directory}/{XDS_FILES[kind]}",
            "watched_directory": {"path": directory},
        },
        "resource_api_version": "V3",
    }


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


def _dynamic(node: Any, xds_dir: str) -> Any:
    def visit(d: Json) -> Json:
        if "rds" in d and isinstance(d["rds"], dict) and "config_source" in d["rds"]:
            d = dict(d)
            d["rds"] = {**d["rds"], "config_source": _path_source(xds_dir, "rds")}
        if "eds_cluster_config" in d:
            d = dict(d)
            d["eds_cluster_config"] = {
                **d["eds_cluster_config"],
                "eds_config": _path_source(xds_dir, "eds"),
            }
        if "sds_config" in d and isinstance(d["sds_config"], dict) and "ads" in d["sds_config"]:
            d = dict(d)
            d["sds_config"] = _path_source(xds_dir, "sds")
        return d

    return _walk(node, visit)


def bootstrap(
    proxy: ProxyConfig,
    *,
    admin_port: int,
    xds_dir: str | None = None,
    static: bool = True,
    admin_address: str = "127.0.0.1",
    secrets: tuple[Json, ...] = (),
) -> Json:
    """An Envoy bootstrap for one proxy.

    ``static=True`` inlines everything (what ``envoy --mode validate`` checks). ``static=False``
    needs ``xds_dir`` and reads listeners/clusters/routes/endpoints from the files
    :func:`xds_files` writes there. ``secrets`` (static mode) supplies the SDS secrets named
    by Istio mTLS clusters and PeerAuthentication chains (``default``, ``ROOTCA``).
    """
    base: Json = {
        "admin": {"address": socket_address(admin_address, admin_port)},
        "node": dict(proxy.node),
    }
    if static:
        routes = {r["name"]: r for r in proxy.routes}
        assignments = {e["cluster_name"]: e for e in proxy.endpoints}
        resources: Json = {
            "clusters": [_static_cluster(c, assignments) for c in proxy.clusters],
            "listeners": [_static_listener(x, routes) for x in proxy.listeners],
        }
        all_secrets = [*proxy.secrets, *secrets]
        if all_secrets:
            resources["secrets"] = list(all_secrets)
        base["static_resources"] = resources
        return base
    if xds_dir is None:
        raise ValueError("a dynamic bootstrap needs xds_dir")
    base["dynamic_resources"] = {
        "cds_config": _path_source(xds_dir, "cds"),
        "lds_config": _path_source(xds_dir, "lds"),
    }
    return base


def xds_files(proxy: ProxyConfig, xds_dir: str, version: str = "1") -> dict[str, Json]:
    """File name -> DiscoveryResponse body for a dynamic bootstrap's ``xds_dir``."""

    def response(type_url: str, items: tuple[Json, ...]) -> Json:
        return {
            "version_info": version,
            "resources": [{"@type": type_url, **_dynamic(item, xds_dir)} for item in items],
        }

    return {
        XDS_FILES["lds"]: response(tu.LISTENER, proxy.listeners),
        XDS_FILES["cds"]: response(tu.CLUSTER, proxy.clusters),
        XDS_FILES["rds"]: response(tu.ROUTE_CONFIGURATION, proxy.routes),
        XDS_FILES["eds"]: response(tu.CLUSTER_LOAD_ASSIGNMENT, proxy.endpoints),
        XDS_FILES["sds"]: response(tu.SECRET, proxy.secrets),
    }
