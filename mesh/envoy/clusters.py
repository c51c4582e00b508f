"""Clusters: ``outbound|port|subset|host`` per visible service port and subset, ``inbound|port||``
to the local app, and the fixed BlackHole / Passthrough clusters.

Discovery type follows istiod: Kubernetes services and STATIC ServiceEntries use EDS (endpoints in
:mod:`mesh.envoy.endpoints`), DNS ServiceEntries STRICT_DNS (LOGICAL_DNS for DNS_ROUND_ROBIN), and
``resolution: NONE`` ORIGINAL_DST (the app's original destination). DestinationRule policy is
applied per (port, subset) by :mod:`mesh.envoy.policy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.alpn import alpn_override_metadata
from mesh.envoy.endpoints import Endpoint, Locality, load_assignment
from mesh.envoy.multicluster import split_horizon
from mesh.envoy.policy import (
    ResolvedPolicy,
    circuit_breakers,
    common_http_options,
    connect_timeout,
    lb_fields,
    outlier_detection,
    resolve_policy,
)
from mesh.envoy.ports import Addressing
from mesh.envoy.registry import Registry
from mesh.envoy.upstream_tls import (
    PeerModes,
    auto_mtls_sockets,
    transport_socket,
)
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    PASSTHROUGH_CLUSTER,
    Direction,
    cluster_name,
)
from mesh.envoy_api.values import ADS, duration
from mesh.model import DestinationRule, MutualTLSMode, ServiceEntry
from mesh.model.gateway import ServiceEntryResolution
from mesh.topology import MeshService, Pod, Protocol, ProxyKind, ServicePortInfo, Topology

__all__ = [
    "ADS",
    "ClusterSet",
    "PeerModes",
    "inbound_cluster",
    "outbound_clusters",
    "special_clusters",
]


@dataclass(slots=True)
class ClusterSet:
    """Clusters and the load assignments of their EDS clusters."""

    clusters: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]


def _metadata(
    service: MeshService, port: int, subset: str, dr: DestinationRule | None, policy: ResolvedPolicy
) -> dict[str, Any]:
    istio: dict[str, Any] = {
        "default_original_port": port,
        "services": [
            {"host": service.hostname, "name": service.name, "namespace": service.namespace}
        ],
    }
    if subset:
        istio["subset"] = subset
    if dr is not None:
        istio["config"] = (
            f"/apis/networking.istio.io/v1/namespaces/{dr.namespace}/destination-rule/{dr.name}"
        )
        if policy.tls is not None:  # TLS origination keeps its ALPN (mesh.envoy.alpn)
            istio.update(alpn_override_metadata(policy.tls.mode.value))
    return {"filter_metadata": {"istio": istio}}


def _protocol_options(port: ServicePortInfo, policy: ResolvedPolicy) -> dict[str, Any] | None:
    common = common_http_options(policy.connection_pool)
    h2 = port.protocol in {Protocol.HTTP2, Protocol.GRPC}
    if not common and not h2:
        return None
    body: dict[str, Any] = {}
    if common:
        body["common_http_protocol_options"] = common
    body["explicit_http_config"] = (
        {"http2_protocol_options": {}} if h2 else {"http_protocol_options": {}}
    )
    return {tu.HTTP_PROTOCOL_OPTIONS_KEY: tu.typed(tu.HTTP_PROTOCOL_OPTIONS, **body)}


def _service_entry(
    index_entries: Sequence[ServiceEntry], service: MeshService
) -> ServiceEntry | None:
    return next(
        (
            se
            for se in index_entries
            if se.namespace == service.namespace and service.hostname in se.hosts
        ),
        None,
    )


def _entry_endpoints(se: ServiceEntry, port: ServicePortInfo, subset_labels: Any) -> list[Endpoint]:
    out = []
    for we in se.endpoints:
        if subset_labels and any(we.labels.get(k) != v for k, v in subset_labels.items()):
            continue
        number = we.ports.get(port.name, port.target_port) if port.name else port.target_port
        loc = [*we.locality.split("/"), "", "", ""]
        identity = ""
        if we.service_account:
            identity = f"spiffe://cluster.local/ns/{se.namespace}/sa/{we.service_account}"
        out.append(
            Endpoint(
                address=we.address,
                port=number,
                labels=we.labels,
                locality=Locality(loc[0], loc[1], loc[2]),
                weight=we.weight or 1,
                workload=we.address,
                namespace=se.namespace,
                identity=identity,
            )
        )
    return out


def outbound_clusters(
    services: Sequence[MeshService],
    *,
    drs: dict[str, DestinationRule | None],
    topology: Topology,
    registry: Registry,
    entries: Sequence[ServiceEntry],
    addressing: Addressing,
    client_locality: Locality,
    peer_modes: PeerModes | None = None,
    client: Pod | None = None,
) -> ClusterSet:
    """Every ``outbound|...`` cluster (and EDS assignment) for the services a proxy sees.

    Without ``peer_modes`` every server is taken as PERMISSIVE (auto mTLS to every sidecar).
    ``client`` (the proxy's pod) decides split-horizon EDS across networks."""
    clusters: list[dict[str, Any]] = []
    cla: list[dict[str, Any]] = []
    cfg = topology.config
    for service in services:
        dr = drs.get(service.hostname)
        se = _entry_service(entries, service)
        subsets = [("", None)] + [(s.name, s.labels) for s in (dr.subsets if dr else ())]
        for port in service.ports:
            if port.protocol is Protocol.UDP:
                continue
            for subset, labels in subsets:
                name = cluster_name(Direction.OUTBOUND, port.port, subset, service.hostname)
                policy = resolve_policy(dr, port.port, subset)
                cluster: dict[str, Any] = {
                    "name": name,
                    "connect_timeout": connect_timeout(
                        policy.connection_pool, cfg.connect_timeout_s
                    ),
                    "circuit_breakers": circuit_breakers(policy.connection_pool),
                    "metadata": _metadata(service, port.port, subset, dr, policy),
                }
                cluster.update(lb_fields(policy.load_balancer))
                od = policy.outlier_detection
                lb = policy.load_balancer
                locality_setting = lb.locality_lb_setting if lb is not None else None
                if od is not None:
                    cluster["outlier_detection"] = outlier_detection(od)
                    cluster["common_lb_config"] = {
                        "healthy_panic_threshold": {"value": float(od.min_health_percent or 0)}
                    }
                if locality_setting is not None and locality_setting.distribute:
                    cluster.setdefault("common_lb_config", {})["locality_weighted_lb_config"] = {}
                options = _protocol_options(port, policy)
                if options is not None:
                    cluster["typed_extension_protocol_options"] = options
                endpoints = _endpoints(
                    service,
                    se,
                    port=port,
                    labels=labels,
                    registry=registry,
                    addressing=addressing,
                    peer_modes=peer_modes,
                )
                endpoints = split_horizon(
                    endpoints, client=client, topology=topology, addressing=addressing
                )
                resolution = service.resolution if service.from_service_entry else None
                if resolution is ServiceEntryResolution.NONE or "*" in service.hostname:
                    cluster["type"] = "ORIGINAL_DST"
                    cluster["lb_policy"] = "CLUSTER_PROVIDED"
                    cluster.pop("ring_hash_lb_config", None)
                    cluster.pop("maglev_lb_config", None)
                elif resolution in {
                    ServiceEntryResolution.DNS,
                    ServiceEntryResolution.DNS_ROUND_ROBIN,
                }:
                    if not endpoints:
                        endpoints = [
                            Endpoint(
                                *addressing.external(service.hostname, port.target_port),
                                labels=_EMPTY,
                                locality=Locality(),
                            )
                        ]
                    logical = resolution is ServiceEntryResolution.DNS_ROUND_ROBIN
                    cluster["type"] = "LOGICAL_DNS" if logical else "STRICT_DNS"
                    cluster["dns_lookup_family"] = "V4_ONLY"
                    cluster["load_assignment"] = load_assignment(
                        name, endpoints[:1] if logical else endpoints
                    )
                else:
                    cluster["type"] = "EDS"
                    cluster["eds_cluster_config"] = {"eds_config": ADS, "service_name": name}
                    cla.append(
                        load_assignment(
                            name,
                            endpoints,
                            client=client_locality,
                            setting=locality_setting,
                            # istiod applies distribute or failover, never both
                            failover=od is not None
                            and (locality_setting is None or locality_setting.enabled is not False)
                            and not (locality_setting is not None and locality_setting.distribute),
                        )
                    )
                tls = transport_socket(
                    policy, port.port, subset=subset, service=service, endpoints=endpoints, se=se
                )
                if tls is not None:
                    cluster["transport_socket"] = tls
                elif policy.tls is None and cluster["type"] != "ORIGINAL_DST":
                    auto = auto_mtls_sockets(
                        service,
                        port,
                        subset,
                        endpoints,
                        peer_modes=peer_modes,
                        auto_mtls=cfg.enable_auto_mtls,
                    )
                    cluster.update(auto)
                clusters.append(dict(sorted(cluster.items())))
    return ClusterSet(clusters, cla)


_EMPTY: Any = {}


def _entry_service(entries: Sequence[ServiceEntry], service: MeshService) -> ServiceEntry | None:
    if not service.from_service_entry:
        return None
    return _service_entry(entries, service)


def _endpoints(
    service: MeshService,
    se: ServiceEntry | None,
    *,
    port: ServicePortInfo,
    labels: Any,
    registry: Registry,
    addressing: Addressing,
    peer_modes: PeerModes | None,
) -> list[Endpoint]:
    if se is not None:
        return _entry_endpoints(se, port, labels)
    out = []
    for pod in registry.endpoints(service, labels):
        address, number = addressing.endpoint(pod, port.target_port)
        sidecar = pod.proxy is ProxyKind.SIDECAR
        mode = MutualTLSMode.PERMISSIVE
        if sidecar and peer_modes is not None:
            mode = peer_modes.of_pod(pod).for_port(port.target_port)
        out.append(Endpoint.of_pod(pod, address, number, sidecar, mode))
    return out


def inbound_cluster(
    pod: Pod,
    target_port: int,
    *,
    services: Sequence[tuple[MeshService, ServicePortInfo]],
    dr_of: dict[str, DestinationRule | None],
    addressing: Addressing,
    connect_timeout_s: float,
) -> dict[str, Any]:
    """``inbound|<targetPort>||``: STATIC to the local app (its address comes from Addressing)."""
    name = cluster_name(Direction.INBOUND, target_port)
    address, port = addressing.app(pod, target_port)
    pool = None
    for service, sp in services:
        dr = dr_of.get(service.hostname)
        policy = resolve_policy(dr, sp.port)
        if policy.connection_pool is not None:
            pool = policy.connection_pool
            break
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout(pool, connect_timeout_s),
        "circuit_breakers": circuit_breakers(pool),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": address, "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
        "metadata": {
            "filter_metadata": {
                "istio": {
                    "services": [
                        {"host": s.hostname, "name": s.name, "namespace": s.namespace}
                        for s, _ in services
                    ]
                }
            }
        },
    }
    if any(sp.protocol in {Protocol.HTTP2, Protocol.GRPC} for _, sp in services):
        cluster["typed_extension_protocol_options"] = {
            tu.HTTP_PROTOCOL_OPTIONS_KEY: tu.typed(
                tu.HTTP_PROTOCOL_OPTIONS, explicit_http_config={"http2_protocol_options": {}}
            )
        }
    return dict(sorted(cluster.items()))


def special_clusters(proxy: ProxyKind, connect_timeout_s: float) -> list[dict[str, Any]]:
    """``BlackHoleCluster``, ``PassthroughCluster`` and (sidecars) ``InboundPassthroughCluster``."""
    timeout = duration(connect_timeout_s)
    unlimited = circuit_breakers(None)
    out: list[dict[str, Any]] = [
        {"connect_timeout": timeout, "name": BLACKHOLE_CLUSTER, "type": "STATIC"},
        {
            "circuit_breakers": unlimited,
            "connect_timeout": timeout,
            "lb_policy": "CLUSTER_PROVIDED",
            "name": PASSTHROUGH_CLUSTER,
            "type": "ORIGINAL_DST",
        },
    ]
    if proxy is ProxyKind.SIDECAR:
        out.append(
            {
                "circuit_breakers": unlimited,
                "connect_timeout": timeout,
                "lb_policy": "CLUSTER_PROVIDED",
                "name": INBOUND_PASSTHROUGH_CLUSTER,
                "type": "ORIGINAL_DST",
            }
        )
    return out
