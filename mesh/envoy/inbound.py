"""A sidecar's inbound side as istiod builds it (``listener_inbound.go``): for each container
port a Service of the pod targets, an ``inbound|<port>||`` cluster to the app and the
``virtualInbound`` chains of the port's protocol in its PeerAuthentication mode (HTTP: an HTTP
connection manager with the workload's security filters and the ``inbound|<port>||`` route
configuration; TCP: network RBAC and ``tcp_proxy``; unknown protocol: both paths); then the
passthrough chains for every other port (:mod:`mesh.envoy.virtual_inbound`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.envoy.accesslog import LogIdentity
from mesh.envoy.clusters import inbound_cluster
from mesh.envoy.listeners import (
    INBOUND_CAPTURE_PORT,
    HttpListenerSpec,
    TcpLog,
    http_connection_manager,
    inbound_http_filters,
    tcp_proxy,
)
from mesh.envoy.ports import Addressing, ListenerAddress, PortMap
from mesh.envoy.registry import Registry
from mesh.envoy.route_config import inbound_route_config
from mesh.envoy.scope import MeshIndex
from mesh.envoy.virtual_inbound import (
    inbound_passthrough_chains,
    passthrough_route_config,
    virtual_inbound,
)
from mesh.envoy_api.names import (
    INBOUND_PASSTHROUGH_CLUSTER,
    Direction,
    cluster_name,
    listener_name,
    stat_prefix,
)
from mesh.envoy_api.type_urls import FILTER_LOCAL_RATELIMIT
from mesh.model import Resource
from mesh.records import Reporter
from mesh.security import inbound_security_filters, inbound_tcp_security_filters
from mesh.security.peer_authn import (
    MtlsPolicy,
    inbound_filter_chains,
    sniffed_inbound_filter_chains,
)
from mesh.security.ratelimit import route_local_ratelimit
from mesh.topology import MeshService, Pod, Protocol, ServicePortInfo, Topology

__all__ = ["HTTP_LIKE", "InboundContext", "inbound_part"]

Json = dict[str, Any]

HTTP_LIKE = frozenset(
    {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB, Protocol.UNSUPPORTED}
)
"""Ports whose inbound path has an HTTP connection manager (a sniffed port has both paths)."""


@dataclass(frozen=True, slots=True)
class InboundContext:
    """What the inbound side reads from one translation: the topology and its service
    registry, addresses (Kubernetes or the local runner's ``port_map``), DestinationRule lookup,
    the security resources (AuthorizationPolicy, RequestAuthentication, EnvoyFilter, in apply
    order) and the runner's JWKS resolver."""

    topology: Topology
    registry: Registry
    addressing: Addressing
    index: MeshIndex
    policies: tuple[Resource, ...]
    port_map: PortMap | None
    jwks_resolver: Callable[[str], str | None] | None


def inbound_part(
    ctx: InboundContext, pod: Pod, mtls: MtlsPolicy, me: LogIdentity, log: str
) -> tuple[list[Json], list[Json], list[Json]]:
    """One pod's inbound side: ``virtualInbound`` (the chains of each container port a Service
    targets, per PeerAuthentication mode and protocol, and the passthrough chains), the
    ``inbound|<port>||`` clusters and route configurations, and the passthrough route
    configuration. ``me`` and ``log`` are the pod's access-log identity and path."""
    by_target: dict[int, list[tuple[MeshService, ServicePortInfo]]] = {}
    for service in ctx.registry.services_of(pod):
        for p in service.ports:
            if p.protocol is not Protocol.UDP:
                by_target.setdefault(p.target_port, []).append((service, p))
    targets = tuple(sorted(by_target))
    match_ports = ctx.addressing.inbound_ports(pod, targets)
    # RBAC ports name the port Envoy accepted the connection on: the target port in
    # Kubernetes (original_dst), the allocated one on the local runner
    rbac_ports = match_ports if ctx.port_map is not None else None
    chains: list[Json] = []
    clusters: list[Json] = []
    routes: list[Json] = []
    per_route = route_local_ratelimit(
        pod, ctx.policies, root_namespace=ctx.topology.config.root_namespace
    )
    for target in targets:
        members = by_target[target]
        service, sp = members[0]
        drs = {s.hostname: ctx.index.destination_rule(pod, s) for s, _ in members}
        clusters.append(
            inbound_cluster(
                pod,
                target,
                services=members,
                dr_of=drs,
                addressing=ctx.addressing,
                connect_timeout_s=ctx.topology.config.connect_timeout_s,
            )
        )
        name = cluster_name(Direction.INBOUND, target)
        http = sp.protocol in HTTP_LIKE
        sniffed = sp.protocol is Protocol.UNSUPPORTED
        filters: list[Json] = []
        tcp_filters: list[Json] = []
        if http:
            security_filters = inbound_security_filters(
                pod,
                ctx.policies,
                ctx.topology,
                port=target,
                jwks_resolver=ctx.jwks_resolver,
                destination_ports=rbac_ports,
            )
            spec = HttpListenerSpec(
                stat_prefix=stat_prefix(Direction.INBOUND, listener_name("0.0.0.0", target)),
                route_config=name,
                filters=inbound_http_filters(security=security_filters),
                me=me,
                access_log_path=log,
                inbound=True,
            )
            filters = [http_connection_manager(spec, service.hostname)]
            routes.append(
                inbound_route_config(
                    target,
                    sp.port,
                    service.hostname,
                    ctx.topology.config.istio_version,
                    {FILTER_LOCAL_RATELIMIT: per_route} if per_route is not None else None,
                    grpc=sp.protocol in {Protocol.GRPC, Protocol.GRPC_WEB},
                )
            )
        if not http or sniffed:
            tcp_filters = [
                *inbound_tcp_security_filters(
                    pod,
                    ctx.policies,
                    ctx.topology,
                    stat_prefix=f"{name}.",
                    destination_ports=rbac_ports,
                ),
                tcp_proxy(name, name, (), TcpLog(log, me, Reporter.DESTINATION, service.hostname)),
            ]
        if sniffed:
            chains.extend(
                sniffed_inbound_filter_chains(
                    mtls.for_port(target),
                    target_port=target,
                    match_port=match_ports[target],
                    http_filters=filters,
                    tcp_filters=tcp_filters,
                )
            )
            continue
        chains.extend(
            inbound_filter_chains(
                mtls.for_port(target),
                target_port=target,
                match_port=match_ports[target],
                http=http,
                network_filters=_same(filters if http else tcp_filters),
            )
        )
    local = [match_ports[t] for t in targets] if ctx.port_map is not None else []
    where = ctx.addressing.inbound_listener(pod, INBOUND_CAPTURE_PORT, local)
    additional = [ListenerAddress(where.address, p, True) for p in local[1:]]
    passthrough = inbound_passthrough_chains(
        mtls,
        targets,
        http=HttpListenerSpec(
            stat_prefix=INBOUND_PASSTHROUGH_CLUSTER,
            route_config=INBOUND_PASSTHROUGH_CLUSTER,
            filters=inbound_http_filters(
                inbound_security_filters(
                    pod,
                    ctx.policies,
                    ctx.topology,
                    jwks_resolver=ctx.jwks_resolver,
                    destination_ports=rbac_ports,
                )
            ),
            me=me,
            access_log_path=log,
            inbound=True,
        ),
        tcp_security=inbound_tcp_security_filters(
            pod,
            ctx.policies,
            ctx.topology,
            stat_prefix=f"{INBOUND_PASSTHROUGH_CLUSTER}.",
            destination_ports=rbac_ports,
        ),
        log=TcpLog(log, me, Reporter.DESTINATION),
    )
    routes.append(passthrough_route_config(ctx.topology.config.istio_version))
    return [virtual_inbound(where, chains, additional, passthrough)], clusters, routes


def _same(filters: list[Json]) -> Callable[[bool], list[Json]]:
    """The chains of one port share their network filters whether or not they terminate mTLS
    (the peer identity reaches RBAC and the access log from the connection itself)."""
    return lambda _mtls: filters
