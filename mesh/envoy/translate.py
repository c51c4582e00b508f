"""``translate``: Istio + Kubernetes resources -> per-proxy Envoy configuration, like istiod.

Pure and deterministic: no I/O, every output list sorted by name. Proxies that see the same
outbound world (same namespace, Sidecar, DestinationRules, locality, outbound policy and — only
when a VirtualService uses ``sourceLabels`` — labels) share one computed outbound part, the way
istiod caches per sidecar scope; the per-pod parts (listeners with the pod's own log identity,
inbound clusters and routes) are built for each pod. The dicts inside a :class:`ProxyConfig`
may therefore be shared between proxies: treat them as read-only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mesh.envoy.accesslog import LogIdentity
from mesh.envoy.alpn import with_upstream_alpn
from mesh.envoy.clusters import (
    ClusterSet,
    PeerModes,
    outbound_clusters,
    special_clusters,
)
from mesh.envoy.endpoints import locality_of
from mesh.envoy.gateway import GatewayPort, gateway_ports, gateway_route_config
from mesh.envoy.gateway_tls import (
    TlsChainSpec,
    TlsPortBuild,
    auto_passthrough_chains,
    gateway_credential_secrets,
    gateway_tls_context,
    https_route_name,
    is_terminating,
    passthrough_chains,
    sni_dnat_clusters,
    tls_port_listener,
)
from mesh.envoy.inbound import HTTP_LIKE, InboundContext, inbound_part
from mesh.envoy.l4_match import static_match
from mesh.envoy.listeners import (
    OUTBOUND_CAPTURE_PORT,
    HttpListenerSpec,
    TcpChain,
    TcpLog,
    gateway_hcm,
    gateway_listener,
    gateway_listener_base,
    outbound_http_filters,
    sniffed_listener,
    tcp_listener,
    tcp_proxy,
    virtual_outbound,
)
from mesh.envoy.multicluster import is_eastwest_gateway
from mesh.envoy.ports import Addressing, PortMap
from mesh.envoy.registry import Registry
from mesh.envoy.route_config import (
    outbound_route_config,
    sniffed_route_config,
)
from mesh.envoy.routes import RouteContext
from mesh.envoy.scope import MeshIndex, ProxyScope
from mesh.envoy.tracing import TracingOptions, collector_cluster, with_tracing
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    Direction,
    cluster_name,
    gateway_route_name,
    listener_name,
    route_config_name,
    sniffed_route_config_name,
    stat_prefix,
)
from mesh.model import (
    AuthorizationPolicy,
    DestinationRule,
    EnvoyFilter,
    FrozenMap,
    OutboundTrafficPolicyMode,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
    Secret,
    Server,
    VirtualService,
)
from mesh.model.virtual_service import RouteDestination
from mesh.records import Reporter
from mesh.security.peer_authn import (
    MtlsPolicy,
    effective_mtls,
    namespace_mtls_mode,
)
from mesh.topology import MeshService, Pod, Protocol, ProxyKind, Topology

__all__ = ["MeshEnvoyConfig", "ProxyConfig", "TranslateOptions", "translate", "translate_proxy"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    """Knobs that change addresses and files, never routing semantics.

    ``access_log_path`` may contain ``{pod}`` and ``{namespace}``. ``port_map`` rewrites socket
    addresses for the local runner (see :mod:`mesh.envoy.ports`). ``jwks_resolver`` maps a
    RequestAuthentication ``jwksUri`` to the JWKS JSON the runner fetched (istiod's default,
    ``PILOT_JWT_ENABLE_REMOTE_JWKS=false``: the keys are inlined as ``local_jwks``); without
    it, or when it returns None, Envoy fetches them itself (``remote_jwks``). ``tracing``
    turns Envoy's tracer on in every HTTP connection manager (:mod:`mesh.envoy.tracing`; off
    by default).
    """

    port_map: PortMap | None = None
    access_log_path: str = "/dev/stdout"
    jwks_resolver: Callable[[str], str | None] | None = None
    tracing: TracingOptions | None = None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything one Envoy needs, as plain Envoy v3 dicts sorted by name."""

    pod: Pod
    node: Json
    listeners: tuple[Json, ...]
    routes: tuple[Json, ...]
    clusters: tuple[Json, ...]
    endpoints: tuple[Json, ...]
    secrets: tuple[Json, ...] = ()

    def route(self, name: str) -> Json | None:
        """The RouteConfiguration with this name."""
        return next((r for r in self.routes if r["name"] == name), None)

    def cluster(self, name: str) -> Json | None:
        """The Cluster with this name."""
        return next((c for c in self.clusters if c["name"] == name), None)

    def listener(self, name: str) -> Json | None:
        """The Listener with this name."""
        return next((x for x in self.listeners if x["name"] == name), None)

    def load_assignment(self, cluster: str) -> Json | None:
        """The ClusterLoadAssignment of an EDS cluster."""
        return next((e for e in self.endpoints if e["cluster_name"] == cluster), None)


class MeshEnvoyConfig(FrozenMap[str, ProxyConfig]):
    """Pod name -> ProxyConfig, for every pod that runs a sidecar or is a gateway."""

    __slots__ = ()


@dataclass(slots=True)
class _Outbound:
    clusters: list[Json]
    endpoints: list[Json]
    routes: list[Json]
    http_ports: list[int]
    tcp_listeners: dict[tuple[str, int], list[TcpChain]]
    """(bind address, port) -> chains: ``<VIP>_<port>`` and ``0.0.0.0_<port>`` TCP listeners."""
    sniffed: dict[tuple[str, int], str] = field(default_factory=dict)
    """(bind address, port) -> service host, for the listeners of :attr:`tcp_listeners` that are
    sniffed: an HTTP chain (RDS ``<host>:<port>``) next to the TCP chains."""
    drs: dict[str, DestinationRule | None] = field(default_factory=dict)


def _is_cidr(address: str) -> bool:
    _, _, bits = address.partition("/")
    return bool(bits) and bits not in {"32", "128"}


def _sniffed_at_address(service: MeshService) -> bool:
    """An unknown-protocol port of this service gets its own sniffed ``<VIP>_<port>`` listener
    (a VIP, or a headless Service's endpoint IPs), as istiod binds TCP and sniffed ports. A
    service with no address or only CIDRs keeps its HTTP path on ``0.0.0.0_<port>``."""
    return service.headless or any(not _is_cidr(a) for a in service.addresses)


class _Translator:
    def __init__(
        self, resources: Sequence[Resource], topology: Topology, options: TranslateOptions
    ) -> None:
        self.topology = topology
        self.options = options
        self.resources = resources
        self.registry = Registry(topology)
        self.index = MeshIndex(resources, topology, self.registry)
        self._mtls: dict[str, MtlsPolicy] = {}
        self._pas = [r for r in resources if isinstance(r, PeerAuthentication)]
        self._secrets = [r for r in resources if isinstance(r, Secret)]
        self._inbound_policies = tuple(
            r
            for r in resources
            if isinstance(r, AuthorizationPolicy | RequestAuthentication | EnvoyFilter)
        )
        """What the inbound security filters read (in apply order), filtered once: each pod's
        chains ask for them several times (every HTTP port, the passthrough chains)."""
        self._root = topology.config.root_namespace
        self.peer_modes = PeerModes(
            of_pod=self.peer_authentication,
            of_namespace=lambda ns: namespace_mtls_mode(ns, self._pas, self._root),
            auto_mtls=topology.config.enable_auto_mtls,
        )
        self.addressing = Addressing(options.port_map)
        self._inbound_ctx = InboundContext(
            topology=topology,
            registry=self.registry,
            addressing=self.addressing,
            index=self.index,
            policies=self._inbound_policies,
            port_map=options.port_map,
            jwks_resolver=options.jwks_resolver,
        )
        self._outbound: dict[tuple[Any, ...], _Outbound] = {}
        self._uses_source_labels = any(
            any(m.source_labels for r in vs.http for m in r.match)
            or any(m.source_labels for r in vs.tls for m in r.match)
            or any(m.source_labels for r in vs.tcp for m in r.match)
            for vs in self.index.virtual_services
        )

    # -- shared pieces ---------------------------------------------------------------------
    def peer_authentication(self, pod: Pod) -> MtlsPolicy:
        """The resolved PeerAuthentication of ``pod`` (computed once per translation)."""
        found = self._mtls.get(pod.name)
        if found is None:
            found = self._mtls[pod.name] = effective_mtls(pod, self._pas, self._root)
        return found

    def _identity(self, pod: Pod) -> LogIdentity:
        return LogIdentity(
            workload=pod.workload,
            namespace=pod.namespace,
            app=pod.labels.get("app", pod.workload),
            version=pod.labels.get("version", ""),
            principal=pod.identity,
        )

    def _log_path(self, pod: Pod) -> str:
        return self.options.access_log_path.format(pod=pod.name, namespace=pod.namespace)

    def _context(self, pod: Pod, gateway: str, port: int) -> RouteContext:
        return RouteContext(
            proxy_namespace=pod.namespace,
            proxy_labels=pod.labels,
            gateway=gateway,
            listener_port=port,
            resolve_host=self.registry.resolve_host,
            service=self.registry.service,
            destination_rule=lambda s: self.index.destination_rule(pod, s),
            istio_version=self.topology.config.istio_version,
        )

    def _outbound_part(self, pod: Pod, scope: ProxyScope) -> _Outbound:
        selected = self.index.selected_rules(pod)
        sidecar = scope.sidecar
        key = (
            pod.proxy,
            pod.namespace,
            None if sidecar is None else (sidecar.namespace, sidecar.name),
            selected,
            tuple(sorted(pod.labels.items())) if self._uses_source_labels else None,
            str(locality_of(pod.labels, pod.locality)),
            scope.outbound_policy,
            (pod.network, is_eastwest_gateway(pod)),
        )
        cached = self._outbound.get(key)
        if cached is None:
            cached = self._build_outbound(pod, scope)
            self._outbound[key] = cached
        return cached

    def _build_outbound(self, pod: Pod, scope: ProxyScope) -> _Outbound:
        drs = {s.hostname: self.index.destination_rule(pod, s) for s in scope.services}
        cset: ClusterSet = outbound_clusters(
            scope.services,
            drs=drs,
            topology=self.topology,
            registry=self.registry,
            entries=self.index.service_entries,
            addressing=self.addressing,
            client_locality=locality_of(pod.labels, pod.locality),
            peer_modes=self.peer_modes,
            client=pod,
        )
        allow_any = scope.outbound_policy is OutboundTrafficPolicyMode.ALLOW_ANY
        # services with a virtual host on a port's shared route config (HTTP or sniffed, as
        # istiod's IsHTTPOrSniffed), and the ports that have a 0.0.0.0_<port> HTTP listener
        by_port: dict[int, list[MeshService]] = {}
        wildcard_http: set[int] = set()
        sniffed: list[tuple[MeshService, int]] = []
        for service in scope.services:
            for p in service.ports:
                if p.protocol not in HTTP_LIKE:
                    continue
                by_port.setdefault(p.port, []).append(service)
                if p.protocol is Protocol.UNSUPPORTED and _sniffed_at_address(service):
                    sniffed.append((service, p.port))
                else:
                    wildcard_http.add(p.port)
        routes: list[Json] = []
        if pod.proxy is ProxyKind.SIDECAR:
            for port in sorted(wildcard_http):
                ctx = self._context(pod, "mesh", port)
                routes.append(
                    outbound_route_config(
                        port, by_port[port], scope.virtual_service, ctx, allow_any
                    )
                )
            for service, port in sniffed:
                ctx = self._context(pod, "mesh", port)
                routes.append(sniffed_route_config(service, port, scope.virtual_service, ctx))
        tcp_listeners, sniffed_at = self._tcp_listeners(pod, scope)
        return _Outbound(
            clusters=sorted(cset.clusters, key=_by_name),
            endpoints=sorted(cset.endpoints, key=lambda e: e["cluster_name"]),
            routes=sorted(with_upstream_alpn(routes, cset.clusters), key=_by_name),
            http_ports=sorted(wildcard_http),
            tcp_listeners=tcp_listeners,
            sniffed=sniffed_at,
            drs=drs,
        )

    def _tcp_listeners(
        self, pod: Pod, scope: ProxyScope
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
                sniffs = unknown and _sniffed_at_address(service)
                if (p.protocol in HTTP_LIKE and not unknown) or p.protocol is Protocol.UDP:
                    continue
                default = cluster_name(Direction.OUTBOUND, p.port, "", service.hostname)
                weighted = tuple(self._tcp_weights(pod, scope, service, p.port))
                binds: list[tuple[str, str]] = []
                if service.headless:
                    binds = [(pod.address, "") for pod in self.registry.endpoints(service)]
                elif service.addresses:
                    for address in service.addresses:
                        if not _is_cidr(address):
                            binds.append((address.partition("/")[0], ""))
                        else:
                            binds.append(("0.0.0.0", address))
                else:
                    binds = [("0.0.0.0", "")]
                tls = p.protocol in {Protocol.TLS, Protocol.HTTPS}
                by_sni = self._tls_routes(pod, scope, service, p.port) if tls else []
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
        self, pod: Pod, scope: ProxyScope, service: MeshService, port: int
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
            weighted = self._destinations(vs, rule.route, port)
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
        self, pod: Pod, scope: ProxyScope, service: MeshService, port: int
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
            return self._destinations(vs, rule.route, port)
        return []

    def _destinations(
        self, vs: VirtualService, route: Sequence[RouteDestination], port: int
    ) -> list[tuple[str, int]]:
        """(cluster, weight) of a TCP/TLS rule's destinations (one: weight 100)."""
        out = []
        for rd in route:
            host = self.registry.resolve_host(rd.destination.host, vs.namespace)
            target = self.registry.service(host)
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

    # -- per pod ---------------------------------------------------------------------------
    def proxy(self, pod: Pod) -> ProxyConfig:
        scope = self.index.scope(pod)
        outbound = self._outbound_part(pod, scope)
        me = self._identity(pod)
        log = self._log_path(pod)
        listeners: list[Json] = []
        clusters = special_clusters(pod.proxy, self.topology.config.connect_timeout_s)
        routes: list[Json] = []
        servers: list[Server] = []  # a gateway's servers: their credentials become SDS secrets
        if pod.proxy is ProxyKind.SIDECAR:
            allow_any = scope.outbound_policy is OutboundTrafficPolicyMode.ALLOW_ANY
            listeners.append(
                virtual_outbound(
                    self.addressing.capture_listener(pod, OUTBOUND_CAPTURE_PORT),
                    allow_any,
                    TcpLog(log, me, Reporter.SOURCE),
                )
            )
            tcp_log = TcpLog(log, me, Reporter.SOURCE)
            fallthrough = PASSTHROUGH_CLUSTER if allow_any else BLACKHOLE_CLUSTER
            for port in outbound.http_ports:
                name = listener_name("0.0.0.0", port)
                spec = HttpListenerSpec(
                    stat_prefix=stat_prefix(Direction.OUTBOUND, name),
                    route_config=route_config_name(port),
                    filters=outbound_http_filters(me),
                    me=me,
                    access_log_path=log,
                )
                where = self.addressing.outbound_listener(pod, port)
                # istiod matches a sidecar's HTTP wildcard on http/1.1/h2c too: other bytes take
                # the TCP chains of VIP-less services on the port, else PassthroughFilterChain
                merged = outbound.tcp_listeners.get(("0.0.0.0", port), [])
                listeners.append(
                    sniffed_listener(where, merged, tcp_log, fallthrough, spec=spec, name=name)
                )
            wildcard_http = set(outbound.http_ports)
            taken = set(wildcard_http)  # local runner: ports a listener already binds
            for (address, port), chains in outbound.tcp_listeners.items():
                if address == pod.address:
                    continue  # a headless Service's own endpoint: the app reaches itself directly
                if address == "0.0.0.0" and port in wildcard_http:
                    continue  # merged into the port's HTTP wildcard above
                host = outbound.sniffed.get((address, port))
                if host is not None:
                    name = listener_name(address, port)
                    spec = HttpListenerSpec(
                        stat_prefix=stat_prefix(Direction.OUTBOUND, name),
                        route_config=sniffed_route_config_name(host, port),
                        filters=outbound_http_filters(me),
                        me=me,
                        access_log_path=log,
                    )
                    where = self.addressing.sniffed_listener(pod, address, port, port not in taken)
                    taken.add(port)
                    listeners.append(
                        sniffed_listener(where, chains, tcp_log, fallthrough, spec=spec, name=name)
                    )
                    continue
                where = (
                    self.addressing.outbound_listener(pod, port)
                    if address == "0.0.0.0"
                    else self.addressing.vip_listener(address, port)
                )
                listeners.append(tcp_listener(where, chains, tcp_log, fallthrough))
            inbound_listeners, inbound_clusters, inbound_routes = inbound_part(
                self._inbound_ctx, pod, self.peer_authentication(pod), me, log
            )
            listeners.extend(inbound_listeners)
            clusters.extend(inbound_clusters)
            routes.extend(inbound_routes)
        elif pod.proxy is ProxyKind.ROUTER:
            for gport in gateway_ports(pod, self.index, self.topology):
                servers.extend(server for _, server in gport.servers)
                if gport.tls:
                    built = self._gateway_tls_port(pod, gport, scope, outbound, me, log)
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
                where = self.addressing.outbound_listener(pod, gport.target_port)
                listeners.append(gateway_listener(gport.target_port, where, spec))
                routes.append(
                    gateway_route_config(
                        gport, self.index, lambda gw, port: self._context(pod, gw, port)
                    )
                )
            # the gateway's HCMs have istio.alpn too (istiod: every HCM but a sidecar's inbound)
            routes = with_upstream_alpn(routes, [*outbound.clusters, *clusters])
        if self.options.tracing is not None:
            listeners, clusters = self._traced(pod, listeners, clusters, self.options.tracing)
        return ProxyConfig(
            pod=pod,
            node={"cluster": f"{pod.workload}.{pod.namespace}", "id": pod.proxy_id},
            listeners=tuple(sorted(listeners, key=_by_name)),
            routes=_merged(outbound.routes, routes),
            clusters=_merged(outbound.clusters, clusters),
            endpoints=tuple(outbound.endpoints),
            secrets=tuple(gateway_credential_secrets(servers, pod.namespace, self._secrets)),
        )

    def _gateway_tls_port(  # noqa: PLR0917
        self,
        pod: Pod,
        gport: GatewayPort,
        scope: ProxyScope,
        outbound: _Outbound,
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
            return self.index.destination_rule(pod, s)

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
                routes.append(
                    gateway_route_config(
                        one, self.index, lambda g, p: self._context(pod, g, p), name=name
                    )
                )
                terminating.append((server, gateway_hcm(spec), gateway_tls_context(server.tls)))
            elif mode == "PASSTHROUGH":
                tcp.extend(
                    passthrough_chains(
                        gw, server, self.index, self.registry.resolve_host,
                        self.registry.service, taken=taken, pod_labels=pod.labels,
                        pod_namespace=pod.namespace,
                    )
                )  # fmt: skip
            elif mode == "AUTO_PASSTHROUGH":
                tcp.extend(auto_passthrough_chains(server, scope.services, rule_of))
                clusters.extend(
                    sni_dnat_clusters(
                        server, scope.services, rule_of,
                        lambda n: next((c for c in outbound.clusters if c["name"] == n), None),
                    )
                )  # fmt: skip
        tcp_log = TcpLog(log, me, Reporter.SOURCE)
        listener = tls_port_listener(
            gateway_listener_base(
                gport.target_port, self.addressing.outbound_listener(pod, gport.target_port)
            ),
            terminating,
            tcp,
            lambda c: tcp_proxy(c.cluster, c.cluster, c.weighted, tcp_log),
        )
        return TlsPortBuild(listener, tuple(routes), tuple(clusters))

    def _traced(
        self, pod: Pod, listeners: list[Json], clusters: list[Json], options: TracingOptions
    ) -> tuple[list[Json], list[Json]]:
        """Listeners whose HCMs trace, and the collector's cluster when it is a local one."""
        if options.collector_address is not None:
            timeout = self.topology.config.connect_timeout_s
            clusters = [*clusters, collector_cluster(options, timeout)]
        return with_tracing(listeners, pod, options), clusters


def _by_name(item: Json) -> str:
    name: str = item["name"]
    return name


def _merged(shared: list[Json], own: list[Json]) -> tuple[Json, ...]:
    """The pre-sorted shared part with this pod's few own items inserted, sorted by name."""
    out: list[Json] = []
    start = 0
    for item in sorted(own, key=_by_name):
        cut = bisect.bisect_left(shared, item["name"], lo=start, key=_by_name)
        out.extend(shared[start:cut])
        out.append(item)
        start = cut
    out.extend(shared[start:])
    return tuple(out)


def _proxied(topology: Topology) -> list[Pod]:
    return [p for p in topology.pods if p.proxy is not ProxyKind.NONE]


def translate(
    resources: Sequence[Resource], topology: Topology, options: TranslateOptions | None = None
) -> MeshEnvoyConfig:
    """Envoy config for every sidecar and gateway pod of ``topology``."""
    t = _Translator(resources, topology, options or TranslateOptions())
    return MeshEnvoyConfig({pod.name: t.proxy(pod) for pod in _proxied(topology)})


def translate_proxy(
    resources: Sequence[Resource],
    topology: Topology,
    pod_name: str,
    options: TranslateOptions | None = None,
) -> ProxyConfig:
    """Envoy config for one pod (what istiod pushes to one proxy)."""
    pod = topology.pod(pod_name)
    if pod is None or pod.proxy is ProxyKind.NONE:
        raise KeyError(f"no proxy in pod {pod_name!r}")
    return _Translator(resources, topology, options or TranslateOptions()).proxy(pod)
