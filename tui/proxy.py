"""What a node's sidecar is configured with: pods, Envoy listeners/routes/clusters, resilience.

The Envoy config comes from a ``ProxyConfigSource`` the composition root passes in (the
translator, ``mesh.envoy``): plain Envoy v3 dicts per pod, as ``istioctl proxy-config`` shows
them. Circuit breakers and outlier detection are what a DestinationRule's ``connectionPool`` and
``outlierDetection`` become on the client's ``outbound|port|subset|host`` clusters (Istio gives
every outbound cluster one DEFAULT-priority threshold, 2^32-1 for whatever the DestinationRule does
not set, so "no circuit breaker" means four limits of 4294967295, not Envoy's own defaults of
1024); their live state is read off the records: ``UO`` means a breaker was full, ``UH`` that no endpoint was
healthy (all ejected), and 5xx per upstream host show which endpoints outlier detection would
eject.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.model import DestinationRule, Resource
from mesh.model.destination_rule import ConnectionPoolSettings, OutlierDetection
from mesh.records import Reporter, RequestRecord
from mesh.topology import Pod, Topology, build_topology

__all__ = [
    "MAX_UINT32",
    "ConfigSummary",
    "ProxyConfigSource",
    "ResilienceState",
    "cluster_breakers",
    "node_pods",
    "resilience",
    "summarise_config",
]

ProxyConfigSource = Callable[[Sequence[Resource], str], Mapping[str, Any]]
"""(applied resources, pod name) -> ``{"listeners": [...], "routes": [...], "clusters": [...]}``."""


@dataclass(frozen=True, slots=True)
class ConfigSummary:
    """Names of a proxy's listeners, route configs (with virtual hosts) and clusters."""

    listeners: tuple[str, ...]
    routes: tuple[str, ...]
    clusters: tuple[str, ...]


def _names(items: Any) -> list[str]:
    if isinstance(items, Mapping):
        items = items.get("resources", items.get("items", []))
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, Mapping):
            inner = item.get("active_state", {}).get("listener") if "active_state" in item else None
            source = inner if isinstance(inner, Mapping) else item
            out.append(str(source.get("name", "?")))
    return out


def summarise_config(config: Mapping[str, Any]) -> ConfigSummary:
    """Listener, route-config (``name: vhost, ...``) and cluster names of an Envoy config."""
    routes = []
    for rc in config.get("routes", []) or []:
        if not isinstance(rc, Mapping):
            continue
        vhosts = [str(v.get("name", "?")) for v in rc.get("virtual_hosts", []) or []]
        shown = ", ".join(vhosts[:3]) + (f" +{len(vhosts) - 3}" if len(vhosts) > 3 else "")
        routes.append(f"{rc.get('name', '?')}: {shown}" if vhosts else str(rc.get("name", "?")))
    return ConfigSummary(
        listeners=tuple(_names(config.get("listeners", []))),
        routes=tuple(routes),
        clusters=tuple(_names(config.get("clusters", []))),
    )


MAX_UINT32 = 4294967295
"""What Istio writes for a circuit-breaker limit nobody set: 2^32-1, in effect no limit."""

_LIMITS = {"max_connections": 1024, "max_pending_requests": 1024, "max_requests": 1024,
           "max_retries": 3}  # fmt: skip
"""Envoy's own defaults, for a threshold that leaves a limit out."""


def cluster_breakers(config: Mapping[str, Any], service: str) -> list[tuple[str, list[str]]]:
    """The circuit-breaker thresholds of the outbound clusters to ``service`` (a Service name)
    in a translated Envoy config: ``[(cluster name, ["max_connections 1", ...]), ...]``; when
    every limit is Istio's 2^32-1 one line says so."""
    from mesh.envoy import parse_cluster_name

    out = []
    for cluster in config.get("clusters", []) or []:
        if not isinstance(cluster, Mapping):
            continue
        name = str(cluster.get("name", ""))
        parsed = parse_cluster_name(name)
        if parsed is None or parsed.direction.value != "outbound":
            continue
        if parsed.host.split(".", 1)[0] != service:
            continue
        thresholds = (cluster.get("circuit_breakers") or {}).get("thresholds") or [{}]
        first = thresholds[0]
        values = {key: first.get(key) for key in _LIMITS}
        if all(v is not None and int(v) == MAX_UINT32 for v in values.values()):
            out.append((name, [f"every limit {MAX_UINT32} (Istio's 2^32-1: no limit)"]))
            continue
        limits = []
        for key, value in values.items():
            if value is None:
                limits.append(f"{key} {_LIMITS[key]} (Envoy's default)")
            elif int(value) == MAX_UINT32:
                limits.append(f"{key} {MAX_UINT32} (no limit)")
            else:
                limits.append(f"{key} {value}")
        out.append((name, limits))
    return out


def node_pods(topology: Topology, node: str) -> tuple[Pod, ...]:
    """Pods behind the Service called ``node`` (or of the app labelled ``node``)."""
    for svc in topology.services:
        if svc.name == node and not svc.from_service_entry:
            pods = topology.endpoints(svc)
            if pods:
                return pods
    return tuple(p for p in topology.pods if p.labels.get("app") == node or p.workload == node)


@dataclass(frozen=True, slots=True)
class ResilienceState:
    """Configured breakers/ejection for a service and what the records show of them."""

    circuit_breakers: tuple[str, ...]
    outlier_detection: tuple[str, ...]
    overflows: int
    no_healthy: int
    host_errors: tuple[tuple[str, int, int], ...]


def _pool_lines(pool: ConnectionPoolSettings | None, where: str) -> list[str]:
    if pool is None:
        return []
    out = []
    if pool.tcp is not None and pool.tcp.max_connections is not None:
        out.append(f"{where}maxConnections {pool.tcp.max_connections}")
    if pool.http is not None:
        h = pool.http
        for label, value in (
            ("http1MaxPendingRequests", h.http1_max_pending_requests),
            ("http2MaxRequests", h.http2_max_requests),
            ("maxRequestsPerConnection", h.max_requests_per_connection),
            ("maxRetries", h.max_retries),
        ):
            if value is not None:
                out.append(f"{where}{label} {value}")
    return out


def _outlier_lines(od: OutlierDetection | None, where: str) -> list[str]:
    if od is None:
        return []
    out = []
    errors = od.consecutive_5xx_errors or od.consecutive_errors
    if errors is not None:
        out.append(f"{where}consecutive5xxErrors {errors}")
    if od.consecutive_gateway_errors is not None:
        out.append(f"{where}consecutiveGatewayErrors {od.consecutive_gateway_errors}")
    if od.interval is not None:
        out.append(f"{where}interval {od.interval.seconds:g}s")
    if od.base_ejection_time is not None:
        out.append(f"{where}baseEjectionTime {od.base_ejection_time.seconds:g}s")
    if od.max_ejection_percent is not None:
        out.append(f"{where}maxEjectionPercent {od.max_ejection_percent}")
    return out


def resilience(
    resources: Iterable[Resource], node: str, records: Iterable[RequestRecord]
) -> ResilienceState:
    """Breaker and ejection settings of the DestinationRules for ``node``, and observed effects."""
    items = list(resources)
    topology = build_topology(items)
    breakers: list[str] = []
    ejection: list[str] = []
    for dr in (r for r in items if isinstance(r, DestinationRule)):
        host = topology.resolve_host(dr.host, dr.namespace)
        if host.split(".", 1)[0] != node:
            continue
        if dr.traffic_policy is not None:
            breakers += _pool_lines(dr.traffic_policy.connection_pool, "")
            ejection += _outlier_lines(dr.traffic_policy.outlier_detection, "")
        for subset in dr.subsets:
            if subset.traffic_policy is not None:
                where = f"subset {subset.name}: "
                breakers += _pool_lines(subset.traffic_policy.connection_pool, where)
                ejection += _outlier_lines(subset.traffic_policy.outlier_detection, where)
    overflows = no_healthy = 0
    hosts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.destination_service_name != node or r.reporter is not Reporter.SOURCE:
            continue
        overflows += "UO" in r.response_flags
        no_healthy += "UH" in r.response_flags
        if r.upstream_host:
            hosts[r.upstream_host]["total"] += 1
            hosts[r.upstream_host]["errors"] += r.response_code >= 500
    return ResilienceState(
        circuit_breakers=tuple(breakers),
        outlier_detection=tuple(ejection),
        overflows=overflows,
        no_healthy=no_healthy,
        host_errors=tuple((h, c["errors"], c["total"]) for h, c in sorted(hosts.items())),
    )


def translator_config(resources: Sequence[Resource], pod: str) -> Mapping[str, Any]:
    """The pod's Envoy config from meshplay's translator (``mesh.envoy.translate``), as dicts."""
    from mesh.envoy.translate import translate_proxy

    items = tuple(resources)
    config = translate_proxy(items, build_topology(items), pod)
    return {
        "listeners": list(config.listeners),
        "routes": list(config.routes),
        "clusters": list(config.clusters),
    }
