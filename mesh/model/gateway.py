"""istio.networking.v1 Gateway, ServiceEntry and Sidecar (gateway.proto, service_entry.proto,
sidecar.proto): the edges of the mesh and the scope of each sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from mesh.model.common import FrozenMap, LabelsWorkloadSelector, Resource
from mesh.model.virtual_service import Destination

__all__ = [
    "Gateway",
    "IstioEgressListener",
    "IstioIngressListener",
    "OutboundTrafficPolicy",
    "OutboundTrafficPolicyMode",
    "Port",
    "Server",
    "ServerTLSSettings",
    "ServiceEntry",
    "ServiceEntryLocation",
    "ServiceEntryResolution",
    "ServicePort",
    "Sidecar",
    "SidecarPort",
    "WorkloadEntry",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    """A port a Gateway server listens on, with its protocol (HTTP, HTTPS, HTTP2, GRPC, TCP, TLS)."""

    number: int
    protocol: str
    name: str = ""
    target_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLSSettings:
    """TLS a gateway server terminates (or passes through)."""

    UNMODELLED: ClassVar[frozenset[str]] = frozenset(
        {
            "minProtocolVersion",
            "maxProtocolVersion",
            "cipherSuites",
            "verifyCertificateSpki",
            "verifyCertificateHash",
            "caCrl",
            "credentialNames",
            "tlsCertificates",
        }
    )

    https_redirect: bool = False
    mode: str = "SIMPLE"
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """One listener of a Gateway: port, hosts it admits and TLS."""

    port: Port
    hosts: tuple[str, ...] = ()
    bind: str = ""
    tls: ServerTLSSettings | None = None
    name: str = ""
    default_endpoint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway(Resource):
    """networking.istio.io Gateway: ports and hosts exposed by gateway pods (selected by labels)."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1", "v1alpha3")
    KIND: ClassVar[str] = "Gateway"
    PLURAL: ClassVar[str] = "gateways"

    servers: tuple[Server, ...] = ()
    selector: FrozenMap[str, str] = field(default_factory=FrozenMap)


class ServiceEntryLocation(StrEnum):
    """Whether the service is part of the mesh (MESH_INTERNAL) or outside it."""

    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class ServiceEntryResolution(StrEnum):
    """How the proxy resolves the service's endpoints."""

    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    """A port of a ServiceEntry."""

    number: int
    protocol: str = ""
    name: str = ""
    target_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEntry:
    """An endpoint of a ServiceEntry (address, per-port numbers, labels, locality, weight)."""

    address: str = ""
    ports: FrozenMap[str, int] = field(default_factory=FrozenMap)
    labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    network: str = ""
    locality: str = ""
    weight: int | None = None
    service_account: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntry(Resource):
    """networking.istio.io ServiceEntry: adds a host (external API, VM...) to the registry."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1", "v1alpha3")
    KIND: ClassVar[str] = "ServiceEntry"
    PLURAL: ClassVar[str] = "serviceentries"

    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    location: ServiceEntryLocation = ServiceEntryLocation.MESH_EXTERNAL
    resolution: ServiceEntryResolution = ServiceEntryResolution.NONE
    endpoints: tuple[WorkloadEntry, ...] = ()
    workload_selector: LabelsWorkloadSelector | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarPort:
    """A port of a Sidecar listener."""

    number: int
    protocol: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IstioIngressListener:
    """Inbound port the sidecar accepts and where it forwards."""

    port: SidecarPort
    bind: str = ""
    capture_mode: str = ""
    default_endpoint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IstioEgressListener:
    """Hosts (``namespace/dnsName``) the sidecar knows about for outbound traffic."""

    port: SidecarPort | None = None
    bind: str = ""
    capture_mode: str = ""
    hosts: tuple[str, ...] = ()


class OutboundTrafficPolicyMode(StrEnum):
    """ALLOW_ANY forwards unknown hosts (PassthroughCluster); REGISTRY_ONLY blocks them."""

    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundTrafficPolicy:
    """What happens to traffic for hosts outside the sidecar's registry view."""

    mode: OutboundTrafficPolicyMode = OutboundTrafficPolicyMode.ALLOW_ANY
    egress_proxy: Destination | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sidecar(Resource):
    """networking.istio.io Sidecar: narrows what a workload's sidecar sees and accepts."""

    API_GROUP: ClassVar[str] = "networking.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1", "v1beta1", "v1alpha3")
    KIND: ClassVar[str] = "Sidecar"
    PLURAL: ClassVar[str] = "sidecars"
    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"inboundConnectionPool", "ingress"})
    """``ingress`` (custom inbound listeners, ``defaultEndpoint``) is refused: istiod would build
    the workload's inbound chains from it instead of from its Services' ports."""

    workload_selector: LabelsWorkloadSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = ()
    egress: tuple[IstioEgressListener, ...] = ()
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
