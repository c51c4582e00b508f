"""Upstream TLS of outbound clusters: DestinationRule ``tls`` (ISTIO_MUTUAL with SDS certificates
and SANs, SIMPLE/MUTUAL with files) and Istio's auto mTLS (``transport_socket_matches`` on the
endpoints' ``tlsMode`` tag), as istiod's ``cluster_tls.go`` builds them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.endpoints import Endpoint
from mesh.envoy.policy import ResolvedPolicy
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import SDS_ROOT_CA, SDS_WORKLOAD_CERT, sni_name
from mesh.envoy_api.values import ADS
from mesh.model import MutualTLSMode, ServiceEntry, TLSMode
from mesh.model.gateway import ServiceEntryLocation
from mesh.security.mtls_client import istio_mutual_socket
from mesh.security.peer_authn import MtlsPolicy
from mesh.topology import MeshService, Pod, Protocol, ServicePortInfo

__all__ = ["PeerModes", "auto_mtls_sockets", "is_mesh_external", "transport_socket"]


@dataclass(frozen=True, slots=True)
class PeerModes:
    """What a client's auto mTLS needs to know about the servers' PeerAuthentication: each
    pod's resolved policy and each namespace's mode (mesh + namespace levels); whether auto mTLS
    is on at all (``MeshConfig.enableAutoMtls``)."""

    of_pod: Callable[[Pod], MtlsPolicy]
    of_namespace: Callable[[str], MutualTLSMode]
    auto_mtls: bool = True


def _istio_mutual(
    port: int, subset: str, service: MeshService, sans: Sequence[str], sni: str
) -> dict[str, Any]:
    """Istio's mTLS client context: SDS ``default`` cert, SDS ``ROOTCA`` trust, SAN + SNI."""
    validation: dict[str, Any] = {}
    if sans:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": san}} for san in sans
        ]
    context = {
        "alpn_protocols": ["istio-peer-exchange", "istio"],
        "combined_validation_context": {
            "default_validation_context": validation,
            "validation_context_sds_secret_config": {"name": SDS_ROOT_CA, "sds_config": ADS},
        },
        "tls_certificate_sds_secret_configs": [{"name": SDS_WORKLOAD_CERT, "sds_config": ADS}],
        "tls_params": {
            "tls_maximum_protocol_version": "TLSv1_3",
            "tls_minimum_protocol_version": "TLSv1_2",
        },
    }
    return {
        "name": tu.TLS_TRANSPORT_SOCKET,
        "typed_config": tu.typed(
            tu.UPSTREAM_TLS_CONTEXT,
            common_tls_context=context,
            sni=sni or sni_name(port, subset, service.hostname),
        ),
    }


def _credential_context(policy_tls: Any) -> dict[str, Any]:
    """TLS origination with ``credentialName`` (istiod's custom SDS for clients): the Secret's
    certificate as ``kubernetes://<name>`` and its CA as ``kubernetes://<name>-cacert``, both
    over SDS from the proxy's agent, the ``subjectAltNames`` as exact SAN matches. istiod 1.28
    names the certificate whatever the mode (a SIMPLE server simply never asks for it)."""
    validation: dict[str, Any] = {}
    if policy_tls.subject_alt_names:
        validation["match_subject_alt_names"] = [
            {"exact": san} for san in policy_tls.subject_alt_names
        ]
    name = f"kubernetes://{policy_tls.credential_name}"
    return {
        "combined_validation_context": {
            "default_validation_context": validation,
            "validation_context_sds_secret_config": {"name": f"{name}-cacert", "sds_config": ADS},
        },
        "tls_certificate_sds_secret_configs": [{"name": name, "sds_config": ADS}],
    }


def _simple_tls(policy_tls: Any, service: MeshService) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if policy_tls.credential_name:
        context = _credential_context(policy_tls)
    elif policy_tls.ca_certificates:
        context["validation_context"] = {"trusted_ca": {"filename": policy_tls.ca_certificates}}
    if policy_tls.mode is TLSMode.MUTUAL and policy_tls.client_certificate:
        context["tls_certificates"] = [
            {
                "certificate_chain": {"filename": policy_tls.client_certificate},
                "private_key": {"filename": policy_tls.private_key},
            }
        ]
    return {
        "name": tu.TLS_TRANSPORT_SOCKET,
        "typed_config": tu.typed(
            tu.UPSTREAM_TLS_CONTEXT,
            common_tls_context=context,
            sni=policy_tls.sni or service.hostname,
        ),
    }


def auto_mtls_sockets(
    service: MeshService,
    port: ServicePortInfo,
    subset: str,
    endpoints: Sequence[Endpoint],
    *,
    peer_modes: PeerModes | None,
    auto_mtls: bool,
) -> dict[str, Any]:
    """Istio auto mTLS when no DestinationRule sets ``tls`` (``cluster_tls.go``).

    Nothing to MESH_EXTERNAL services, nothing when auto mTLS is off or the service's namespace
    (or the mesh) is DISABLE. Otherwise istiod emits ISTIO_MUTUAL as two
    ``transport_socket_matches`` - ``tlsMode-istio`` for endpoints tagged ``tlsMode: istio`` (a
    sidecar, not DISABLE on the port), ``tlsMode-disabled`` (plaintext) for the rest - whatever
    the endpoints are today, so EDS updates never need a new cluster. The SAN list holds the
    SPIFFE identities of the endpoints that take mTLS.
    """
    namespace_mode = (
        peer_modes.of_namespace(service.namespace)
        if peer_modes is not None
        else MutualTLSMode.PERMISSIVE
    )
    if peer_modes is not None:
        auto_mtls = auto_mtls and peer_modes.auto_mtls
    if not auto_mtls or is_mesh_external(service) or namespace_mode is MutualTLSMode.DISABLE:
        return {}
    socket = istio_mutual_socket(
        port=port.port,
        subset=subset,
        hostname=service.hostname,
        identities=[e.identity for e in endpoints if e.takes_mtls and e.identity],
        h2=port.protocol in {Protocol.HTTP2, Protocol.GRPC},
    )
    plaintext = {"name": tu.RAW_BUFFER_TRANSPORT_SOCKET, "typed_config": tu.typed(tu.RAW_BUFFER)}
    return {
        "transport_socket_matches": [
            {"match": {"tlsMode": "istio"}, "name": "tlsMode-istio", "transport_socket": socket},
            {"match": {}, "name": "tlsMode-disabled", "transport_socket": plaintext},
        ]
    }


def transport_socket(
    policy: ResolvedPolicy,
    port: int,
    *,
    subset: str,
    service: MeshService,
    endpoints: Sequence[Endpoint],
    se: ServiceEntry | None,
) -> dict[str, Any] | None:
    tls = policy.tls
    if tls is None or tls.mode is TLSMode.DISABLE:
        return None
    if tls.mode is TLSMode.ISTIO_MUTUAL:
        sans = list(tls.subject_alt_names)
        if not sans:
            sans = sorted({e.identity for e in endpoints if e.identity})
            if se is not None:
                sans = sorted(
                    set(sans)
                    | {f"spiffe://{s}" if "://" not in s else s for s in se.subject_alt_names}
                )
        return _istio_mutual(port, subset, service, sans, tls.sni)
    return _simple_tls(tls, service)


def is_mesh_external(service: MeshService) -> bool:
    """MESH_EXTERNAL ServiceEntries never get auto-mTLS."""
    return service.from_service_entry and service.location is ServiceEntryLocation.MESH_EXTERNAL
