"""The client half of mTLS: what a sidecar sends to a destination (reference §5.6, §9.4, §14).

A DestinationRule ``tls.mode`` wins whenever it is set. Without one, *auto mTLS* (on by default)
decides: nothing to MESH_EXTERNAL services, nothing when the destination's namespace (or mesh)
PeerAuthentication is DISABLE; otherwise each endpoint that has a sidecar (label
``security.istio.io/tlsMode=istio``) and whose own workload/port mode is not DISABLE gets Istio
mTLS, every other endpoint plaintext. istiod expresses that with two ``transport_socket_matches``
on the cluster (``tlsMode-istio`` for endpoints whose metadata says ``tlsMode: istio``, and
``tlsMode-disabled``).

Istio mTLS on the wire: client certificate from SDS ``default``, trust from SDS ``ROOTCA``, the
server's certificate must carry one of the destination's SPIFFE identities (SAN match), SNI
``outbound_.<port>_.<subset>_.<fqdn>``, ALPN ``istio-peer-exchange, istio`` (plus ``h2`` for HTTP/2
clusters), TLS 1.2 to 1.3 (Envoy's upstream default maximum is 1.2, so it is set explicitly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mesh.envoy_api.names import SDS_ROOT_CA, SDS_WORKLOAD_CERT, sni_name
from mesh.envoy_api.type_urls import (
    RAW_BUFFER,
    RAW_BUFFER_TRANSPORT_SOCKET,
    TLS_TRANSPORT_SOCKET,
    UPSTREAM_TLS_CONTEXT,
    typed,
)
from mesh.envoy_api.values import ADS
from mesh.model import MutualTLSMode, TLSMode
from mesh.model.destination_rule import ClientTLSSettings

__all__ = [
    "ClientTLS",
    "UpstreamEndpoint",
    "client_tls",
    "client_tls_decision",
    "endpoint_uses_mtls",
    "istio_mutual_socket",
]

Json = dict[str, Any]


class ClientTLS(StrEnum):
    """How a client sidecar talks to one destination cluster."""

    PLAINTEXT = "PLAINTEXT"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"  # every endpoint (DR ISTIO_MUTUAL, or auto with all sidecars)
    AUTO = "AUTO"  # per endpoint: transport_socket_matches
    ORIGINATE = "ORIGINATE"  # DR SIMPLE/MUTUAL: the translator's own TLS origination


@dataclass(frozen=True, slots=True)
class UpstreamEndpoint:
    """What auto mTLS needs to know about one destination endpoint."""

    identity: str  # spiffe://td/ns/NS/sa/SA
    sidecar: bool
    mode: MutualTLSMode  # its effective PeerAuthentication mode on the target port


def endpoint_uses_mtls(endpoint: UpstreamEndpoint) -> bool:
    """Auto mTLS tags an endpoint ``tlsMode: istio`` iff it has a sidecar and is not DISABLE."""
    return endpoint.sidecar and endpoint.mode is not MutualTLSMode.DISABLE


def client_tls_decision(
    endpoints: Sequence[UpstreamEndpoint],
    dr_tls: ClientTLSSettings | None,
    *,
    namespace_mode: MutualTLSMode = MutualTLSMode.PERMISSIVE,
    mesh_external: bool = False,
    auto_mtls: bool = True,
) -> ClientTLS:
    """Which TLS the client uses towards a cluster (``cluster_tls.go``)."""
    if dr_tls is not None:
        if dr_tls.mode is TLSMode.ISTIO_MUTUAL:
            return ClientTLS.ISTIO_MUTUAL
        if dr_tls.mode is TLSMode.DISABLE:
            return ClientTLS.PLAINTEXT
        return ClientTLS.ORIGINATE
    if not auto_mtls or mesh_external or namespace_mode is MutualTLSMode.DISABLE:
        return ClientTLS.PLAINTEXT
    tagged = [endpoint_uses_mtls(e) for e in endpoints]
    if tagged and all(tagged):
        return ClientTLS.ISTIO_MUTUAL
    if any(tagged):
        return ClientTLS.AUTO
    return ClientTLS.PLAINTEXT


def istio_mutual_socket(
    *,
    port: int,
    subset: str,
    hostname: str,
    identities: Sequence[str],
    sni: str = "",
    h2: bool = False,
) -> Json:
    """The ``envoy.transport_sockets.tls`` UpstreamTlsContext of Istio mTLS."""
    validation: Json = {}
    if identities:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": san}} for san in sorted(set(identities))
        ]
    context: Json = {
        "alpn_protocols": ["istio-peer-exchange", "istio", *(["h2"] if h2 else [])],
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
        "name": TLS_TRANSPORT_SOCKET,
        "typed_config": typed(
            UPSTREAM_TLS_CONTEXT,
            common_tls_context=context,
            sni=sni or sni_name(port, subset, hostname),
        ),
    }


def client_tls(
    endpoints: Sequence[UpstreamEndpoint],
    dr_tls: ClientTLSSettings | None,
    *,
    port: int,
    subset: str,
    hostname: str,
    namespace_mode: MutualTLSMode = MutualTLSMode.PERMISSIVE,
    mesh_external: bool = False,
    auto_mtls: bool = True,
    h2: bool = False,
) -> Json:
    """The cluster fields for the client's TLS towards ``outbound|port|subset|hostname``.

    Returns ``{}`` (plaintext, or DR SIMPLE/MUTUAL which the translator builds itself),
    ``{"transport_socket": ...}`` (mTLS to every endpoint) or ``{"transport_socket_matches":
    [...]}`` (auto mTLS over a mix of endpoints with and without sidecar). The SAN list is the
    endpoints' SPIFFE identities unless the DR names ``subjectAltNames``.
    """
    decision = client_tls_decision(
        endpoints,
        dr_tls,
        namespace_mode=namespace_mode,
        mesh_external=mesh_external,
        auto_mtls=auto_mtls,
    )
    if decision in (ClientTLS.PLAINTEXT, ClientTLS.ORIGINATE):
        return {}
    sans: list[str] = []
    if dr_tls is not None and dr_tls.subject_alt_names:
        sans = [s if "://" in s else f"spiffe://{s}" for s in dr_tls.subject_alt_names]
    else:
        sans = [e.identity for e in endpoints if e.identity and (e.sidecar or dr_tls is not None)]
    socket = istio_mutual_socket(
        port=port,
        subset=subset,
        hostname=hostname,
        identities=sans,
        sni=dr_tls.sni if dr_tls is not None else "",
        h2=h2,
    )
    if decision is ClientTLS.ISTIO_MUTUAL:
        return {"transport_socket": socket}
    return {
        "transport_socket_matches": [
            {"match": {"tlsMode": "istio"}, "name": "tlsMode-istio", "transport_socket": socket},
            {
                "match": {},
                "name": "tlsMode-disabled",
                "transport_socket": {
                    "name": RAW_BUFFER_TRANSPORT_SOCKET,
                    "typed_config": typed(RAW_BUFFER),
                },
            },
        ]
    }
