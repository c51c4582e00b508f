"""The service registry and workloads the mesh sees, derived from Kubernetes manifests.

What istiod builds from the Kubernetes API: services (with FQDN host names and the protocol of each
port), workloads and their pods (labels, service account, SPIFFE identity, address), and which
pods back which service port. Every runner starts from this: ``sim`` creates the pods it
describes, ``local`` launches one process per pod, the translator emits endpoints for them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mesh.model import (
    Deployment,
    FrozenMap,
    Namespace,
    ObjectMeta,
    Resource,
    Service,
    ServiceAccount,
    ServiceEntry,
)
from mesh.model.gateway import ServiceEntryLocation, ServiceEntryResolution
from mesh.model.kubernetes import (
    Container,
    ContainerPort,
    DeploymentSpec,
    KubeServicePort,
    LabelSelector,
    PodSpec,
    PodTemplateSpec,
    ServiceSpec,
    TemplateMeta,
)

__all__ = [
    "INGRESS_GATEWAY",
    "SERVICE_CIDR",
    "MeshConfig",
    "MeshService",
    "Pod",
    "Protocol",
    "ProxyKind",
    "ServicePortInfo",
    "Topology",
    "Workload",
    "build_topology",
    "istio_system_resources",
    "port_protocol",
    "service_vips",
]


class Protocol(StrEnum):
    """The protocol Istio assigns a port (by name prefix or appProtocol); UNSUPPORTED = sniffed."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"
    MONGO = "Mongo"
    MYSQL = "MySQL"
    REDIS = "Redis"
    UNSUPPORTED = "UNSUPPORTED"

    @property
    def is_http(self) -> bool:
        """Whether Envoy handles it with the HTTP connection manager."""
        return self in {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB}


_PREFIXES = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC_WEB,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "tcp": Protocol.TCP,
    "udp": Protocol.UDP,
    "mongo": Protocol.MONGO,
    "mysql": Protocol.MYSQL,
    "redis": Protocol.REDIS,
}
_APP_PROTOCOLS = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}


def port_protocol(
    name: str, app_protocol: str = "", transport: str = "TCP", port: int = 0
) -> Protocol:
    """Istio's port -> protocol rule (``pkg/config/kube/conversion.go``).

    UDP stays UDP; ``appProtocol`` wins over the name; otherwise the name's prefix before the
    first ``-``; unknown names on 25/53/3306/27017 are TCP; everything else is sniffed.
    """
    if transport.upper() == "UDP":
        return Protocol.UDP
    for candidate in (app_protocol,):
        if candidate:
            lowered = candidate.lower()
            if lowered in _APP_PROTOCOLS:
                return _APP_PROTOCOLS[lowered]
            if lowered in _PREFIXES:
                return _PREFIXES[lowered]
    lowered = name.lower()
    if lowered in _PREFIXES:
        return _PREFIXES[lowered]
    if lowered.startswith("grpc-web"):
        return Protocol.GRPC_WEB
    prefix = lowered.split("-", 1)[0]
    if prefix in _PREFIXES:
        return _PREFIXES[prefix]
    if port in {25, 53, 3306, 27017}:
        return Protocol.TCP
    return Protocol.UNSUPPORTED


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
        """A host as written in a resource -> the registry FQDN (short names are namespace-local).

        ``product`` in namespace ``shop`` -> ``product.shop.svc.cluster.local``; ``product.shop`` ->
        ``product.shop.svc.cluster.local``; FQDNs and wildcards are returned unchanged.
        """
        if "*" in host or host.endswith("." + self.config.domain_suffix):
            return host
        if host in self._services_by_host:
            return host
        parts = host.split(".")
        if len(parts) == 1:
            return f"{host}.{namespace}.{self.config.domain_suffix}"
        if len(parts) == 2 and parts[1] in self.namespaces:
            return f"{host}.{self.config.domain_suffix}"
        if host.endswith(".svc") and len(parts) == 3:
            return f"{host}.{self.config.domain_suffix.removeprefix('svc.')}"
        return host

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
        """The pods behind a Kubernetes service, optionally narrowed to a subset's labels."""
        if service.from_service_entry or not service.selector:
            return ()
        return self.select_pods(service.namespace, {**service.selector, **(subset_labels or {})})

    def services_of(self, pod: Pod) -> tuple[MeshService, ...]:
        """The Kubernetes services whose selector selects this pod."""
        return tuple(
            s
            for s in self._services_by_namespace.get(pod.namespace, ())
            if all(pod.labels.get(k) == v for k, v in s.selector.items())
        )

    def pod(self, name: str) -> Pod | None:
        """A pod by name."""
        return next((p for p in self.pods if p.name == name), None)


INGRESS_GATEWAY = "istio-ingressgateway"


def istio_system_resources() -> tuple[Resource, ...]:
    """What ``istioctl install`` (default profile) adds that lessons rely on: the ingress gateway.

    Its pods carry ``istio: ingressgateway`` (what Gateway selectors name) and its Service exposes
    80 (http2) and 443 (https) to container ports 8080 and 8443, as in Istio's default profile.
    """
    ns = "istio-system"
    labels = FrozenMap({"app": INGRESS_GATEWAY, "istio": "ingressgateway"})
    return (
        Namespace(metadata=ObjectMeta(name=ns)),
        ServiceAccount(
            metadata=ObjectMeta(name=f"{INGRESS_GATEWAY}-service-account", namespace=ns)
        ),
        Service(
            metadata=ObjectMeta(name=INGRESS_GATEWAY, namespace=ns, labels=labels),
            spec=ServiceSpec(
                selector=labels,
                type="LoadBalancer",
                ports=(
                    KubeServicePort(name="http2", port=80, target_port=8080),
                    KubeServicePort(name="https", port=443, target_port=8443),
                ),
            ),
        ),
        Deployment(
            metadata=ObjectMeta(name=INGRESS_GATEWAY, namespace=ns, labels=labels),
            spec=DeploymentSpec(
                replicas=1,
                selector=LabelSelector(match_labels=labels),
                template=PodTemplateSpec(
                    metadata=TemplateMeta(
                        labels=labels, annotations=FrozenMap({"meshplay.dev/proxy": "router"})
                    ),
                    spec=PodSpec(
                        service_account_name=f"{INGRESS_GATEWAY}-service-account",
                        containers=(
                            Container(
                                name="istio-proxy",
                                image="docker.io/istio/proxyv2",
                                ports=(
                                    ContainerPort(container_port=8080),
                                    ContainerPort(container_port=8443),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )


def _injected(ns_labels: Mapping[str, str] | None, annotations: Mapping[str, str]) -> bool:
    explicit = annotations.get("sidecar.istio.io/inject")
    if explicit is not None:
        return explicit.lower() == "true"
    if ns_labels is None:  # namespace not declared: assume it is part of the mesh
        return True
    return ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels


def default_pod_address(index: int) -> str:
    """Synthetic pod IPs in 127.10.0.0/16: loopback, so nothing can ever leave the machine."""
    return str(ipaddress.IPv4Address("127.10.0.0") + index + 1)


def build_topology(
    resources: Iterable[Resource],
    config: MeshConfig | None = None,
    *,
    pod_address: Callable[[int], str] = default_pod_address,
    include_istio_system: bool = True,
) -> Topology:
    """Derive services, workloads and pods from the Kubernetes resources (and ServiceEntries).

    Pods are named ``<deployment>-<index>`` (deterministic, unlike Kubernetes), addressed by
    ``pod_address(n)`` in a stable order, and get a sidecar when their namespace has
    ``istio-injection: enabled`` (or the namespace is not declared) unless the pod template says
    ``sidecar.istio.io/inject: "false"``.
    """
    cfg = config or MeshConfig()
    items = list(resources)
    if include_istio_system and not any(
        isinstance(r, Deployment) and r.name == INGRESS_GATEWAY for r in items
    ):
        items = [*istio_system_resources(), *items]
    namespaces: dict[str, Mapping[str, str] | None] = {}
    for r in items:
        if isinstance(r, Namespace):
            namespaces[r.name] = r.metadata.labels
    for r in items:
        if r.NAMESPACED and r.namespace not in namespaces:
            namespaces[r.namespace] = None

    deployments = sorted(
        (r for r in items if isinstance(r, Deployment)), key=lambda d: (d.namespace, d.name)
    )
    workloads: list[Workload] = []
    pods: list[Pod] = []
    for d in deployments:
        tmpl = d.spec.template
        annotations = tmpl.metadata.annotations
        if annotations.get("meshplay.dev/proxy") == "router":
            proxy = ProxyKind.ROUTER
        elif _injected(namespaces.get(d.namespace), annotations):
            proxy = ProxyKind.SIDECAR
        else:
            proxy = ProxyKind.NONE
        sa = tmpl.spec.service_account_name or "default"
        w = Workload(
            name=d.name,
            namespace=d.namespace,
            labels=tmpl.metadata.labels,
            service_account=sa,
            replicas=d.spec.replicas,
            containers=tmpl.spec.containers,
            proxy=proxy,
            deployment=d,
        )
        workloads.append(w)
        ports = tuple(p.container_port for c in tmpl.spec.containers for p in c.ports)
        for i in range(d.spec.replicas):
            pods.append(
                Pod(
                    name=f"{d.name}-{i}",
                    namespace=d.namespace,
                    workload=d.name,
                    labels=tmpl.metadata.labels,
                    service_account=sa,
                    address=pod_address(len(pods)),
                    proxy=proxy,
                    container_ports=ports,
                    locality=tmpl.metadata.labels.get("topology.kubernetes.io/zone", ""),
                    trust_domain=cfg.trust_domain,
                )
            )

    workloads_by_label: dict[tuple[str, str, str], list[Workload]] = defaultdict(list)
    for w in workloads:
        for k, v in w.labels.items():
            workloads_by_label[(w.namespace, k, v)].append(w)
    services: list[MeshService] = []
    vips = service_vips(r for r in items if isinstance(r, Service))
    for r in items:
        if isinstance(r, Service):
            services.append(
                _kube_service(r, cfg, workloads_by_label, vips.get((r.namespace, r.name)))
            )
        elif isinstance(r, ServiceEntry):
            services.extend(_entry_services(r))
    services.sort(key=lambda s: s.hostname)
    return Topology(
        config=cfg,
        services=tuple(services),
        workloads=tuple(workloads),
        pods=tuple(pods),
        namespaces=tuple(sorted(namespaces)),
    )


EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
"""A Kubernetes Service's ``exportTo`` (comma-separated namespaces, ``.``, ``*``), as istiod reads it."""
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
"""Where :func:`service_vips` allocates ClusterIPs (kubeadm's default service CIDR)."""
_RESERVED_OFFSETS = 2
"""10.96.0.0 is the network, 10.96.0.1 the ``kubernetes`` API Service in a real cluster."""


def service_vips(services: Iterable[Service]) -> dict[tuple[str, str], str | None]:
    """(namespace, name) -> the Service's ClusterIP, or None for a headless Service.

    A manifest's ``spec.clusterIP`` is used as written (``None`` = headless). Every other Service
    gets an address in :data:`SERVICE_CIDR` derived from a SHA-256 of ``<namespace>/<name>``, so
    its VIP is the same on every run and does not move when unrelated Services come or go. When
    two Services hash to the same address (or onto a written clusterIP), the one later in
    (namespace, name) order takes the next free address, as an allocator probing upwards would.
    ``ExternalName`` Services have no VIP (they are DNS aliases) and are left out.
    """
    out: dict[tuple[str, str], str | None] = {}
    taken: set[int] = set()
    pending: list[tuple[str, str]] = []
    base = int(SERVICE_CIDR.network_address)
    for svc in services:
        key = (svc.namespace, svc.name)
        written = svc.spec.cluster_ip
        if svc.spec.type == "ExternalName":
            continue
        if written == "None":
            out[key] = None
        elif written:
            out[key] = written
            # an IPv6 (or malformed) ClusterIP cannot collide with the IPv4 allocation
            with contextlib.suppress(ValueError):
                taken.add(int(ipaddress.IPv4Address(written)) - base)
        else:
            pending.append(key)
    size = SERVICE_CIDR.num_addresses - _RESERVED_OFFSETS - 1  # no broadcast address either
    for key in sorted(pending):
        digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
        offset = int.from_bytes(digest[:4], "big") % size
        while offset + _RESERVED_OFFSETS in taken:
            offset = (offset + 1) % size
        taken.add(offset + _RESERVED_OFFSETS)
        out[key] = str(ipaddress.IPv4Address(base + offset + _RESERVED_OFFSETS))
    return out


def _kube_service(
    svc: Service,
    cfg: MeshConfig,
    workloads_by_label: Mapping[tuple[str, str, str], list[Workload]],
    vip: str | None,
) -> MeshService:
    selector = svc.spec.selector
    candidates = (
        min(
            (workloads_by_label.get((svc.namespace, k, v), []) for k, v in selector.items()),
            key=len,
        )
        if selector
        else []
    )
    selected = [w for w in candidates if all(w.labels.get(k) == v for k, v in selector.items())]
    ports = []
    for p in svc.spec.ports:
        target = p.target_port
        if isinstance(target, str):  # a named container port, resolved on the selected pods
            target = next(
                (
                    cp.container_port
                    for w in selected
                    for c in w.containers
                    for cp in c.ports
                    if cp.name == target
                ),
                p.port,
            )
        ports.append(
            ServicePortInfo(
                name=p.name,
                port=p.port,
                target_port=target if target is not None else p.port,
                protocol=port_protocol(p.name, p.app_protocol, p.protocol, p.port),
            )
        )
    return MeshService(
        name=svc.name,
        namespace=svc.namespace,
        hostname=f"{svc.name}.{svc.namespace}.{cfg.domain_suffix}",
        ports=tuple(ports),
        selector=svc.spec.selector,
        addresses=(vip,) if vip else (),
        export_to=tuple(
            ns.strip()
            for ns in svc.metadata.annotations.get(EXPORT_TO_ANNOTATION, "").split(",")
            if ns.strip()
        ),
        headless=svc.spec.cluster_ip == "None",
    )


def _entry_services(se: ServiceEntry) -> list[MeshService]:
    ports = tuple(
        ServicePortInfo(
            name=p.name,
            port=p.number,
            target_port=p.target_port or p.number,
            protocol=port_protocol(p.protocol or p.name, "", "TCP", p.number)
            if p.protocol
            else Protocol.UNSUPPORTED,
        )
        for p in se.ports
    )
    return [
        MeshService(
            name=host,
            namespace=se.namespace,
            hostname=host,
            ports=ports,
            from_service_entry=True,
            location=se.location,
            resolution=se.resolution,
            addresses=se.addresses,
            export_to=se.export_to,
        )
        for host in se.hosts
    ]
