"""Gateway servers that speak TLS: filter chains matched by SNI, as istiod builds them.

On a gateway port whose servers are ``HTTPS`` or ``TLS`` (never mixed with plain HTTP servers:
istiod keeps one kind per port), every server becomes one or more filter chains of the same
``0.0.0.0_<targetPort>`` listener, told apart by the TLS ``server_names`` (SNI) the
``tls_inspector`` listener filter reads:

* **SIMPLE / MUTUAL / ISTIO_MUTUAL** on an ``HTTPS`` server: Envoy terminates TLS
  (a ``DownstreamTlsContext`` transport socket) and an HTTP connection manager routes the
  requests with the route configuration ``https.<port>.<port name>.<gateway>.<namespace>``.
  The certificate comes over SDS: ``kubernetes://<credentialName>`` (the Secret in the
  gateway's namespace), its CA for MUTUAL as ``kubernetes://<credentialName>-cacert``; file
  paths as ``file-cert:<cert>~<key>`` / ``file-root:<ca>``; ISTIO_MUTUAL uses the workload
  certificate ``default`` and the mesh root ``ROOTCA``.
* **PASSTHROUGH**: no TLS context; each VirtualService ``tls`` match bound to the gateway and
  the server's port gives a chain on its ``sniHosts`` that ``tcp_proxy``s the still-encrypted
  bytes to the destination, which terminates TLS itself.
* **AUTO_PASSTHROUGH** (the east-west gateway): one chain per mesh service port (and per
  DestinationRule subset) whose host the server admits, on the SNI a sidecar sets for that
  cluster (``outbound_.9080_._.reviews.default.svc.cluster.local``) and Istio's mTLS ALPNs,
  ``tcp_proxy`` to the cluster of that same name (:func:`sni_dnat_clusters`).

A server host ``*`` matches any SNI (no ``server_names``); ``ns/host`` matches ``host``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.clusters import ADS
from mesh.envoy.scope import MeshIndex
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import (
    SDS_ROOT_CA,
    SDS_WORKLOAD_CERT,
    Direction,
    cluster_name,
    sni_name,
)
from mesh.model import DestinationRule, Gateway, Secret, Server
from mesh.model.gateway import ServerTLSSettings
from mesh.security.credentials import read_credential, sds_secrets
from mesh.topology import MeshService, Protocol

__all__ = [
    "ISTIO_MTLS_ALPNS",
    "TlsChainSpec",
    "TlsPortBuild",
    "auto_passthrough_chains",
    "credential_secret_names",
    "gateway_credential_secrets",
    "gateway_tls_context",
    "https_route_name",
    "is_terminating",
    "passthrough_chains",
    "server_sni_hosts",
    "sni_dnat_clusters",
    "tls_port_listener",
]

Json = dict[str, Any]

ISTIO_MTLS_ALPNS = ("istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")
"""The ALPNs an Istio sidecar offers on mTLS (istiod's ``allIstioMtlsALPNs``)."""
_HTTPS_ALPNS = ("h2", "http/1.1")
_TERMINATING = frozenset({"SIMPLE", "MUTUAL", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"})
_VERIFIES_CLIENT = frozenset({"MUTUAL", "OPTIONAL_MUTUAL"})
"""Modes whose ``credentialName`` brings a ``-cacert`` to check client certificates with."""


def is_terminating(server: Server) -> bool:
    """An HTTPS server whose TLS the gateway terminates (not PASSTHROUGH / AUTO_PASSTHROUGH)."""
    return (
        server.port.protocol.upper() == "HTTPS"
        and server.tls is not None
        and server.tls.mode.upper() in _TERMINATING
    )


def https_route_name(server: Server, gateway: Gateway) -> str:
    """RDS name of a TLS-terminating HTTPS server: ``https.443.https.<gateway>.<namespace>``
    (istiod names it by the *server* port, not the pod port)."""
    return f"https.{server.port.number}.{server.port.name}.{gateway.name}.{gateway.namespace}"


def server_sni_hosts(server: Server) -> tuple[str, ...]:
    """The SNI names a TLS server's chain matches: its hosts without ``ns/``; none (any SNI)
    when one of them is ``*``."""
    hosts = sorted({h.rpartition("/")[2] for h in server.hosts})
    return () if "*" in hosts else tuple(hosts)


def credential_secret_names(tls: ServerTLSSettings) -> tuple[str, str]:
    """(certificate secret, CA secret) names the gateway asks SDS for ("" when none)."""
    mode = tls.mode.upper()
    if mode == "ISTIO_MUTUAL":
        return SDS_WORKLOAD_CERT, SDS_ROOT_CA
    # OPTIONAL_MUTUAL checks a client certificate against the same CA as MUTUAL when the
    # client presents one (istiod's validateClient), without requiring it
    verifies = mode in _VERIFIES_CLIENT
    if tls.credential_name:
        ca = f"kubernetes://{tls.credential_name}-cacert" if verifies else ""
        return f"kubernetes://{tls.credential_name}", ca
    cert = f"file-cert:{tls.server_certificate}~{tls.private_key}"
    ca = f"file-root:{tls.ca_certificates}" if verifies and tls.ca_certificates else ""
    return cert, ca


def gateway_credential_secrets(
    servers: Iterable[Server], namespace: str, secrets: Sequence[Secret]
) -> list[Json]:
    """The ``kubernetes://`` SDS secrets istiod serves a gateway pod in ``namespace`` for its
    terminating servers' ``credentialName`` (and ``-cacert`` for MUTUAL), read from the
    lesson's Secrets in that namespace (:mod:`mesh.security.credentials`). A name whose Secret
    is missing or unusable gets nothing: its chain is not ready and fails every handshake."""
    out: dict[str, Json] = {}
    for server in servers:
        tls = server.tls
        if tls is None or not tls.credential_name or not is_terminating(server):
            continue
        cred = read_credential(
            secrets, tls.credential_name, namespace, mutual=tls.mode.upper() in _VERIFIES_CLIENT
        )
        for secret in sds_secrets(cred):
            out.setdefault(str(secret["name"]), secret)
    return [out[name] for name in sorted(out)]


def gateway_tls_context(tls: ServerTLSSettings, *, http: bool = True) -> Json:
    """The ``envoy.transport_sockets.tls`` socket terminating a gateway server's TLS."""
    cert, ca = credential_secret_names(tls)
    mode = tls.mode.upper()
    common: Json = {
        "tls_certificate_sds_secret_configs": [{"name": cert, "sds_config": ADS}],
        "tls_params": {
            "tls_maximum_protocol_version": "TLSv1_3",
            "tls_minimum_protocol_version": "TLSv1_2",
        },
    }
    if http:
        common["alpn_protocols"] = list(_HTTPS_ALPNS)
    if ca:
        default: Json = {}
        if tls.subject_alt_names:
            default["match_typed_subject_alt_names"] = [
                {"san_type": "URI" if san.startswith("spiffe://") else "DNS",
                 "matcher": {"exact": san}}
                for san in tls.subject_alt_names
            ]  # fmt: skip
        common["combined_validation_context"] = {
            "default_validation_context": default,
            "validation_context_sds_secret_config": {"name": ca, "sds_config": ADS},
        }
    body: Json = {"common_tls_context": common}
    body["require_client_certificate"] = mode in {"MUTUAL", "ISTIO_MUTUAL"}
    return {
        "name": tu.TLS_TRANSPORT_SOCKET,
        "typed_config": tu.typed(tu.DOWNSTREAM_TLS_CONTEXT, **body),
    }


@dataclass(frozen=True, slots=True)
class TlsChainSpec:
    """A ``tcp_proxy`` filter chain of a TLS port: SNI names (and ALPNs) it matches and the
    cluster(s) it forwards to."""

    server_names: tuple[str, ...]
    cluster: str
    weighted: tuple[tuple[str, int], ...] = ()
    application_protocols: tuple[str, ...] = ()


def _gateway_ref(name: str, namespace: str) -> str:
    return name if "/" in name else f"{namespace}/{name}"


def _host_matches(server_host: str, vs_host: str) -> bool:
    """istiod's ``pickMatchingGatewayHosts``: the server host (``*``, ``*.x``, exact) admits
    the VirtualService host."""
    if server_host in {"*", vs_host}:
        return True
    return server_host.startswith("*.") and vs_host.endswith(server_host[1:])


def passthrough_chains(
    gateway: Gateway,
    server: Server,
    index: MeshIndex,
    resolve: Callable[[str, str], str],
    service: Callable[[str], MeshService | None],
    *,
    taken: set[str],
    pod_labels: Mapping[str, str] | None = None,
    pod_namespace: str = "",
) -> list[TlsChainSpec]:
    """PASSTHROUGH: one chain per VirtualService ``tls`` match bound to this gateway and port.
    ``taken`` collects the SNI names already used on the listener: a later match repeating
    one is skipped (Envoy rejects two chains with the same match; istiod drops the later).
    A match's ``sourceLabels`` / ``sourceNamespace`` are the gateway pod's (istiod's
    ``matchTLS``); a match with ``destinationSubnets`` is not modelled (MPY2001) and skipped."""
    ref = f"{gateway.namespace}/{gateway.name}"
    chains: list[TlsChainSpec] = []
    for vs in index.virtual_services:
        if ref not in {_gateway_ref(g, vs.namespace) for g in vs.gateways}:
            continue
        hosts = []
        for entry in server.hosts:
            ns, _, host = entry.rpartition("/")
            if ns not in {"", "*", "."} and ns != vs.namespace:
                continue
            hosts.append(host)
        if not any(_host_matches(h, v) for h in hosts for v in vs.hosts):
            continue
        for rule in vs.tls:
            if not rule.route:
                continue
            for match in rule.match:
                if match.port not in (None, server.port.number):
                    continue
                if match.gateways and ref not in {
                    _gateway_ref(g, vs.namespace) for g in match.gateways
                }:
                    continue
                if taken.intersection(match.sni_hosts) or match.destination_subnets:
                    continue
                if pod_labels is not None and (
                    any(pod_labels.get(k) != v for k, v in match.source_labels.items())
                    or match.source_namespace not in ("", pod_namespace)
                ):
                    continue
                taken.update(match.sni_hosts)
                out = []
                for rd in rule.route:
                    host = resolve(rd.destination.host, vs.namespace)
                    target = service(host)
                    port = rd.destination.port.number if rd.destination.port else 0
                    if not port and target is not None and target.ports:
                        port = target.ports[0].port
                    out.append(
                        (cluster_name(Direction.OUTBOUND, port, rd.destination.subset, host),
                         rd.weight or 0)
                    )  # fmt: skip
                weighted = tuple(out) if len(out) > 1 else ()
                chains.append(TlsChainSpec(tuple(match.sni_hosts), out[0][0], weighted))
    return chains


def _auto_targets(
    server: Server,
    services: Sequence[MeshService],
    rule_of: Callable[[MeshService], DestinationRule | None],
) -> list[tuple[MeshService, int, str]]:
    hosts = [h.rpartition("/")[2] for h in server.hosts]
    out: list[tuple[MeshService, int, str]] = []
    for svc in sorted(services, key=lambda s: s.hostname):
        if svc.from_service_entry:
            continue  # istiod skips mesh-external services
        if not any(_host_matches(h, svc.hostname) for h in hosts):
            continue
        rule = rule_of(svc)
        subsets = ["", *(s.name for s in rule.subsets)] if rule is not None else [""]
        for p in svc.ports:
            if p.protocol is Protocol.UDP:
                continue
            out.extend((svc, p.port, subset) for subset in subsets)
    return out


def auto_passthrough_chains(
    server: Server,
    services: Sequence[MeshService],
    rule_of: Callable[[MeshService], DestinationRule | None],
) -> list[TlsChainSpec]:
    """AUTO_PASSTHROUGH: a chain per admitted service port and subset, on the cluster's SNI."""
    return [
        TlsChainSpec((sni_name(port, subset, svc.hostname),), sni_name(port, subset, svc.hostname),
                     application_protocols=ISTIO_MTLS_ALPNS)
        for svc, port, subset in _auto_targets(server, services, rule_of)
    ]  # fmt: skip


def sni_dnat_clusters(
    server: Server,
    services: Sequence[MeshService],
    rule_of: Callable[[MeshService], DestinationRule | None],
    outbound: Callable[[str], Json | None],
) -> list[Json]:
    """The clusters AUTO_PASSTHROUGH chains forward to: a copy of each ``outbound|...`` cluster
    named by its SNI (istiod's SNI-DNAT clusters), without upstream TLS (the bytes stay the
    client sidecar's mTLS) and reading the same endpoints."""
    out = []
    for svc, port, subset in _auto_targets(server, services, rule_of):
        base = outbound(cluster_name(Direction.OUTBOUND, port, subset, svc.hostname))
        if base is None:
            continue
        copy = {
            k: v
            for k, v in base.items()
            if k not in {"transport_socket", "transport_socket_matches"}
        }
        copy["name"] = sni_name(port, subset, svc.hostname)
        eds = copy.get("eds_cluster_config")
        if isinstance(eds, dict) and "service_name" not in eds:
            copy["eds_cluster_config"] = {**eds, "service_name": base["name"]}
        out.append(copy)
    return out


@dataclass(frozen=True, slots=True)
class TlsPortBuild:
    """What one TLS gateway port adds to the proxy: its listener, the route configurations of
    its terminating servers and the SNI-DNAT clusters of its AUTO_PASSTHROUGH servers."""

    listener: Json
    routes: tuple[Json, ...]
    clusters: tuple[Json, ...]


def tls_port_listener(
    base: Json,
    terminating: Sequence[tuple[Server, Json, Json]],
    tcp_chains: Sequence[TlsChainSpec],
    tcp_filter: Callable[[TlsChainSpec], Json],
) -> Json:
    """``base`` (name, address, ...) with ``tls_inspector`` and the port's filter chains:
    (server, HCM filter, transport socket) per terminating server, then the ``tcp_proxy``
    chains. Chains whose match would repeat an earlier one are left out (Envoy rejects a
    listener with two identical matches)."""
    listener = dict(base)
    listener["listener_filters"] = [
        {"name": tu.FILTER_TLS_INSPECTOR, "typed_config": tu.typed(tu.TLS_INSPECTOR)}
    ]
    chains: list[Json] = []
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def add(names: tuple[str, ...], alpns: tuple[str, ...], chain: Json) -> None:
        key = (names, alpns)
        if key in seen:
            return
        seen.add(key)
        match: Json = {}
        if names:
            match["server_names"] = list(names)
        if alpns:
            match["application_protocols"] = list(alpns)
        if match:
            chain = {"filter_chain_match": match, **chain}
        chains.append(chain)

    for server, hcm, socket in terminating:
        add(server_sni_hosts(server), (), {"filters": [hcm], "transport_socket": socket})
    for spec in tcp_chains:
        add(spec.server_names, spec.application_protocols, {"filters": [tcp_filter(spec)]})
    listener["filter_chains"] = chains
    return listener
