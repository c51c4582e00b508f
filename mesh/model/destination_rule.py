"""istio.networking.v1.DestinationRule and its messages (destination_rule.proto).

A DestinationRule applies *after* routing: it names subsets (versions) of a service and sets the
traffic policy of the client-side Envoy clusters: load balancing, connection pools (circuit
breakers), outlier detection and TLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from mesh.model.common import Duration, FrozenMap, PortSelector, Resource, WorkloadSelector

__all__ = [
    "ClientTLSSettings",
    "ConnectionPoolSettings",
    "ConsistentHashLB",
    "DestinationRule",
    "HTTPCookie",
    "HTTPSettings",
    "LoadBalancerSettings",
    "LocalityLoadBalancerSetting",
    "LocalityLoadBalancerSettingDistribute",
    "LocalityLoadBalancerSettingFailover",
    "MagLev",
    "OutlierDetection",
    "PortTrafficPolicy",
    "RingHash",
    "SimpleLB",
    "Subset",
    "TCPSettings",
    "TLSMode",
    "TrafficPolicy",
]


class SimpleLB(StrEnum):
    """LoadBalancerSettings.SimpleLB. UNSPECIFIED means Istio's default, LEAST_REQUEST."""

    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


class TLSMode(StrEnum):
    """ClientTLSSettings.TLSmode."""

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPCookie:
    """Hash on a cookie; Envoy generates it with ``ttl`` when absent."""

    name: str
    path: str = ""
    ttl: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RingHash:
    """Ketama ring hash (Envoy RING_HASH)."""

    minimum_ring_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MagLev:
    """Maglev consistent hashing (Envoy MAGLEV)."""

    table_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistentHashLB:
    """Session affinity by header, cookie, source IP or query parameter."""

    ONEOF: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"),
        ("ringHash", "maglev"),
    )

    http_header_name: str = ""
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool = False
    http_query_parameter_name: str = ""
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityLoadBalancerSettingDistribute:
    """Share traffic from one locality across others by weight."""

    from_: str = ""
    to: FrozenMap[str, int] = field(default_factory=FrozenMap)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityLoadBalancerSettingFailover:
    """Where traffic from a region goes when its endpoints are unhealthy."""

    from_: str = ""
    to: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityLoadBalancerSetting:
    """Locality-weighted or failover load balancing (inert without outlier detection)."""

    distribute: tuple[LocalityLoadBalancerSettingDistribute, ...] = ()
    failover: tuple[LocalityLoadBalancerSettingFailover, ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancerSettings:
    """Load-balancing policy: ``simple`` or ``consistent_hash``, plus locality settings."""

    ONEOF: ClassVar[tuple[tuple[str, ...], ...]] = (("simple", "consistentHash"),)
    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"warmupDurationSecs", "warmup"})
    """Slow start (Envoy's ``slow_start_config``) is not translated yet: said, not dropped."""

    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TCPSettings:
    """TCP connection pool: maximum connections and connect timeout."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset(
        {"tcpKeepalive", "maxConnectionDuration", "idleTimeout"}
    )

    max_connections: int | None = None
    connect_timeout: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPSettings:
    """HTTP connection pool: pending requests, concurrent requests, retries (circuit breakers)."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset(
        {"h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams"}
    )

    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionPoolSettings:
    """Connection pool limits; Envoy enforces them as circuit breakers (503 UO when exceeded)."""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierDetection:
    """Passive health checking: eject hosts that keep failing (Envoy outlier_detection)."""

    consecutive_errors: int | None = None
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_5xx_errors: int | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTLSSettings:
    """TLS the client sidecar originates to the destination (ISTIO_MUTUAL = Istio's certs)."""

    mode: TLSMode = TLSMode.DISABLE
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool | None = None
    ca_crl: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PortTrafficPolicy:
    """Traffic policy overrides for one destination port."""

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficPolicy:
    """Policies applied to a destination (or a subset, or a port of it)."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"proxyProtocol", "tunnel", "retryBudget"})

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Subset:
    """A named group of a service's endpoints selected by pod labels (usually ``version``)."""

    name: str
    labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRule(Resource):
    """networking.istio.io DestinationRule."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1", "v1alpha3")
    KIND: ClassVar[str] = "DestinationRule"
    PLURAL: ClassVar[str] = "destinationrules"

    host: str = ""
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: WorkloadSelector | None = None
