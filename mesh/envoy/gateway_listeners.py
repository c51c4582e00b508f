"""A gateway proxy's listeners, routes and clusters, per port of its Gateways' servers.

istiod gives a gateway one listener per target port. A port of plain HTTP servers is an HCM on
the port's ``http.<port>`` route config. A port with TLS servers is one listener of chains by SNI:
SIMPLE/MUTUAL/ISTIO_MUTUAL servers terminate TLS into an HCM on their own ``https.<port>...``
route config, PASSTHROUGH servers proxy the bytes to the VirtualService ``tls`` route's cluster,
and AUTO_PASSTHROUGH (the east-west gateway) forwards by the SNI the client wrote,
``outbound_.<port>_.<subset>_.<host>``, to SNI-DNAT clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.accesslog import LogIdentity
from mesh.envoy.gateway import GatewayPort, gateway_ports, gateway_route_config
from mesh.envoy.gateway_tls import (
    TlsChainSpec,
    TlsPortBuild,
    auto_passthrough_chains,
    gateway_tls_context,
    https_route_name,
    is_terminating,
    passthrough_chains,
    sni_dnat_clusters,
    tls_port_listener,
)
from mesh.envoy.listeners import (
    HttpListenerSpec,
    TcpLog,
    gateway_hcm,
    gateway_listener,
    gateway_listener_base,
    outbound_http_filters,
    tcp_proxy,
)
from mesh.envoy.ports import Addressing
from mesh.envoy.registry import Registry
from mesh.envoy.routes import RouteContext
from mesh.envoy.scope import MeshIndex, ProxyScope
from mesh.envoy_api.names import Direction, gateway_route_name, listener_name, stat_prefix
from mesh.model import DestinationRule, Server
from mesh.records import Reporter
from mesh.topology import MeshService, Pod, Topology

__all__ = ["GatewayInputs", "GatewayPart", "gateway_part"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class GatewayInputs:
    """What a gateway's part reads from the translation: the mesh's index and registry, where
    listeners bind, and the route context of one (gateway, port)."""

    index: MeshIndex
    registry: Registry
    addressing: Addressing
    topology: Topology
    context: Callable[[str, int], RouteContext]


@dataclass(frozen=True, slots=True)
class GatewayPart:
    """A gateway pod's own listeners, route configs and clusters, and the servers whose
    credentials become its SDS secrets."""

    listeners: tuple[Json, ...]
    routes: tuple[Json, ...]
    clusters: tuple[Json, ...]
    servers: tuple[Server, ...]


def gateway_part(
    pod: Pod,
    inputs: GatewayInputs,
    *,
    scope: ProxyScope,
    outbound_clusters: Sequence[Json],
    me: LogIdentity,
    log: str,
) -> GatewayPart:
    """One listener per target port of the Gateways that select ``pod``."""
    listeners: list[Json] = []
    routes: list[Json] = []
    clusters: list[Json] = []
    servers: list[Server] = []
    for gport in gateway_ports(pod, inputs.index, inputs.topology):
        servers.extend(server for _, server in gport.servers)
        if gport.tls:
            built = _tls_port(
                pod, gport, inputs, scope=scope, outbound_clusters=outbound_clusters, me=me,
                log=log,
            )  # fmt: skip
            listeners.append(built.listener)
            routes.extend(built.routes)
            clusters.extend(built.clusters)
            continue
        spec = HttpListenerSpec(
            stat_prefix=stat_prefix(
                Direction.OUTBOUND, listener_name("0.0.0.0", gport.target_port)
            ),
            route_config=gateway_route_name(gport.target_port),
            filters=outbound_http_filters(me),
            me=me,
            access_log_path=log,
        )
        where = inputs.addressing.outbound_listener(pod, gport.target_port)
        listeners.append(gateway_listener(gport.target_port, where, spec))
        routes.append(gateway_route_config(gport, inputs.index, inputs.context))
    return GatewayPart(tuple(listeners), tuple(routes), tuple(clusters), tuple(servers))


def _tls_port(
    pod: Pod,
    gport: GatewayPort,
    inputs: GatewayInputs,
    *,
    scope: ProxyScope,
    outbound_clusters: Sequence[Json],
    me: LogIdentity,
    log: str,
) -> TlsPortBuild:
    """A gateway port of HTTPS/TLS servers (:mod:`mesh.envoy.gateway_tls`)."""
    terminating = []
    routes: list[Json] = []
    tcp: list[TlsChainSpec] = []
    clusters: list[Json] = []
    taken: set[str] = set()

    def rule_of(s: MeshService) -> DestinationRule | None:
        return inputs.index.destination_rule(pod, s)

    for gw, server in gport.servers:
        assert server.tls is not None
        mode = server.tls.mode.upper()
        if is_terminating(server):
            name = https_route_name(server, gw)
            spec = HttpListenerSpec(
                stat_prefix=stat_prefix(
                    Direction.OUTBOUND, listener_name("0.0.0.0", gport.target_port)
                ),
                route_config=name,
                filters=outbound_http_filters(me),
                me=me,
                access_log_path=log,
            )
            one = GatewayPort(gport.target_port, server.port.number, ((gw, server),))
            routes.append(gateway_route_config(one, inputs.index, inputs.context, name=name))
            terminating.append((server, gateway_hcm(spec), gateway_tls_context(server.tls)))
        elif mode == "PASSTHROUGH":
            tcp.extend(
                passthrough_chains(
                    gw, server, inputs.index, inputs.registry.resolve_host,
                    inputs.registry.service, taken=taken, pod_labels=pod.labels,
                    pod_namespace=pod.namespace,
                )
            )  # fmt: skip
        elif mode == "AUTO_PASSTHROUGH":
            tcp.extend(auto_passthrough_chains(server, scope.services, rule_of))
            clusters.extend(
                sni_dnat_clusters(
                    server, scope.services, rule_of,
                    lambda n: next((c for c in outbound_clusters if c["name"] == n), None),
                )
            )  # fmt: skip
    tcp_log = TcpLog(log, me, Reporter.SOURCE)
    listener = tls_port_listener(
        gateway_listener_base(
            gport.target_port, inputs.addressing.outbound_listener(pod, gport.target_port)
        ),
        terminating,
        tcp,
        lambda c: tcp_proxy(c.cluster, c.cluster, c.weighted, tcp_log),
    )
    return TlsPortBuild(listener, tuple(routes), tuple(clusters))
