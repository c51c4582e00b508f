"""File-based xDS: the local runner's istiod-to-Envoy channel.

istiod pushes config to each sidecar over one gRPC stream (ADS). Envoy can read the same
``DiscoveryResponse`` messages from files instead, and re-reads a file when it is *renamed* into a
watched directory, so a config change is applied live, without a restart: write
``.<name>.tmp``, then ``os.rename`` it onto the real name (atomic on one file system).

Layout per proxy (one directory per resource type, so a rename reloads only that type)::

    xds/lds/lds.json               every Listener
    xds/cds/cds.json               every Cluster
    xds/rds/<route config>.json    one RouteConfiguration per file (RDS is per name)
    xds/eds/<cluster>.json         one ClusterLoadAssignment per EDS cluster
    xds/sds/<secret>.json          one Secret per file (``default``, ``ROOTCA``)

Every file subscription costs Envoy one inotify instance, and Linux allows 128 per user by default
(``fs.inotify.max_user_instances``), shared by every Envoy on the machine (two test meshes of 9
Envoys each must fit). A sidecar sees a dozen EDS clusters and three route configurations, so
:func:`fold_eds` inlines each ``ClusterLoadAssignment`` into its cluster (``type: STATIC`` with
``load_assignment``: endpoint changes travel with CDS) and, with ``inline_routes``,
:func:`inline_route_configs` puts each route configuration into its listener (route changes
travel with LDS). A proxy then needs four watches: LDS, CDS, ``default`` and ``ROOTCA``.

The translator writes ``{"ads": {}}`` config sources, as istiod does; :func:`to_file_sources`
rewrites each into the ``path_config_source`` of the file above. Files are written in
make-before-break order (SDS, EDS, CDS, then RDS, then LDS), so a route never points at a cluster
Envoy has not seen yet.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.values import socket_address

__all__ = [
    "KINDS",
    "LOCAL_RUNTIME",
    "SPAN_FLUSH_MS",
    "TIMING_LOG_KEYS",
    "ProxyResources",
    "XdsFiles",
    "XdsWrite",
    "bootstrap",
    "fold_eds",
    "inline_route_configs",
    "to_file_sources",
]

TYPE_URLS: dict[str, str] = {
    "lds": tu.LISTENER,
    "cds": tu.CLUSTER,
    "rds": tu.ROUTE_CONFIGURATION,
    "eds": tu.CLUSTER_LOAD_ASSIGNMENT,
    "sds": tu.SECRET,
}
KINDS: tuple[str, ...] = ("sds", "eds", "cds", "rds", "lds")
"""Write order: make before break."""

KIND_NAMES: dict[str, str] = {
    "lds": "Listener",
    "cds": "Cluster",
    "rds": "RouteConfiguration",
    "eds": "ClusterLoadAssignment",
    "sds": "Secret",
}


def _file_name(name: str) -> str:
    """A resource name as a file name; reversible (``outbound|8080||x`` -> ``outbound%7C8080...``)."""
    return urllib.parse.quote(name, safe="._-") + ".json"


@dataclass
class ProxyResources:
    """The resources of one proxy, as plain Envoy v3 JSON dicts."""

    listeners: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    absent_secrets: list[str] = field(default_factory=list)
    """SDS names the listeners ask for that the control plane has no secret for (a
    ``credentialName`` whose Secret is missing or unusable): their files hold no resource,
    as istiod answers nothing, and Envoy's rejection of that empty update is expected."""

    def by_kind(self) -> dict[str, list[dict[str, Any]]]:
        """Resources keyed by xDS kind."""
        return {
            "lds": self.listeners,
            "cds": self.clusters,
            "rds": self.routes,
            "eds": self.endpoints,
            "sds": self.secrets,
        }


def inline_route_configs(listener: dict[str, Any], routes: Mapping[str, Any]) -> dict[str, Any]:
    """A listener whose HCMs carry their route configuration (``route_config``) instead of an
    RDS subscription: a route change then travels as a listener update (Envoy swaps only the
    filter chains that changed and drains their connections), and the proxy needs no RDS watch."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        rds = out.get("rds")
        if isinstance(rds, dict) and "route_config_name" in rds:
            name = str(rds["route_config_name"])
            del out["rds"]
            out["route_config"] = copy.deepcopy(routes.get(name, {"name": name}))
        return out

    result: dict[str, Any] = walk(listener)
    return result


def fold_eds(resources: ProxyResources) -> ProxyResources:
    """EDS clusters become STATIC clusters carrying their load assignment (see module docs)."""
    loads = {str(e.get("cluster_name", "")): e for e in resources.endpoints}
    clusters = []
    for cluster in resources.clusters:
        eds = cluster.get("eds_cluster_config")
        if cluster.get("type") == "EDS" and isinstance(eds, dict):
            name = str(eds.get("service_name") or cluster.get("name", ""))
            folded = {k: v for k, v in cluster.items() if k != "eds_cluster_config"}
            folded["type"] = "STATIC"
            folded["load_assignment"] = {
                **loads.get(name, {"endpoints": []}),
                "cluster_name": str(cluster.get("name", "")),
            }
            clusters.append(folded)
        else:
            clusters.append(cluster)
    return ProxyResources(
        listeners=resources.listeners,
        routes=resources.routes,
        clusters=clusters,
        endpoints=[],
        secrets=resources.secrets,
        absent_secrets=resources.absent_secrets,
    )


def resource_name(kind: str, resource: Mapping[str, Any]) -> str:
    """The name Envoy subscribes by."""
    if kind == "eds":
        return str(resource.get("cluster_name", ""))
    return str(resource.get("name", ""))


def _path_source(path: Path) -> dict[str, Any]:
    return {
        "path_config_source": {
            "path": str(path),
            "watched_directory": {"path": str(path.parent)},
        },
        "resource_api_version": "V3",
        "initial_fetch_timeout": "5s",
    }


TIMING_LOG_KEYS: dict[str, str] = {
    "start_us": "%START_TIME(%s.%6f)%",
    "upstream_cx_begin_us": "%COMMON_DURATION(DS_RX_BEG:US_CX_BEG:us)%",
    "upstream_handshake_end_us": "%COMMON_DURATION(DS_RX_BEG:US_HS_END:us)%",
    "upstream_tx_begin_us": "%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)%",
    "upstream_rx_end_us": "%COMMON_DURATION(DS_RX_BEG:US_RX_END:us)%",
    "downstream_connection_id": "%CONNECTION_ID%",
}
"""Keys the local runner adds to every HTTP access log (the ones with ``duration_us``): the
request's first byte in as epoch seconds with microseconds (``%START_TIME%`` alone has
milliseconds), and, in microseconds after it, when the upstream connection began connecting and
finished its TLS handshake, when the request went upstream and when the response's last byte came
back; and the downstream connection's id. Records take their start time from ``start_us``; the
connection-pool calibration (``cluster.pool_calibration``) reads the rest from the raw log to time
Envoy's reconnect race. The translator's own format (what a cluster's istiod-like config carries)
does not have them."""


def to_file_sources(resource: Any, root: Path) -> Any:
    """A copy of ``resource`` whose RDS, EDS and SDS config sources read files under ``root``,
    and whose HTTP access logs carry :data:`TIMING_LOG_KEYS`."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        rds = out.get("rds")
        if isinstance(rds, dict) and "route_config_name" in rds:
            rds["config_source"] = _path_source(
                root / "rds" / _file_name(str(rds["route_config_name"]))
            )
        eds = out.get("eds_cluster_config")
        if isinstance(eds, dict):
            name = str(eds.get("service_name") or out.get("name", ""))
            eds["eds_config"] = _path_source(root / "eds" / _file_name(name))
        if "sds_config" in out and "name" in out:
            out["sds_config"] = _path_source(root / "sds" / _file_name(str(out["name"])))
        fmt = out.get("json_format")
        if isinstance(fmt, dict) and "duration_us" in fmt:
            out["json_format"] = {**fmt, **TIMING_LOG_KEYS}
        return out

    return walk(copy.deepcopy(resource))


@dataclass(frozen=True, slots=True)
class XdsWrite:
    """What one :meth:`XdsFiles.write` changed: kind -> names of added/changed/removed resources."""

    changed: Mapping[str, tuple[str, ...]]
    files: tuple[Path, ...]

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not self.files


class XdsFiles:
    """The xDS files of one proxy, written atomically and only when their content changes."""

    def __init__(self, root: Path, *, inline_routes: bool = False) -> None:
        self.root = root
        self.inline_routes = inline_routes
        for kind in KINDS:
            (root / kind).mkdir(parents=True, exist_ok=True)
        self._version = 0
        self._content: dict[Path, str] = {}
        self._accepted: dict[Path, str] = {}
        self._names: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}

    def path(self, kind: str, name: str = "") -> Path:
        """The file a resource lives in."""
        if kind in {"lds", "cds"}:
            return self.root / kind / f"{kind}.json"
        return self.root / kind / _file_name(name)

    def _render(self, kind: str, resources: list[dict[str, Any]]) -> str:
        body = {
            "version_info": str(self._version),
            "resources": [{"@type": TYPE_URLS[kind], **r} for r in resources],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def _atomic(self, path: Path, text: str) -> None:
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.rename(tmp, path)

    def write(self, resources: ProxyResources) -> XdsWrite:
        """Write every changed file in make-before-break order; return what changed."""
        self._version += 1
        changed: dict[str, tuple[str, ...]] = {}
        written: list[Path] = []
        routes = {str(r.get("name", "")): r for r in resources.routes}
        for kind in KINDS:
            source = resources.by_kind()[kind]
            if kind == "lds" and self.inline_routes:
                source = [inline_route_configs(x, routes) for x in source]
            items = [to_file_sources(r, self.root) for r in source]
            for r in items:
                r.pop("@type", None)
            plan: dict[Path, tuple[list[dict[str, Any]], list[str]]] = {}
            if kind == "rds" and self.inline_routes:
                pass  # carried inside the listeners: only the change is tracked
            elif kind in {"lds", "cds"}:
                plan[self.path(kind)] = (items, [resource_name(kind, r) for r in items])
            else:
                for r in items:
                    plan[self.path(kind, resource_name(kind, r))] = ([r], [resource_name(kind, r)])
                if kind == "sds":  # a file must exist for Envoy to accept the listener
                    for name in resources.absent_secrets:
                        plan.setdefault(self.path(kind, name), ([], [name]))
            names_now = {resource_name(kind, r): json.dumps(r, sort_keys=True) for r in items}
            before = self._names[kind]
            diff = sorted(
                {n for n in names_now if before.get(n) != names_now[n]}
                | {n for n in before if n not in names_now}
            )
            for path, (group, _names) in plan.items():
                # compare without the version so an unchanged resource is not rewritten
                key = json.dumps(group, sort_keys=True)
                if self._content.get(path) == key:
                    continue
                self._atomic(path, self._render(kind, group))
                self._content[path] = key
                written.append(path)
            if diff:
                changed[kind] = tuple(diff)
            self._names[kind] = names_now
        return XdsWrite(changed, tuple(written))

    def commit(self) -> None:
        """Remember the current files as accepted by Envoy (what :meth:`revert` goes back to)."""
        for path in self._content:
            self._accepted[path] = path.read_text(encoding="utf-8")

    def revert(self, kinds: Iterable[str]) -> None:
        """Put back the last accepted files of ``kinds`` (after Envoy rejected an update)."""
        wanted = {self.root / k for k in kinds}
        for path, text in self._accepted.items():
            if path.parent in wanted:
                self._atomic(path, text)
                self._content.pop(path, None)
        for kind in kinds:
            self._names[kind] = {}


SPAN_FLUSH_MS = 250
"""How often the local runner's tracers post their span batches (ms).

Envoy's Zipkin and OpenTelemetry tracers buffer finished spans per worker and post them when
``min_flush_spans`` (default 5) are buffered or when a timer of ``flush_interval_ms`` (default
5000) fires, both read from the runtime (``tracing.zipkin.*``, ``tracing.opentelemetry.*``). istiod
sets neither, so a cluster's sidecars keep the 5 s default; the local runner's bootstrap sets the
timer to 250 ms in a static runtime layer so a step's spans reach the collector within about a
second and the run waits that much less for them (``Monitoring.flush_spans``)."""

LOCAL_RUNTIME: dict[str, int] = {
    "tracing.opentelemetry.flush_interval_ms": SPAN_FLUSH_MS,
    "tracing.zipkin.flush_interval_ms": SPAN_FLUSH_MS,
}
"""The local runner's runtime overrides (a static layer; an admin layer follows, as Envoy's
default runtime has one, so ``/runtime_modify`` still works)."""


def bootstrap(
    *,
    node_id: str,
    node_cluster: str,
    admin_port: int,
    xds_root: Path,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A bootstrap whose listeners and clusters come from the files under ``xds_root``."""
    node: dict[str, Any] = {"id": node_id, "cluster": node_cluster}
    if metadata:
        node["metadata"] = dict(metadata)
    return {
        "node": node,
        "admin": {"address": socket_address("127.0.0.1", admin_port)},
        "dynamic_resources": {
            "lds_config": _path_source(xds_root / "lds" / "lds.json"),
            "cds_config": _path_source(xds_root / "cds" / "cds.json"),
        },
        "layered_runtime": {
            "layers": [
                {"name": "meshplay-local", "static_layer": dict(LOCAL_RUNTIME)},
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }
