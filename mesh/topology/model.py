"""The registry's values: services, workloads, pods and the mesh-wide settings, with the lookups
istiod's service registry offers (:class:`Topology`)."""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mesh.model import Deployment, FrozenMap
from mesh.model.gateway import ServiceEntryLocation, ServiceEntryResolution
from mesh.model.kubernetes import Container
from mesh.model.multicluster import DEFAULT_CLUSTER, EASTWEST_GATEWAY, MultiCluster
from mesh.topology.protocol import Protocol

__all__ = [
    "MeshConfig",
    "MeshService",
    "Pod",
    "ProxyKind",
    "ServicePortInfo",
    "Topology",
    "Workload",
]


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Mesh-wide settings (istio's MeshConfig) and version-sensitive defaults (reference §19)."""

    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    domain_suffix: str = "svc.cluster.local"
    outbound_traffic_policy: str = "ALLOW_ANY"
    enable_auto_mtls: bool = True
    istio_version: str = "1.28"
    connect_timeout_s: float = 10.0


class ProxyKind(StrEnum):
    """What kind of Envoy runs in a pod."""

    NONE = "none"
    SIDECAR = "sidecar"
    ROUTER = "router"


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """One service port with the protocol Istio gives it and the pod port it targets."""

    name: str
    port: int
    target_port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class MeshService:
    """A host in the registry: a Kubernetes Service or a ServiceEntry host."""

    name: str
    namespace: str
    hostname: str
    ports: tuple[ServicePortInfo, ...]
    selector: FrozenMap[str, str] = field(default_factory=FrozenMap)
    from_service_entry: bool = False
    location: ServiceEntryLocation = ServiceEntryLocation.MESH_INTERNAL
    resolution: ServiceEntryResolution = ServiceEntryResolution.STATIC
    addresses: tuple[str, ...] = ()
    """The service's VIPs: a Kubernetes Service's ClusterIP, a ServiceEntry's ``addresses``
    (IPs or CIDRs). Empty for a headless Service and a ServiceEntry without addresses."""
    export_to: tuple[str, ...] = ()
    headless: bool = False
    """A Kubernetes Service with ``clusterIP: None``: clients dial the pod IPs themselves."""

    @property
    def vip(self) -> str:
        """The first VIP (what istiod's ``GetAddressForProxy`` returns), or ""."""
        return self.addresses[0] if self.addresses else ""

    def port(self, number: int) -> ServicePortInfo | None:
        """The port with this service port number."""
        return next((p for p in self.ports if p.port == number), None)


@dataclass(frozen=True, slots=True)
class Pod:
    """One replica of a workload."""

    name: str
    namespace: str
    workload: str
    labels: FrozenMap[str, str]
    service_account: str
    address: str
    proxy: ProxyKind
    container_ports: tuple[int, ...] = ()
    locality: str = ""
    trust_domain: str = "cluster.local"
    cluster: str = DEFAULT_CLUSTER
    """istiod's cluster ID of the cluster the pod runs in (multi-cluster: docs/multicluster.md)."""
    network: str = ""
    """The pod's ``topology.istio.io/network`` ("": the one network of a single cluster)."""

    @property
    def identity(self) -> str:
        """The SPIFFE identity in the pod's certificate: spiffe://<td>/ns/<ns>/sa/<sa>."""
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def principal(self) -> str:
        """The identity as AuthorizationPolicy ``principals`` write it (without spiffe://)."""
        return self.identity.removeprefix("spiffe://")

    @property
    def proxy_id(self) -> str:
        """Envoy node id as istiod names it: ``sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local``."""
        kind = "router" if self.proxy is ProxyKind.ROUTER else "sidecar"
        return (
            f"{kind}~{self.address}~{self.name}.{self.namespace}~{self.namespace}.svc.cluster.local"
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment: its pod template labels, identity, container and replica count."""

    name: str
    namespace: str
    labels: FrozenMap[str, str]
    service_account: str
    replicas: int
    containers: tuple[Container, ...]
    proxy: ProxyKind
    deployment: Deployment


@dataclass(frozen=True)
class Topology:
    """Services, workloads and pods, with the lookups istiod's registry offers."""

    config: MeshConfig
    services: tuple[MeshService, ...]
    workloads: tuple[Workload, ...]
    pods: tuple[Pod, ...]
    namespaces: tuple[str, ...]
    multicluster: MultiCluster | None = None
    """The clusters and networks, for a multi-cluster mesh (None: one cluster)."""

    # -- indexes, built once on first use (the registry is immutable) -------------------------
    @functools.cached_property
    def _services_by_host(self) -> dict[str, MeshService]:
        return {s.hostname: s for s in self.services}

    @functools.cached_property
    def _pods_by_label(self) -> dict[tuple[str, str], list[Pod]]:
        index: dict[tuple[str, str], list[Pod]] = defaultdict(list)
        for p in self.pods:
            for item in p.labels.items():
                index[item].append(p)
        return index

    @functools.cached_property
    def _pods_by_workload(self) -> dict[tuple[str, str], tuple[Pod, ...]]:
        index: dict[tuple[str, str], list[Pod]] = defaultdict(list)
        for p in self.pods:
            index[(p.namespace, p.workload)].append(p)
        return {k: tuple(v) for k, v in index.items()}

    @functools.cached_property
    def _services_by_namespace(self) -> dict[str, list[MeshService]]:
        index: dict[str, list[MeshService]] = defaultdict(list)
        for s in self.services:
            if not s.from_service_entry and s.selector:
                index[s.namespace].append(s)
        return index

    # -- lookups ----------------------------------------------------------------------------
    def service(self, hostname: str) -> MeshService | None:
        """The service with this FQDN host name."""
        return self._services_by_host.get(hostname)

    def resolve_host(self, host: str, namespace: str) -> str:
        """A host as written in a resource -> the registry host (istiod's
        ``ResolveShortnameToFQDN``).

        Only a short name, one without a dot, is namespace-local: ``product`` in namespace
        ``shop`` -> ``product.shop.svc.cluster.local``. Any host with a dot is taken literally,
        so ``product.shop`` or ``product.shop.svc`` is a host of its own (Kubernetes DNS search
        paths play no part in Istio's host matching; such a host matches no service unless a
        ServiceEntry declares it). ``*``, wildcards and IP addresses are returned unchanged.
        """
        if host == "*" or "." in host or _is_ip(host):
            return host
        return f"{host}.{namespace}.{self.config.domain_suffix}"

    def workload(self, name: str, namespace: str | None = None) -> Workload | None:
        """A workload by Deployment name."""
        return next(
            (w for w in self.workloads if w.name == name and namespace in (None, w.namespace)), None
        )

    def pods_of(self, workload: Workload) -> tuple[Pod, ...]:
        """The pods of a workload."""
        return self._pods_by_workload.get((workload.namespace, workload.name), ())

    def select_pods(self, namespace: str | None, labels: Mapping[str, str]) -> tuple[Pod, ...]:
        """Pods (in ``namespace``, or anywhere for ``None``) whose labels contain ``labels``."""
        if labels:
            # start from the rarest label's pods instead of scanning every pod
            lists = [self._pods_by_label.get(item, []) for item in labels.items()]
            candidates: Sequence[Pod] = min(lists, key=len)
        else:
            candidates = self.pods
        return tuple(
            p
            for p in candidates
            if (namespace is None or p.namespace == namespace)
            and all(p.labels.get(k) == v for k, v in labels.items())
        )

    def endpoints(
        self, service: MeshService, subset_labels: Mapping[str, str] | None = None
    ) -> tuple[Pod, ...]:
        """The pods behind a Kubernetes service, optionally narrowed to a subset's labels.

        As istiod builds a subset's endpoints: the service's own endpoints (the pods its
        selector picks), kept when their labels contain the subset's. A subset can only narrow:
        a subset label that contradicts the selector (``app: other`` under ``app: product``)
        leaves no endpoint, it never reaches another app's pods.
        """
        if service.from_service_entry or not service.selector:
            return ()
        pods = self.select_pods(service.namespace, service.selector)
        if not subset_labels:
            return pods
        return tuple(p for p in pods if all(p.labels.get(k) == v for k, v in subset_labels.items()))

    def services_of(self, pod: Pod) -> tuple[MeshService, ...]:
        """The Kubernetes services whose selector selects this pod."""
        return tuple(
            s
            for s in self._services_by_namespace.get(pod.namespace, ())
            if all(pod.labels.get(k) == v for k, v in s.selector.items())
        )

    @functools.cached_property
    def network_gateways(self) -> dict[str, tuple[Pod, ...]]:
        """network -> its east-west gateway pods (empty unless the mesh spans networks)."""
        out: dict[str, list[Pod]] = defaultdict(list)
        if self.multicluster is not None and self.multicluster.multi_network:
            for p in self.pods:
                if p.workload == EASTWEST_GATEWAY and p.namespace == "istio-system":
                    out[p.network].append(p)
        return {k: tuple(v) for k, v in out.items()}

    def pod(self, name: str) -> Pod | None:
        """A pod by name."""
        return next((p for p in self.pods if p.name == name), None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
