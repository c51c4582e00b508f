"""``build_topology``: the registry istiod would build from the applied Kubernetes resources.

Deployments become workloads and pods (named ``<deployment>-<index>``, addressed in a stable
order, with a sidecar where injection applies), Services and ServiceEntries become registry
entries; ``istio-system``'s ingress gateway is added as ``istioctl install`` would.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from mesh.model import (
    Deployment,
    FrozenMap,
    Namespace,
    ObjectMeta,
    Resource,
    Service,
    ServiceEntry,
)
from mesh.model.multicluster import EASTWEST_GATEWAY, MultiCluster
from mesh.topology.clusters import eastwest_gateway_resources, placed_labels, placements
from mesh.topology.gateways import gateway_resources
from mesh.topology.model import MeshConfig, MeshService, Pod, ProxyKind, Topology, Workload
from mesh.topology.registry import entry_services, kube_service, service_vips

__all__ = ["INGRESS_GATEWAY", "build_topology", "default_pod_address", "istio_system_resources"]


INGRESS_GATEWAY = "istio-ingressgateway"


def istio_system_resources() -> tuple[Resource, ...]:
    """What ``istioctl install`` (default profile) adds that lessons rely on: the ingress gateway.

    Its pods carry ``istio: ingressgateway`` (what Gateway selectors name) and its Service exposes
    80 (http2) and 443 (https) to container ports 8080 and 8443, as in Istio's default profile.
    """
    return (
        Namespace(metadata=ObjectMeta(name="istio-system")),
        *gateway_resources(
            INGRESS_GATEWAY,
            FrozenMap({"app": INGRESS_GATEWAY, "istio": "ingressgateway"}),
            (("http2", 80, 8080), ("https", 443, 8443)),
        ),
    )


def _injected(
    ns_labels: Mapping[str, str] | None, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> bool:
    """Istio's injection decision: the pod's ``sidecar.istio.io/inject`` label, else the
    deprecated annotation of the same name, else the namespace's injection labels."""
    explicit = labels.get("sidecar.istio.io/inject", annotations.get("sidecar.istio.io/inject"))
    if explicit is not None:
        return explicit.lower() == "true"
    if ns_labels is None:  # namespace not declared: assume it is part of the mesh
        return True
    return ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels


def _gateway_injected(
    ns_labels: Mapping[str, str] | None, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> bool:
    """A gateway deployed as Istio's "Installing Gateways" does it: an injected pod whose
    ``inject.istio.io/templates`` is ``gateway`` gets a proxy that is the whole pod (a router,
    no app behind it)."""
    return annotations.get("inject.istio.io/templates") == "gateway" and _injected(
        ns_labels, labels, annotations
    )


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
    declared = [r for r in items if isinstance(r, MultiCluster)]
    multicluster = declared[-1] if declared else None
    if (
        multicluster is not None
        and multicluster.multi_network
        and not any(isinstance(r, Deployment) and r.name == EASTWEST_GATEWAY for r in items)
    ):
        items = [*items, *eastwest_gateway_resources()]
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
        if annotations.get("meshplay.dev/proxy") == "router" or _gateway_injected(
            namespaces.get(d.namespace), tmpl.metadata.labels, annotations
        ):
            proxy = ProxyKind.ROUTER
        elif _injected(namespaces.get(d.namespace), tmpl.metadata.labels, annotations):
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
        index = 0
        for where in placements(d, multicluster):
            labels = (
                tmpl.metadata.labels
                if multicluster is None
                else placed_labels(tmpl.metadata.labels, where)
            )
            for _ in range(where.replicas):
                pods.append(
                    Pod(
                        name=f"{d.name}-{index}",
                        namespace=d.namespace,
                        workload=d.name,
                        labels=labels,
                        service_account=sa,
                        address=pod_address(len(pods)),
                        proxy=proxy,
                        container_ports=ports,
                        locality=where.locality
                        or tmpl.metadata.labels.get("topology.kubernetes.io/zone", ""),
                        trust_domain=cfg.trust_domain,
                        cluster=where.cluster,
                        network=where.network,
                    )
                )
                index += 1

    workloads_by_label: dict[tuple[str, str, str], list[Workload]] = defaultdict(list)
    for w in workloads:
        for k, v in w.labels.items():
            workloads_by_label[(w.namespace, k, v)].append(w)
    services: list[MeshService] = []
    vips = service_vips(r for r in items if isinstance(r, Service))
    for r in items:
        if isinstance(r, Service):
            services.append(
                kube_service(r, cfg, workloads_by_label, vips.get((r.namespace, r.name)))
            )
        elif isinstance(r, ServiceEntry):
            services.extend(entry_services(r))
    services.sort(key=lambda s: s.hostname)
    return Topology(
        config=cfg,
        services=tuple(services),
        workloads=tuple(workloads),
        pods=tuple(pods),
        namespaces=tuple(sorted(namespaces)),
        multicluster=multicluster,
    )
