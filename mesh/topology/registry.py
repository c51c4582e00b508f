"""Registry entries from Kubernetes Services and ServiceEntries, with the VIPs istiod would see.

A Service's ClusterIP is its manifest's ``spec.clusterIP`` or a stable allocation in the service
CIDR (:func:`service_vips`); its ports get Istio's protocol; named target ports resolve on the
selected pods. A ServiceEntry contributes one entry per host, with its ``addresses`` as VIPs.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

from mesh.model import Service, ServiceEntry
from mesh.topology.model import MeshConfig, MeshService, ServicePortInfo, Workload
from mesh.topology.protocol import Protocol, port_protocol

__all__ = ["EXPORT_TO_ANNOTATION", "SERVICE_CIDR", "entry_services", "kube_service", "service_vips"]


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


def kube_service(
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


def entry_services(se: ServiceEntry) -> list[MeshService]:
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
