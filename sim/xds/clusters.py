"""Clusters and their ClusterLoadAssignments compiled for execution.

A :class:`ClusterSpec` carries what the simulator executes of a cluster: its type and LB policy,
circuit-breaker thresholds, outlier detection, the panic threshold, locality weighting, and the
endpoints with the ``istio`` metadata istiod attaches (pod, workload, identity, ``tlsMode``).
Whether the upstream connection is Istio mTLS comes from the cluster's own ``transport_socket``
(or ``transport_socket_matches``): the SDS ``default`` certificate, with the ALPN it offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import parse_cluster_name
from sim.xds.values import parse_duration, typed_config

__all__ = [
    "MAX_UINT32",
    "ClusterSpec",
    "EndpointSpec",
    "OutlierSpec",
    "Thresholds",
    "compile_cluster",
]

MAX_UINT32 = 4294967295
_ISTIO_ALPN: tuple[str, ...] = ("istio-peer-exchange", "istio")
"""What an Istio mTLS socket offers when its context names no ALPN (istiod's ``ALPNInMeshWithMxc``)."""


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One ``lb_endpoint`` with istiod's ``istio`` metadata decoded."""

    address: str
    port: int
    weight: int
    priority: int
    locality: str
    pod: str
    workload: str
    namespace: str
    app: str
    version: str
    identity: str
    health: str = "HEALTHY"
    istio_tls: bool = False
    locality_weight: int = 0
    """The locality's ``load_balancing_weight`` (0 = none given)."""

    @property
    def host(self) -> str:
        """``address:port`` as ``%UPSTREAM_HOST%`` prints it."""
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``circuit_breakers.thresholds[DEFAULT]`` (Envoy's own defaults when absent)."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3


@dataclass(frozen=True, slots=True)
class OutlierSpec:
    """``outlier_detection`` with Envoy's defaults for unset fields."""

    consecutive_5xx: int = 5
    enforcing_consecutive_5xx: int = 100
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    consecutive_local_origin_failure: int = 5
    split_external_local_origin_errors: bool = False
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 10

    @classmethod
    def from_envoy(cls, od: Mapping[str, Any]) -> OutlierSpec:
        """Compile ``cluster.outlier_detection``."""
        base = parse_duration(od.get("base_ejection_time"), 30.0)
        return cls(
            consecutive_5xx=int(od.get("consecutive_5xx", 5)),
            enforcing_consecutive_5xx=int(od.get("enforcing_consecutive_5xx", 100)),
            consecutive_gateway_failure=int(od.get("consecutive_gateway_failure", 5)),
            enforcing_consecutive_gateway_failure=int(
                od.get("enforcing_consecutive_gateway_failure", 0)
            ),
            consecutive_local_origin_failure=int(od.get("consecutive_local_origin_failure", 5)),
            split_external_local_origin_errors=bool(
                od.get("split_external_local_origin_errors", False)
            ),
            interval=parse_duration(od.get("interval"), 10.0),
            base_ejection_time=base,
            max_ejection_time=max(parse_duration(od.get("max_ejection_time"), 300.0), base),
            max_ejection_percent=int(od.get("max_ejection_percent", 10)),
        )


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster as the simulator executes it."""

    name: str
    type: str
    lb_policy: str
    thresholds: Thresholds
    outlier: OutlierSpec | None
    panic_threshold: float
    endpoints: tuple[EndpointSpec, ...]
    ring_size: int = 1024
    maglev_size: int = 65537
    service_host: str = ""
    subset: str = ""
    connect_timeout: float = 10.0
    mtls: bool = False
    max_requests_per_connection: int = 0
    istio_mtls: str = ""
    """Istio mTLS to the endpoints: ``all`` (a ``transport_socket`` with the SDS ``default``
    certificate: DestinationRule ISTIO_MUTUAL), ``auto`` (istiod's ``tlsMode-istio`` socket
    match: endpoints tagged ``tlsMode: istio``) or ``""`` (plaintext, or TLS that is not
    Istio's)."""
    alpn: tuple[str, ...] = _ISTIO_ALPN
    """The ALPN the Istio mTLS socket offers (``common_tls_context.alpn_protocols``): what the
    server's ``virtualInbound`` chains match on."""

    priorities: tuple[int, ...] = (0,)
    """Distinct endpoint priorities, best first."""
    locality_weighted: bool = False
    """``common_lb_config.locality_weighted_lb_config``: pick a locality by weight first."""
    weighted: bool = False
    """Its endpoints' ``load_balancing_weight`` differ (the LB then weighs them)."""

    def istio_mtls_to(self, ep: EndpointSpec) -> bool:
        """Whether this cluster reaches ``ep`` over Istio mTLS: always (DestinationRule
        ISTIO_MUTUAL) or by auto mTLS to an endpoint labelled ``tlsMode: istio``."""
        return self.istio_mtls == "all" or (self.istio_mtls == "auto" and ep.istio_tls)


def _endpoint(
    lb: Mapping[str, Any], priority: int, locality: str, locality_weight: int = 0
) -> EndpointSpec:
    sock = lb["endpoint"]["address"]["socket_address"]
    filter_meta = (lb.get("metadata") or {}).get("filter_metadata") or {}
    meta = filter_meta.get("istio") or {}
    tls_match = filter_meta.get(tu.TRANSPORT_SOCKET_MATCH) or {}
    workload_parts = [*str(meta.get("workload", "")).split(";"), "", "", "", ""]
    labels = meta.get("labels") or {}
    return EndpointSpec(
        address=str(sock["address"]),
        port=int(sock.get("port_value", 0)),
        weight=int(lb.get("load_balancing_weight", 1) or 1),
        priority=priority,
        locality=locality,
        pod=str(meta.get("pod", "")),
        workload=workload_parts[0],
        namespace=workload_parts[1],
        app=workload_parts[2] or str(labels.get("app", "")),
        version=workload_parts[3] or str(labels.get("version", "")),
        identity=str(meta.get("identity", "")),
        health=str(lb.get("health_status", "HEALTHY")),
        istio_tls=tls_match.get("tlsMode") == "istio",
        locality_weight=locality_weight,
    )


def _endpoints(cla: Mapping[str, Any] | None) -> tuple[EndpointSpec, ...]:
    if not cla:
        return ()
    out: list[EndpointSpec] = []
    for group in cla.get("endpoints") or ():
        loc = "/".join(
            str(v) for v in (group.get("locality") or {}).values() if v
        )  # region/zone/sub_zone
        prio = int(group.get("priority", 0))
        weight = int(group.get("load_balancing_weight", 0) or 0)
        out.extend(_endpoint(lb, prio, loc, weight) for lb in group.get("lb_endpoints") or ())
    return tuple(e for e in out if e.health in ("HEALTHY", "UNKNOWN"))


def _thresholds(cluster: Mapping[str, Any]) -> Thresholds:
    cb = cluster.get("circuit_breakers") or {}
    for t in cb.get("thresholds") or ():
        if t.get("priority", "DEFAULT") == "DEFAULT":
            return Thresholds(
                max_connections=int(t.get("max_connections", 1024)),
                max_pending_requests=int(t.get("max_pending_requests", 1024)),
                max_requests=int(t.get("max_requests", 1024)),
                max_retries=int(t.get("max_retries", 3)),
            )
    return Thresholds()


def _is_istio_mutual(socket: Mapping[str, Any]) -> bool:
    """An UpstreamTlsContext presenting the workload certificate (SDS ``default``)."""
    context = typed_config(socket).get("common_tls_context") or {}
    return any(
        s.get("name") == "default" for s in context.get("tls_certificate_sds_secret_configs") or ()
    )


def _alpn(socket: Mapping[str, Any]) -> tuple[str, ...]:
    context = typed_config(socket).get("common_tls_context") or {}
    return tuple(str(a) for a in context.get("alpn_protocols") or ()) or _ISTIO_ALPN


def compile_cluster(cluster: Mapping[str, Any], cla: Mapping[str, Any] | None) -> ClusterSpec:
    """A Cluster dict (+ its ClusterLoadAssignment for EDS) -> ClusterSpec."""
    name = str(cluster["name"])
    assignment = cla if cla is not None else cluster.get("load_assignment")
    od = cluster.get("outlier_detection")
    lb_config = cluster.get("common_lb_config") or {}
    panic = (lb_config.get("healthy_panic_threshold") or {}).get("value", 50.0)
    meta = ((cluster.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    services = meta.get("services") or ()
    parsed = parse_cluster_name(name)
    service_host = str(services[0]["host"]) if services else (parsed.host if parsed else "")
    subset = str(meta.get("subset", parsed.subset if parsed else ""))
    endpoints = _endpoints(assignment)
    tls = cluster.get("transport_socket") or {}
    matches = cluster.get("transport_socket_matches") or ()
    mtls = tls.get("name") == tu.TLS_TRANSPORT_SOCKET or bool(matches)
    istio_mtls = ""
    alpn = _ISTIO_ALPN
    if _is_istio_mutual(tls):
        istio_mtls, alpn = "all", _alpn(tls)
    else:
        for m in matches:
            socket = m.get("transport_socket") or {}
            if (m.get("match") or {}).get("tlsMode") == "istio" and _is_istio_mutual(socket):
                istio_mtls, alpn = "auto", _alpn(socket)
                break
    options = (cluster.get("typed_extension_protocol_options") or {}).get(
        tu.HTTP_PROTOCOL_OPTIONS_KEY
    ) or {}
    common = options.get("common_http_protocol_options") or {}
    return ClusterSpec(
        name=name,
        type=str(cluster.get("type", "EDS")),
        lb_policy=str(cluster.get("lb_policy", "ROUND_ROBIN")),
        thresholds=_thresholds(cluster),
        outlier=OutlierSpec.from_envoy(od) if od is not None else None,
        panic_threshold=float(panic),
        endpoints=endpoints,
        ring_size=int((cluster.get("ring_hash_lb_config") or {}).get("minimum_ring_size", 1024)),
        maglev_size=int((cluster.get("maglev_lb_config") or {}).get("table_size", 65537)),
        service_host=service_host,
        subset=subset,
        connect_timeout=parse_duration(cluster.get("connect_timeout"), 5.0),
        mtls=mtls,
        istio_mtls=istio_mtls,
        alpn=alpn,
        max_requests_per_connection=int(common.get("max_requests_per_connection", 0)),
        priorities=tuple(sorted({e.priority for e in endpoints})) or (0,),
        locality_weighted="locality_weighted_lb_config" in lb_config,
        weighted=len({e.weight for e in endpoints}) > 1,
    )
