"""The service registry and workloads the mesh sees, derived from Kubernetes manifests.

What istiod builds from the Kubernetes API: services (with FQDN host names and the protocol of each
port), workloads and their pods (labels, service account, SPIFFE identity, address), and which
pods back which service port. Every runner starts from this: ``sim`` creates the pods it
describes, ``local`` launches one process per pod, the translator emits endpoints for them.
"""

from __future__ import annotations

from mesh.topology.build import (
    INGRESS_GATEWAY,
    build_topology,
    default_pod_address,
    istio_system_resources,
)
from mesh.topology.model import (
    MeshConfig,
    MeshService,
    Pod,
    ProxyKind,
    ServicePortInfo,
    Topology,
    Workload,
)
from mesh.topology.protocol import Protocol, port_protocol
from mesh.topology.registry import EXPORT_TO_ANNOTATION, SERVICE_CIDR, service_vips

__all__ = [
    "EXPORT_TO_ANNOTATION",
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
    "default_pod_address",
    "istio_system_resources",
    "port_protocol",
    "service_vips",
]
