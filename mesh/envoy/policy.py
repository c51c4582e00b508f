"""DestinationRule traffic policy -> the Envoy cluster fields it controls.

Composition per (port, subset), as istiod does it: a ``portLevelSettings`` entry for the port
*replaces* the top-level policy wholesale; a subset's policy then replaces whole blocks
(``loadBalancer``, ``connectionPool``, ``outlierDetection``, ``tls``) that it sets, and all four
when it has a matching port-level entry. Defaults istiod always writes: circuit breakers at
2^32-1 (Envoy's 1024 never apply), ``connect_timeout`` 10 s, ``LEAST_REQUEST``. Outlier detection
only when configured, and then ``healthy_panic_threshold`` = ``minHealthPercent`` (0 = panic off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.values import MAX_UINT32, duration
from mesh.model import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    ConsistentHashLB,
    DestinationRule,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    SimpleLB,
    TrafficPolicy,
)

__all__ = [
    "ResolvedPolicy",
    "circuit_breakers",
    "hash_policy",
    "lb_fields",
    "outlier_detection",
    "resolve_policy",
]


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """The four policy blocks in effect for one cluster."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None

    @property
    def consistent_hash(self) -> ConsistentHashLB | None:
        """The consistent-hash settings, if the LB is a hash ring."""
        lb = self.load_balancer
        return lb.consistent_hash if lb is not None else None


def _port_level(policy: TrafficPolicy | None, port: int) -> PortTrafficPolicy | None:
    if policy is None:
        return None
    return next(
        (p for p in policy.port_level_settings if p.port is not None and p.port.number == port),
        None,
    )


def _blocks(policy: TrafficPolicy | PortTrafficPolicy | None) -> ResolvedPolicy:
    if policy is None:
        return ResolvedPolicy()
    return ResolvedPolicy(
        policy.load_balancer, policy.connection_pool, policy.outlier_detection, policy.tls
    )


def resolve_policy(dr: DestinationRule | None, port: int, subset: str = "") -> ResolvedPolicy:
    """The policy for ``outbound|port|subset|host`` under ``dr``."""
    if dr is None:
        return ResolvedPolicy()
    top = dr.traffic_policy
    port_level = _port_level(top, port)
    base = _blocks(port_level) if port_level is not None else _blocks(top)
    if not subset:
        return base
    sub = next((s for s in dr.subsets if s.name == subset), None)
    if sub is None or sub.traffic_policy is None:
        return base
    sub_port = _port_level(sub.traffic_policy, port)
    if sub_port is not None:
        return _blocks(sub_port)
    sp = sub.traffic_policy
    return ResolvedPolicy(
        sp.load_balancer if sp.load_balancer is not None else base.load_balancer,
        sp.connection_pool if sp.connection_pool is not None else base.connection_pool,
        sp.outlier_detection if sp.outlier_detection is not None else base.outlier_detection,
        sp.tls if sp.tls is not None else base.tls,
    )


def lb_fields(lb: LoadBalancerSettings | None) -> dict[str, Any]:
    """``lb_policy`` plus ring-hash / maglev settings (Istio default LEAST_REQUEST)."""
    if lb is None:
        return {"lb_policy": "LEAST_REQUEST"}
    ch = lb.consistent_hash
    if ch is not None:
        if ch.maglev is not None:
            out: dict[str, Any] = {"lb_policy": "MAGLEV"}
            if ch.maglev.table_size:
                out["maglev_lb_config"] = {"table_size": ch.maglev.table_size}
            return out
        ring = 1024
        if ch.ring_hash is not None and ch.ring_hash.minimum_ring_size:
            ring = ch.ring_hash.minimum_ring_size
        elif ch.minimum_ring_size:
            ring = ch.minimum_ring_size
        return {"lb_policy": "RING_HASH", "ring_hash_lb_config": {"minimum_ring_size": ring}}
    simple = lb.simple or SimpleLB.UNSPECIFIED
    if simple is SimpleLB.ROUND_ROBIN:
        return {"lb_policy": "ROUND_ROBIN"}
    if simple is SimpleLB.RANDOM:
        return {"lb_policy": "RANDOM"}
    if simple is SimpleLB.PASSTHROUGH:
        return {"lb_policy": "CLUSTER_PROVIDED"}
    return {"lb_policy": "LEAST_REQUEST"}


def circuit_breakers(pool: ConnectionPoolSettings | None) -> dict[str, Any]:
    """Istio's one DEFAULT-priority threshold: 2^32-1 everywhere, then the positive pool limits."""
    threshold: dict[str, Any] = {
        "max_connections": MAX_UINT32,
        "max_pending_requests": MAX_UINT32,
        "max_requests": MAX_UINT32,
        "max_retries": MAX_UINT32,
        "track_remaining": True,
    }
    if pool is not None:
        if pool.tcp is not None and pool.tcp.max_connections:
            threshold["max_connections"] = pool.tcp.max_connections
        http = pool.http
        if http is not None:
            if http.http1_max_pending_requests:
                threshold["max_pending_requests"] = http.http1_max_pending_requests
            if http.http2_max_requests:
                threshold["max_requests"] = http.http2_max_requests
            if http.max_retries:
                threshold["max_retries"] = http.max_retries
    return {"thresholds": [threshold]}


def connect_timeout(pool: ConnectionPoolSettings | None, default_s: float) -> str:
    """``tcp.connectTimeout`` or the mesh ``connectTimeout`` (10 s)."""
    if pool is not None and pool.tcp is not None and pool.tcp.connect_timeout is not None:
        return duration(pool.tcp.connect_timeout)
    return duration(default_s)


def common_http_options(pool: ConnectionPoolSettings | None) -> dict[str, Any]:
    """``maxRequestsPerConnection`` / ``idleTimeout`` -> HttpProtocolOptions common options."""
    out: dict[str, Any] = {}
    if pool is not None and pool.http is not None:
        if pool.http.max_requests_per_connection:
            out["max_requests_per_connection"] = pool.http.max_requests_per_connection
        if pool.http.idle_timeout is not None:
            out["idle_timeout"] = duration(pool.http.idle_timeout)
    return out


def outlier_detection(od: OutlierDetection) -> dict[str, Any]:
    """Istio OutlierDetection -> Envoy ``outlier_detection`` (success-rate ejection always off)."""
    out: dict[str, Any] = {"enforcing_success_rate": 0}
    consecutive_5xx = od.consecutive_5xx_errors
    if consecutive_5xx is None and od.consecutive_errors is not None:
        consecutive_5xx = od.consecutive_errors  # deprecated alias
    if consecutive_5xx is not None:
        out["consecutive_5xx"] = consecutive_5xx
        out["enforcing_consecutive_5xx"] = 100 if consecutive_5xx > 0 else 0
    if od.consecutive_gateway_errors:
        out["consecutive_gateway_failure"] = od.consecutive_gateway_errors
        out["enforcing_consecutive_gateway_failure"] = 100
    if od.interval is not None:
        out["interval"] = duration(od.interval)
    if od.base_ejection_time is not None:
        out["base_ejection_time"] = duration(od.base_ejection_time)
    if od.max_ejection_percent:
        out["max_ejection_percent"] = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out["split_external_local_origin_errors"] = True
        if od.consecutive_local_origin_failures:
            out["consecutive_local_origin_failure"] = od.consecutive_local_origin_failures
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    return dict(sorted(out.items()))


def hash_policy(ch: ConsistentHashLB | None) -> list[dict[str, Any]]:
    """The route ``hash_policy`` for a consistent-hash destination (empty when not hashing)."""
    if ch is None:
        return []
    if ch.http_header_name:
        return [{"header": {"header_name": ch.http_header_name}}]
    if ch.http_cookie is not None:
        cookie: dict[str, Any] = {"name": ch.http_cookie.name}
        if ch.http_cookie.path:
            cookie["path"] = ch.http_cookie.path
        if ch.http_cookie.ttl is not None:
            cookie["ttl"] = duration(ch.http_cookie.ttl)
        return [{"cookie": cookie}]
    if ch.use_source_ip:
        return [{"connection_properties": {"source_ip": True}}]
    if ch.http_query_parameter_name:
        return [{"query_parameter": {"name": ch.http_query_parameter_name}}]
    return []
