"""A sidecar's outbound listeners, and where it listens for TCP, TLS and sniffed service ports,
as istiod binds them.

istiod gives a TCP port of a Service with a VIP its own ``<VIP>_<port>`` listener, matches
CIDR addresses with ``prefix_ranges`` on ``0.0.0.0_<port>``, gives a headless Service a listener
per endpoint IP, and tells TLS services on a shared listener apart by SNI. VirtualService
``tcp`` and ``tls`` routes pick the clusters of those chains (weighted when there are several).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mesh.envoy.inbound import HTTP_LIKE
from mesh.envoy.l4_match import static_match
from mesh.envoy.listeners import (
    OUTBOUND_CAPTURE_PORT,
    HttpListenerSpec,
    TcpChain,
    TcpLog,
    outbound_http_filters,
    sniffed_listener,
    tcp_listener,
    virtual_outbound,
)
from mesh.envoy.ports import Addressing
from mesh.envoy.registry import Registry
from mesh.envoy.scope import ProxyScope
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    Direction,
    cluster_name,
    listener_name,
    route_config_name,
    sniffed_route_config_name,
    stat_prefix,
)
from mesh.model import VirtualService
from mesh.model.virtual_service import RouteDestination
from mesh.topology import MeshService, Pod, Protocol

__all__ = ["sidecar_outbound_listeners", "sniffed_at_address", "tcp_listeners"]

Json = dict[str, Any]


def _is_cidr(address: str) -> bool:
    _, _, bits = address.partition("/")
    return bool(bits) and bits not in {"32", "128"}


def sniffed_at_address(service: MeshService) -> bool:
    """An unknown-protocol port of this service gets its own sniffed ``<VIP>_<port>`` listener
    (a VIP, or a headless Service's endpoint IPs), as istiod binds TCP and sniffed ports. A
    service with no address or only CIDRs keeps its HTTP path on ``0.0.0.0_<port>``."""
    return service.headless or any(not _is_cidr(a) for a in service.addresses)


def tcp_listeners(
    registry: Registry, pod: Pod, scope: ProxyScope
) -> tuple[dict[tuple[str, int], list[TcpChain]], dict[tuple[str, int], str]]:
    """Where each TCP service port of the scope is listened for, as istiod binds it.

    A Service with a VIP (ClusterIP, ServiceEntry address) gets ``<VIP>_<port>``; a CIDR
    address becomes a ``prefix_ranges`` chain on ``0.0.0.0_<port>``; a headless Service gets
    one listener per endpoint IP; a service with no address at all (a ServiceEntry without
    ``addresses``) gets ``0.0.0.0_<port>``. Two services claiming the same listener and
    match: the first by host name wins, as istiod's conflict handling keeps the first.

    An unknown-protocol (sniffed) port is bound the same way at its VIPs or endpoint IPs;
    those listeners are returned in the second dict, with the service whose HTTP route
    config they use. A sniffed port without a VIP (no address, or a CIDR) has its HTTP path
    on ``0.0.0.0_<port>`` and its TCP chain here, on the same wildcard: when the wildcard
    port also has an HTTP listener the caller merges both into one sniffed listener, as
    istiod does for HTTP over TCP, TCP over HTTP and sniffed over either."""
    out: dict[tuple[str, int], list[TcpChain]] = {}
    sniffed: dict[tuple[str, int], str] = {}
    for service in sorted(scope.services, key=lambda s: s.hostname):
        for p in service.ports:
            unknown = p.protocol is Protocol.UNSUPPORTED
            sniffs = unknown and sniffed_at_address(service)
            if (p.protocol in HTTP_LIKE and not unknown) or p.protocol is Protocol.UDP:
                continue
            default = cluster_name(Direction.OUTBOUND, p.port, "", service.hostname)
            weighted = tuple(_tcp_weights(registry, pod, scope, service, p.port))
            binds: list[tuple[str, str]] = []
            if service.headless:
                binds = [(pod.address, "") for pod in registry.endpoints(service)]
            elif service.addresses:
                for address in service.addresses:
                    if not _is_cidr(address):
                        binds.append((address.partition("/")[0], ""))
                    else:
                        binds.append(("0.0.0.0", address))
            else:
                binds = [("0.0.0.0", "")]
            tls = p.protocol in {Protocol.TLS, Protocol.HTTPS}
            by_sni = _tls_routes(registry, pod, scope, service, p.port) if tls else []
            for address, cidr in binds:
                if sniffs and address != "0.0.0.0":
                    sniffed.setdefault((address, p.port), service.hostname)
                chains = out.setdefault((address, p.port), [])
                # istiod matches SNI (the service's host) where the address cannot tell
                # services apart: a wildcard listener or a CIDR
                names = (service.hostname,) if tls and (address == "0.0.0.0") else ()
                for candidate in [*by_sni, TcpChain(default, weighted, cidr, names)]:
                    chain = replace(candidate, cidr=cidr)
                    if all((c.cidr, c.server_names) != (chain.cidr, chain.server_names)
                           for c in chains):  # fmt: skip
                        chains.append(chain)
    return out, sniffed


def _tls_routes(
    registry: Registry, pod: Pod, scope: ProxyScope, service: MeshService, port: int
) -> list[TcpChain]:
    """VirtualService ``tls`` routes of a TLS/HTTPS port, for sidecars (``mesh``): a chain
    per match that applies to this proxy (:mod:`mesh.envoy.l4_match`) on its ``sniHosts``
    to the route's destination(s); a later match on the same SNI names is unreachable and
    left out, as istiod does."""
    vs = scope.virtual_service(service.hostname)
    if vs is None:
        return []
    out: list[TcpChain] = []
    handled: set[tuple[str, ...]] = set()
    for rule in vs.tls:
        weighted = _destinations(registry, vs, rule.route, port)
        if not weighted:
            continue
        for m in rule.match:
            if not m.sni_hosts or m.destination_subnets:
                continue  # destinationSubnets: not modelled (MPY2001)
            if not static_match(m, labels=pod.labels, namespace=pod.namespace, port=port,
                                gateways=vs.gateways):  # fmt: skip
                continue
            if tuple(m.sni_hosts) in handled:
                continue
            handled.add(tuple(m.sni_hosts))
            several = tuple(weighted) if len(weighted) > 1 else ()
            out.append(TcpChain(weighted[0][0], several, "", tuple(m.sni_hosts)))
    return out


def _tcp_weights(
    registry: Registry, pod: Pod, scope: ProxyScope, service: MeshService, port: int
) -> list[tuple[str, int]]:
    """VS ``tcp`` routes for a TCP port: the first rule without matches, or with a match
    that applies to this proxy (port, ``sourceLabels``, ``sourceNamespace``, ``gateways``;
    a match with ``destinationSubnets`` is not modelled and never applies)."""
    vs = scope.virtual_service(service.hostname)
    if vs is None:
        return []
    for rule in vs.tcp:
        if not rule.route:
            continue
        if rule.match and not any(
            not m.destination_subnets
            and static_match(m, labels=pod.labels, namespace=pod.namespace, port=port,
                             gateways=vs.gateways)
            for m in rule.match
        ):  # fmt: skip
            continue
        return _destinations(registry, vs, rule.route, port)
    return []


def _destinations(
    registry: Registry, vs: VirtualService, route: Sequence[RouteDestination], port: int
) -> list[tuple[str, int]]:
    """(cluster, weight) of a TCP/TLS rule's destinations (one: weight 100)."""
    out = []
    for rd in route:
        host = registry.resolve_host(rd.destination.host, vs.namespace)
        target = registry.service(host)
        dport = rd.destination.port.number if rd.destination.port else 0
        if not dport:
            dport = target.ports[0].port if target and len(target.ports) == 1 else port
        out.append(
            (
                cluster_name(Direction.OUTBOUND, dport, rd.destination.subset, host),
                rd.weight or 0,
            )
        )
    if len(out) == 1:
        return [(out[0][0], 100)]
    return [o for o in out if o[1] > 0]


def sidecar_outbound_listeners(
    addressing: Addressing,
    pod: Pod,
    *,
    allow_any: bool,
    log: TcpLog,
    http_ports: Sequence[int],
    tcp: Mapping[tuple[str, int], list[TcpChain]],
    sniffed: Mapping[tuple[str, int], str],
) -> list[Json]:
    """A sidecar's outbound listeners: ``virtualOutbound`` (the capture port), an HTTP wildcard
    ``0.0.0.0_<port>`` per HTTP port (its non-HTTP bytes take the port's VIP-less TCP chains),
    and the :func:`tcp_listeners` binds: a sniffed listener (HTTP chain plus TCP chains) where
    the service's port is sniffed, else a TCP listener falling through to PassthroughCluster
    (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY)."""
    me = log.me
    listeners = [
        virtual_outbound(addressing.capture_listener(pod, OUTBOUND_CAPTURE_PORT), allow_any, log)
    ]
    fallthrough = PASSTHROUGH_CLUSTER if allow_any else BLACKHOLE_CLUSTER
    for port in http_ports:
        name = listener_name("0.0.0.0", port)
        spec = HttpListenerSpec(
            stat_prefix=stat_prefix(Direction.OUTBOUND, name),
            route_config=route_config_name(port),
            filters=outbound_http_filters(me),
            me=me,
            access_log_path=log.path,
        )
        where = addressing.outbound_listener(pod, port)
        # istiod matches a sidecar's HTTP wildcard on http/1.1/h2c too: other bytes take
        # the TCP chains of VIP-less services on the port, else PassthroughFilterChain
        merged = tcp.get(("0.0.0.0", port), [])
        listeners.append(sniffed_listener(where, merged, log, fallthrough, spec=spec, name=name))
    wildcard_http = set(http_ports)
    taken = set(wildcard_http)  # local runner: ports a listener already binds
    for (address, port), chains in tcp.items():
        if address == pod.address:
            continue  # a headless Service's own endpoint: the app reaches itself directly
        if address == "0.0.0.0" and port in wildcard_http:
            continue  # merged into the port's HTTP wildcard above
        host = sniffed.get((address, port))
        if host is not None:
            name = listener_name(address, port)
            spec = HttpListenerSpec(
                stat_prefix=stat_prefix(Direction.OUTBOUND, name),
                route_config=sniffed_route_config_name(host, port),
                filters=outbound_http_filters(me),
                me=me,
                access_log_path=log.path,
            )
            where = addressing.sniffed_listener(pod, address, port, port not in taken)
            taken.add(port)
            listeners.append(
                sniffed_listener(where, chains, log, fallthrough, spec=spec, name=name)
            )
            continue
        where = (
            addressing.outbound_listener(pod, port)
            if address == "0.0.0.0"
            else addressing.vip_listener(address, port)
        )
        listeners.append(tcp_listener(where, chains, log, fallthrough))
    return listeners
