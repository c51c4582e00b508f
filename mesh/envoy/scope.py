"""What one proxy sees: istiod's push context and sidecar scope, computed from the resources.

For every proxy istiod decides which services are visible (``exportTo`` and the ``Sidecar``
resource's egress hosts), which VirtualService owns each host (the first one in istiod's order;
sidecars never merge two VSs for the same host), which DestinationRule applies (proxy namespace,
then the service's namespace, then the root namespace; same-namespace DRs merged) and which
outbound traffic policy holds. :class:`MeshIndex` is built once per translation and answers
these questions for every proxy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mesh.envoy.registry import Registry
from mesh.model import (
    DestinationRule,
    Gateway,
    OutboundTrafficPolicyMode,
    Resource,
    ServiceEntry,
    Sidecar,
    VirtualService,
)
from mesh.topology import MeshService, Pod, Topology

__all__ = ["MeshIndex", "ProxyScope", "exported_to", "host_matches"]

MESH_GATEWAY = "mesh"


def exported_to(export_to: Sequence[str], owner_namespace: str, namespace: str) -> bool:
    """Istio ``exportTo``: empty or ``*`` = everywhere, ``.`` = own namespace, else listed names."""
    if not export_to:
        return True
    for entry in export_to:
        if entry in ("*", namespace):
            return True
        if entry == "." and owner_namespace == namespace:
            return True
    return False


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*`` or a ``*.suffix`` wildcard."""
    if pattern in (host, "*"):
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


@dataclass(frozen=True, slots=True)
class ProxyScope:
    """The resources one proxy's configuration is built from."""

    pod: Pod
    services: tuple[MeshService, ...]
    virtual_services: tuple[tuple[str, VirtualService], ...]
    outbound_policy: OutboundTrafficPolicyMode
    sidecar: Sidecar | None

    def virtual_service(self, hostname: str) -> VirtualService | None:
        """The VirtualService that owns ``hostname`` for this proxy."""
        for host, vs in self.virtual_services:
            if host == hostname:
                return vs
        return None


class MeshIndex:
    """Indexes over all resources, built once per ``translate`` call."""

    def __init__(
        self, resources: Sequence[Resource], topology: Topology, registry: Registry | None = None
    ) -> None:
        self.topology = topology
        self.registry = registry or Registry(topology)
        self.root_namespace = topology.config.root_namespace
        self.virtual_services = tuple(r for r in resources if isinstance(r, VirtualService))
        self.destination_rules = tuple(r for r in resources if isinstance(r, DestinationRule))
        self.selector_rules = tuple(
            dr for dr in self.destination_rules if dr.workload_selector is not None
        )
        self.gateways = tuple(r for r in resources if isinstance(r, Gateway))
        self.sidecars = tuple(r for r in resources if isinstance(r, Sidecar))
        self.service_entries = tuple(r for r in resources if isinstance(r, ServiceEntry))
        self._dr_hosts: dict[str, list[tuple[str, DestinationRule]]] = {}
        for dr in self.destination_rules:
            host = self.registry.resolve_host(dr.host, dr.namespace)
            self._dr_hosts.setdefault(host, []).append((host, dr))
        self._dr_wild = [(h, dr) for h, lst in self._dr_hosts.items() if "*" in h for _, dr in lst]
        self._services_cache: dict[tuple[str, str], tuple[MeshService, ...]] = {}
        self._vs_cache: dict[tuple[str, str], tuple[tuple[str, VirtualService], ...]] = {}
        self._dr_cache: dict[tuple[str, str, tuple[str, ...]], DestinationRule | None] = {}

    # -- Sidecar resource -------------------------------------------------------------------
    def sidecar_for(self, pod: Pod) -> Sidecar | None:
        """The Sidecar that applies: selector match in the pod's namespace, then the namespace
        default, then the root namespace default."""
        own = [s for s in self.sidecars if s.namespace == pod.namespace]
        for s in own:
            if s.workload_selector is not None and s.workload_selector.matches(pod.labels):
                return s
        for s in own:
            if s.workload_selector is None:
                return s
        for s in self.sidecars:
            if s.namespace == self.root_namespace and s.workload_selector is None:
                return s
        return None

    def imports(self, sidecar: Sidecar | None, pod: Pod, service: MeshService) -> bool:
        """Whether a Sidecar's ``egress.hosts`` (``ns/dnsName``) import ``service``."""
        if sidecar is None or not sidecar.egress:
            return True
        for egress in sidecar.egress:
            for entry in egress.hosts:
                ns, _, dns = entry.partition("/")
                if ns == "~":
                    continue
                if ns not in {"*", service.namespace} and not (
                    ns == "." and service.namespace == pod.namespace
                ):
                    continue
                # istiod matches the dnsName exactly or as a wildcard, never as a short name:
                # "./product" imports no product.shop.svc.cluster.local (hostClassification)
                if dns in {"*", service.hostname} or host_matches(dns, service.hostname):
                    return True
        return False

    # -- visibility -------------------------------------------------------------------------
    def scope(self, pod: Pod) -> ProxyScope:
        """Compute what ``pod``'s proxy sees."""
        sidecar = self.sidecar_for(pod)
        key = (pod.namespace, "" if sidecar is None else f"{sidecar.namespace}/{sidecar.name}")
        services = self._services_cache.get(key)
        if services is None:
            services = tuple(
                s
                for s in self.topology.services
                if exported_to(s.export_to, s.namespace, pod.namespace)
                and self.imports(sidecar, pod, s)
            )
            self._services_cache[key] = services
        mode = OutboundTrafficPolicyMode(self.topology.config.outbound_traffic_policy)
        if sidecar is not None and sidecar.outbound_traffic_policy is not None:
            mode = sidecar.outbound_traffic_policy.mode
        vss = self._vs_cache.get(key)
        if vss is None:
            vss = self._mesh_virtual_services(pod.namespace, {s.hostname for s in services})
            self._vs_cache[key] = vss
        return ProxyScope(pod, services, vss, mode, sidecar)

    def _mesh_virtual_services(
        self, namespace: str, visible: set[str]
    ) -> tuple[tuple[str, VirtualService], ...]:
        """(host, VS) pairs for sidecars in ``namespace``: private VSs first, then VSs exported
        to the namespace, then public ones; for each host the first VS wins."""

        def bucket(vs: VirtualService) -> int:
            if vs.namespace == namespace and list(vs.export_to) == ["."]:
                return 0
            if namespace in vs.export_to:
                return 1
            return 2

        candidates = [
            vs
            for vs in self.virtual_services
            if self.binds_to(vs, MESH_GATEWAY)
            and exported_to(vs.export_to, vs.namespace, namespace)
        ]
        candidates.sort(key=bucket)
        owners: dict[str, VirtualService] = {}
        wildcard: list[tuple[str, VirtualService]] = []
        for vs in candidates:
            for host in vs.hosts:
                fqdn = self.registry.resolve_host(host, vs.namespace)
                if "*" in fqdn:
                    wildcard.append((fqdn, vs))
                elif fqdn in visible:
                    owners.setdefault(fqdn, vs)
        # A wildcard host binds only services no exact host claimed, most specific pattern first.
        wildcard.sort(key=lambda item: -len(item[0]))
        for host in sorted(visible):
            if host in owners:
                continue
            for pattern, vs in wildcard:
                if host_matches(pattern, host):
                    owners[host] = vs
                    break
        return tuple(sorted(owners.items()))

    @staticmethod
    def binds_to(vs: VirtualService, gateway: str) -> bool:
        """Whether ``vs`` applies to ``gateway`` (``mesh`` = sidecars) at the top level or in a
        match block's ``gateways``."""
        if gateway == MESH_GATEWAY and not vs.gateways:
            return True
        if gateway in vs.gateways:
            return True
        return any(gateway in m.gateways for r in vs.http for m in r.match)

    # -- DestinationRule lookup -----------------------------------------------------------
    def destination_rule(self, pod: Pod, service: MeshService) -> DestinationRule | None:
        """The DR a client ``pod`` uses for ``service`` (istiod's three-tier lookup, merged)."""
        key = (pod.namespace, service.hostname, self.selected_rules(pod))
        if key in self._dr_cache:
            return self._dr_cache[key]
        found = self._lookup_dr(pod, service)
        self._dr_cache[key] = found
        return found

    def selected_rules(self, pod: Pod) -> tuple[str, ...]:
        """Names of the workload-selector DRs in the pod's namespace that select it."""
        return tuple(
            f"{dr.namespace}/{dr.name}"
            for dr in self.selector_rules
            if dr.namespace == pod.namespace
            and dr.workload_selector is not None
            and dr.workload_selector.matches(pod.labels)
        )

    def _lookup_dr(self, pod: Pod, service: MeshService) -> DestinationRule | None:
        exact = [dr for _, dr in self._dr_hosts.get(service.hostname, ())]
        wild = sorted(
            (item for item in self._dr_wild if host_matches(item[0], service.hostname)),
            key=lambda item: -len(item[0]),
        )

        def usable(dr: DestinationRule) -> bool:
            if dr.workload_selector is not None and not (
                dr.namespace == pod.namespace and dr.workload_selector.matches(pod.labels)
            ):
                return False
            return exported_to(dr.export_to, dr.namespace, pod.namespace)

        for tier_ns in (pod.namespace, service.namespace, self.root_namespace):
            tier = [dr for dr in exact if dr.namespace == tier_ns and usable(dr)]
            if not tier:
                tier = [dr for _, dr in wild if dr.namespace == tier_ns and usable(dr)][:1]
            if tier:
                return _merge(tier)
        return None


def _merge(rules: list[DestinationRule]) -> DestinationRule:
    """Same-namespace DRs for one host: subsets unioned (first name wins), first traffic policy.

    A DR with a workload selector takes precedence over the namespace-wide ones.
    """
    rules = sorted(rules, key=lambda dr: dr.workload_selector is None)
    first = rules[0]
    if len(rules) == 1:
        return first
    subsets = list(first.subsets)
    names = {s.name for s in subsets}
    policy = first.traffic_policy
    for dr in rules[1:]:
        for s in dr.subsets:
            if s.name not in names:
                subsets.append(s)
                names.add(s.name)
        if policy is None:
            policy = dr.traffic_policy
    return dataclasses.replace(first, subsets=tuple(subsets), traffic_policy=policy)
