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
from dataclasses import dataclass, field
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
from mesh.envoy.gateway_listeners import GatewayInputs, gateway_part
from mesh.envoy.gateway_tls import (
    gateway_credential_secrets,
)
from mesh.envoy.inbound import HTTP_LIKE, InboundContext, inbound_part
from mesh.envoy.listeners import (
    TcpChain,
    TcpLog,
)
from mesh.envoy.multicluster import is_eastwest_gateway
from mesh.envoy.outbound_listeners import (
    sidecar_outbound_listeners,
    sniffed_at_address,
    tcp_listeners,
)
from mesh.envoy.ports import Addressing, PortMap
from mesh.envoy.registry import Registry
from mesh.envoy.route_config import (
    outbound_route_config,
    sniffed_route_config,
)
from mesh.envoy.routes import RouteContext
from mesh.envoy.scope import MeshIndex, ProxyScope
from mesh.envoy.tracing import TracingOptions, collector_cluster, with_tracing
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
)
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
                if p.protocol is Protocol.UNSUPPORTED and sniffed_at_address(service):
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
        tcp, sniffed_at = tcp_listeners(self.registry, pod, scope)
        return _Outbound(
            clusters=sorted(cset.clusters, key=_by_name),
            endpoints=sorted(cset.endpoints, key=lambda e: e["cluster_name"]),
            routes=sorted(with_upstream_alpn(routes, cset.clusters), key=_by_name),
            http_ports=sorted(wildcard_http),
            tcp_listeners=tcp,
            sniffed=sniffed_at,
            drs=drs,
        )

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
            listeners.extend(
                sidecar_outbound_listeners(
                    self.addressing,
                    pod,
                    allow_any=scope.outbound_policy is OutboundTrafficPolicyMode.ALLOW_ANY,
                    log=TcpLog(log, me, Reporter.SOURCE),
                    http_ports=outbound.http_ports,
                    tcp=outbound.tcp_listeners,
                    sniffed=outbound.sniffed,
                )
            )
            inbound_listeners, inbound_clusters, inbound_routes = inbound_part(
                self._inbound_ctx, pod, self.peer_authentication(pod), me, log
            )
            listeners.extend(inbound_listeners)
            clusters.extend(inbound_clusters)
            routes.extend(inbound_routes)
        elif pod.proxy is ProxyKind.ROUTER:
            gateway = gateway_part(
                pod,
                GatewayInputs(
                    index=self.index,
                    registry=self.registry,
                    addressing=self.addressing,
                    topology=self.topology,
                    context=lambda gw, port: self._context(pod, gw, port),
                ),
                scope=scope,
                outbound_clusters=outbound.clusters,
                me=me,
                log=log,
            )
            listeners.extend(gateway.listeners)
            routes.extend(gateway.routes)
            clusters.extend(gateway.clusters)
            servers.extend(gateway.servers)
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
