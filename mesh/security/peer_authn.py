"""PeerAuthentication: the mTLS mode of each workload port, and the inbound filter chains istiod
builds for it (reference §9.2-9.3, ``policy_applier.go``, ``filterchain_options.go``).

Resolution starts at PERMISSIVE, then takes the mesh policy (root namespace, no selector), the
namespace policy (no selector) and the workload policy (``selector.matchLabels`` matching the pod;
ignored in the root namespace), each only when its mode is set (``UNSET`` inherits). At one level
the oldest policy wins; meshplay uses apply order for age. ``portLevelMtls`` of the workload
policy overrides per *container* (target) port, ``UNSET`` there inheriting the workload result.

On the server, each mode becomes a set of ``virtualInbound`` filter chains keyed by destination
port and by what the ``tls_inspector`` listener filter saw (``transport_protocol`` ``tls`` or
``raw_buffer``, and the ALPN the client offered):

* STRICT: one ``tls`` chain terminating mTLS. A plaintext client matches no chain and Envoy
  closes the connection: curl prints ``(52) Empty reply from server``, a client sidecar 503 UC.
* PERMISSIVE: a ``tls`` chain for Istio's ALPNs (mTLS) and a ``raw_buffer`` chain (plaintext).
* DISABLE: one ``raw_buffer`` chain.

The TLS context asks for the client certificate (``require_client_certificate``) and trusts the
mesh root (SDS ``ROOTCA``), presents the workload certificate (SDS ``default``), and checks no SAN:
identities are AuthorizationPolicy's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.envoy_api.names import SDS_ROOT_CA, SDS_WORKLOAD_CERT, listener_name
from mesh.envoy_api.type_urls import (
    DOWNSTREAM_TLS_CONTEXT,
    FILTER_TLS_INSPECTOR,
    TLS_INSPECTOR,
    TLS_TRANSPORT_SOCKET,
    typed,
)
from mesh.envoy_api.values import ADS
from mesh.model import FrozenMap, MutualTLSMode, PeerAuthentication
from mesh.records import ConnectionSecurityPolicy
from mesh.topology import Pod

__all__ = [
    "ISTIO_MTLS_ALPNS",
    "AutoChainNames",
    "MtlsPolicy",
    "accepts",
    "auto_filter_chains",
    "connection_security_policy",
    "downstream_tls_context",
    "effective_mtls",
    "inbound_filter_chains",
    "namespace_mtls_mode",
    "sniffed_inbound_filter_chains",
    "tls_inspector",
]

ISTIO_MTLS_ALPNS: tuple[str, ...] = (
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
)
"""ALPN values that mark a TLS connection as Istio mTLS (``filterchain_options.go``)."""

_TCP_MTLS_ALPNS: tuple[str, ...] = ("istio-peer-exchange", "istio")
_HTTP_MTLS_ALPNS: tuple[str, ...] = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
"""What istiod's ``istio.alpn`` filter makes a client sidecar offer for HTTP over mTLS
(``mtlsHTTPALPNs``): the only ALPNs a sniffed port's mTLS HTTP chain takes."""
_PLAINTEXT_HTTP_ALPNS: tuple[str, ...] = ("http/1.1", "h2c")
"""What ``http_inspector`` reports for plaintext HTTP (``plaintextHTTPALPNs``)."""
_HTTP_SERVER_ALPNS = ["h2", "http/1.1"]
_TCP_SERVER_ALPNS = ["istio-peer-exchange", "h2", "http/1.1"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MtlsPolicy:
    """The resolved PeerAuthentication of one workload.

    ``mode`` is never UNSET; ``port_modes`` holds the resolved per-target-port overrides;
    ``decided_by`` names the policy that set ``mode`` (``PeerAuthentication ns/name``) or
    ``default`` when none did.
    """

    mode: MutualTLSMode
    port_modes: FrozenMap[int, MutualTLSMode] = field(default_factory=FrozenMap)
    decided_by: str = "default"

    def for_port(self, target_port: int) -> MutualTLSMode:
        """The mode on one container port."""
        return self.port_modes.get(target_port, self.mode)


def _is_workload_level(pa: PeerAuthentication) -> bool:
    return pa.selector is not None and bool(pa.selector.match_labels)


def _first_set(items: Sequence[PeerAuthentication]) -> PeerAuthentication | None:
    """The oldest (first applied) policy of a level, if it sets a mode."""
    if not items:
        return None
    oldest = items[0]
    if oldest.mtls is None or oldest.mtls.mode is MutualTLSMode.UNSET:
        return None
    return oldest


def namespace_mtls_mode(
    namespace: str, pas: Sequence[PeerAuthentication], root_namespace: str
) -> MutualTLSMode:
    """The mode a namespace gets from the mesh and namespace policies (what auto-mTLS checks for
    DISABLE before tagging endpoints)."""
    mode = MutualTLSMode.PERMISSIVE
    for level in (
        [p for p in pas if p.namespace == root_namespace and not _is_workload_level(p)],
        [p for p in pas if p.namespace == namespace and not _is_workload_level(p)],
    ):
        chosen = _first_set(level)
        if chosen is not None and chosen.mtls is not None:
            mode = chosen.mtls.mode
    return mode


def effective_mtls(
    pod: Pod, pas: Sequence[PeerAuthentication], root_namespace: str = "istio-system"
) -> MtlsPolicy:
    """Resolve the PeerAuthentications (in apply order) that apply to ``pod``."""
    mode, decided_by = MutualTLSMode.PERMISSIVE, "default"
    mesh_level = [p for p in pas if p.namespace == root_namespace and not _is_workload_level(p)]
    ns_level = [
        p
        for p in pas
        if p.namespace == pod.namespace
        and pod.namespace != root_namespace
        and not _is_workload_level(p)
    ]
    workload_level = [
        p
        for p in pas
        if p.namespace == pod.namespace
        and _is_workload_level(p)
        and p.selector is not None
        and p.selector.matches(pod.labels)
    ]
    for level in (mesh_level, ns_level):
        chosen = _first_set(level)
        if chosen is not None and chosen.mtls is not None:
            mode, decided_by = (
                chosen.mtls.mode,
                f"PeerAuthentication {chosen.namespace}/{chosen.name}",
            )
    ports: dict[int, MutualTLSMode] = {}
    if workload_level:
        wl = workload_level[0]
        if wl.mtls is not None and wl.mtls.mode is not MutualTLSMode.UNSET:
            mode, decided_by = wl.mtls.mode, f"PeerAuthentication {wl.namespace}/{wl.name}"
        for port, setting in wl.port_level_mtls.items():
            ports[int(port)] = mode if setting.mode is MutualTLSMode.UNSET else setting.mode
    return MtlsPolicy(mode=mode, port_modes=FrozenMap(ports), decided_by=decided_by)


def accepts(mode: MutualTLSMode, mtls: bool) -> bool:
    """Whether a port in ``mode`` accepts a connection that is (or is not) Istio mTLS."""
    if mode is MutualTLSMode.STRICT:
        return mtls
    if mode is MutualTLSMode.DISABLE:
        return not mtls
    return True


def connection_security_policy(mtls: bool) -> ConnectionSecurityPolicy:
    """The ``connection_security_policy`` label a server sidecar reports for an accepted hop."""
    return ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE


def tls_inspector() -> Json:
    """The listener filter that tells ``tls`` from ``raw_buffer`` (and reads ALPN and SNI); the
    ``virtualInbound`` listener needs it as soon as one chain matches on ``transport_protocol``."""
    return {"name": FILTER_TLS_INSPECTOR, "typed_config": typed(TLS_INSPECTOR)}


def downstream_tls_context(*, http: bool = True) -> Json:
    """Istio's server-side mTLS transport socket (``authn/utils/utils.go``)."""
    context = {
        "alpn_protocols": list(_HTTP_SERVER_ALPNS if http else _TCP_SERVER_ALPNS),
        "combined_validation_context": {
            "default_validation_context": {},
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
            DOWNSTREAM_TLS_CONTEXT, common_tls_context=context, require_client_certificate=True
        ),
    }


NetworkFilters = Callable[[bool], list[Json]]
"""``(mtls) -> the network filters of one chain`` (an HCM or a tcp_proxy, plus any network RBAC);
``mtls`` says whether the chain terminates Istio mTLS."""


def _chain(name: str, match: Json, filters: list[Json], socket: Json | None = None) -> Json:
    chain: Json = {"filter_chain_match": match, "filters": filters, "name": name}
    if socket is not None:
        chain["transport_socket"] = socket
    return chain


def inbound_filter_chains(
    mode: MutualTLSMode,
    *,
    target_port: int,
    match_port: int,
    http: bool,
    network_filters: NetworkFilters,
) -> list[Json]:
    """The ``virtualInbound`` chains of one container port in ``mode`` (reference §9.3 table).

    ``match_port`` is the ``destination_port`` matched (the target port on Kubernetes, the
    allocated port on the local runner). Every chain is named ``0.0.0.0_<targetPort>``, as
    istiod names them (Envoy accepts a name repeated on several chains).
    """
    name = listener_name("0.0.0.0", target_port)
    tls_match = {"destination_port": match_port, "transport_protocol": "tls"}
    plain_match = {"destination_port": match_port, "transport_protocol": "raw_buffer"}
    if mode is MutualTLSMode.UNSET:
        mode = MutualTLSMode.PERMISSIVE
    if mode is MutualTLSMode.DISABLE:
        return [_chain(name, plain_match, network_filters(False))]
    if mode is MutualTLSMode.STRICT:
        return [_chain(name, tls_match, network_filters(True), downstream_tls_context(http=http))]
    # PERMISSIVE: HTTP and TCP ports both take every Istio ALPN over mTLS (istiod's
    # allIstioMtlsALPNs); only a sniffed port splits them (sniffed_inbound_filter_chains)
    alpns = list(ISTIO_MTLS_ALPNS)
    chains = [
        _chain(
            name,
            {**tls_match, "application_protocols": alpns},
            network_filters(True),
            downstream_tls_context(http=http),
        )
    ]
    if not http:  # the app's own TLS passes through untouched
        chains.append(_chain(name, tls_match, network_filters(False)))
    chains.append(_chain(name, plain_match, network_filters(False)))
    return chains


@dataclass(frozen=True, slots=True)
class AutoChainNames:
    """The names of the chains of one ``ListenerProtocolAuto`` option set: HTTP over mTLS,
    plaintext HTTP, TCP over mTLS, plaintext TCP, other TLS as opaque TCP. istiod gives a
    service port's chains one name (``0.0.0.0_<targetPort>``) and the passthrough ones two
    (``virtualInbound-catchall-http``, ``virtualInbound``)."""

    http_mtls: str
    http_plain: str
    tcp_mtls: str
    tcp_plain: str
    tls_passthrough: str


def auto_filter_chains(
    mode: MutualTLSMode,
    *,
    match: Json,
    names: AutoChainNames,
    http_filters: list[Json],
    tcp_filters: list[Json],
) -> list[Json]:
    """The chains of a port whose protocol is unknown, in ``mode``: an HTTP and a TCP path, as
    istiod's ``inbound*FilterChainMatchOptions`` for ``ListenerProtocolAuto``. ``match`` is the
    rest of every chain's ``filter_chain_match`` (``destination_port``, or nothing for the
    passthrough chains). HTTP chains match on the ALPN (``istio-http/*`` over mTLS,
    ``http/1.1``/``h2c`` from ``http_inspector`` in plaintext) and end in ``http_filters`` (the
    HCM); the TCP chains take the rest and end in ``tcp_filters`` (``tcp_proxy``).

    * PERMISSIVE: HTTP over mTLS, plaintext HTTP, TCP over mTLS (``istio-peer-exchange``,
      ``istio``), plaintext TCP, and any other TLS (the app's own) as opaque TCP.
    * STRICT: HTTP over mTLS, then any TLS terminated as mTLS and proxied as TCP.
    * DISABLE: plaintext HTTP, plaintext TCP.
    """
    tls = {**match, "transport_protocol": "tls"}
    plain = {**match, "transport_protocol": "raw_buffer"}
    http_mtls = _chain(
        names.http_mtls,
        {**tls, "application_protocols": list(_HTTP_MTLS_ALPNS)},
        http_filters,
        downstream_tls_context(http=True),
    )
    http_plain = _chain(
        names.http_plain,
        {**plain, "application_protocols": list(_PLAINTEXT_HTTP_ALPNS)},
        http_filters,
    )
    tcp_plain = _chain(names.tcp_plain, plain, tcp_filters)
    if mode is MutualTLSMode.STRICT:
        return [
            http_mtls,
            _chain(names.tcp_mtls, tls, tcp_filters, downstream_tls_context(http=False)),
        ]
    if mode is MutualTLSMode.DISABLE:
        return [http_plain, tcp_plain]
    return [
        http_mtls,
        http_plain,
        _chain(
            names.tcp_mtls,
            {**tls, "application_protocols": list(_TCP_MTLS_ALPNS)},
            tcp_filters,
            downstream_tls_context(http=False),
        ),
        tcp_plain,
        _chain(names.tls_passthrough, tls, tcp_filters),
    ]


def sniffed_inbound_filter_chains(
    mode: MutualTLSMode,
    *,
    target_port: int,
    match_port: int,
    http_filters: list[Json],
    tcp_filters: list[Json],
) -> list[Json]:
    """The ``virtualInbound`` chains of a container port whose protocol is unknown (sniffed):
    :func:`auto_filter_chains` on its destination port, every chain named
    ``0.0.0.0_<targetPort>`` as istiod names them."""
    name = listener_name("0.0.0.0", target_port)
    names = AutoChainNames(
        http_mtls=name, http_plain=name, tcp_mtls=name, tcp_plain=name, tls_passthrough=name
    )
    return auto_filter_chains(
        mode,
        match={"destination_port": match_port},
        names=names,
        http_filters=http_filters,
        tcp_filters=tcp_filters,
    )
