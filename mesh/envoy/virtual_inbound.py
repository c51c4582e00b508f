"""``virtualInbound``, the sidecar's inbound capture listener, as istiod builds it
(``listener_inbound.go``: ``inboundVirtualListener``, ``buildInboundPassthroughChains``,
``populateListenerFilters``).

Its filter chains, in istiod's order:

1. ``virtualInbound-blackhole``: a connection to the capture port itself (a loop) goes to
   ``BlackHoleCluster``.
2. The passthrough chains, for ports no Service declares (istiod's ``ForPassthrough``): one set
   without ``destination_port`` in the workload's PeerAuthentication mode, plus one set per
   ``portLevelMtls`` port that no Service of the workload targets, matched on that port, in the
   port's mode. Each set is the ``Auto`` protocol's (:func:`mesh.security.peer_authn.
   auto_filter_chains`): the HTTP chains are named ``virtualInbound-catchall-http`` and end in an
   HTTP connection manager whose one route sends everything to ``InboundPassthroughCluster``
   (route configuration ``InboundPassthroughCluster``, virtual host ``inbound|http|0``), the TCP
   chains are named ``virtualInbound`` and ``tcp_proxy`` to ``InboundPassthroughCluster``.
   PERMISSIVE builds five (HTTP over mTLS, plaintext HTTP, TCP over mTLS, plaintext TCP, other
   TLS as opaque TCP), STRICT two (both over mTLS), DISABLE two (both plaintext). istiod repeats
   these names on several chains; Envoy 1.40 accepts that.
3. The chains of each container port a Service targets (``0.0.0.0_<targetPort>``).

Listener filters: ``original_dst``; ``tls_inspector`` where a chain matches
``transport_protocol: tls``; ``http_inspector`` (after it) where a chain matches ``http/1.1`` or
``h2c``. Both are decided per destination port, port 0 standing for the passthrough chains: when
the passthrough chains need an inspector it runs everywhere except on the declared ports that do
not (``filter_disabled`` with their port ranges), otherwise only on the ports that do. So under
DISABLE no ``tls_inspector`` looks at a DISABLE port, a TLS connection there is ``raw_buffer``
and its bytes pass through as plaintext TCP, as in Istio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mesh.envoy.listeners import (
    HTTP_APPLICATION_PROTOCOLS,
    INBOUND_CAPTURE_PORT,
    HttpListenerSpec,
    TcpLog,
    _address,
    _base,
    http_connection_manager,
    http_inspector,
    tcp_proxy,
)
from mesh.envoy.ports import ListenerAddress
from mesh.envoy.route_config import inbound_default_route
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    VIRTUAL_INBOUND,
    VIRTUAL_INBOUND_BLACKHOLE_CHAIN,
    VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN,
    inbound_vhost_name,
)
from mesh.security.peer_authn import AutoChainNames, MtlsPolicy, auto_filter_chains, tls_inspector

__all__ = [
    "PASSTHROUGH_NAMES",
    "inbound_passthrough_chains",
    "passthrough_modes",
    "passthrough_route_config",
    "virtual_inbound",
]

Json = dict[str, Any]

PASSTHROUGH_NAMES = AutoChainNames(
    http_mtls=VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN,
    http_plain=VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN,
    tcp_mtls=VIRTUAL_INBOUND,
    tcp_plain=VIRTUAL_INBOUND,
    tls_passthrough=VIRTUAL_INBOUND,
)
"""istiod's names for the passthrough chains (``inboundChainConfig.Name`` with
``passthrough``): one for the HTTP ones, one for the TCP ones."""

PASSTHROUGH_PORT = 0
"""The service port istiod gives the passthrough chains (``virtualInbound``, port 0): their
virtual host is ``inbound|http|0`` and their decorator ``:0/*``."""


def passthrough_modes(policy: MtlsPolicy, service_targets: Sequence[int]) -> list[tuple[int, Any]]:
    """istiod's ``ForPassthrough``: ``(0, workload mode)`` (no port match), then ``(port, mode)``
    for every ``portLevelMtls`` port that no Service of the workload targets (a declared port's
    own chains already carry its mode)."""
    out: list[tuple[int, Any]] = [(0, policy.mode)]
    declared = set(service_targets)
    out += [(p, m) for p, m in sorted(policy.port_modes.items()) if p not in declared]
    return out


def passthrough_route_config(istio_version: str) -> Json:
    """``InboundPassthroughCluster``: the route configuration of the passthrough HTTP chains,
    one ``*`` virtual host ``inbound|http|0`` whose default inbound route sends everything to
    ``InboundPassthroughCluster`` (the original destination: the app's port)."""
    route = inbound_default_route(
        INBOUND_PASSTHROUGH_CLUSTER, f":{PASSTHROUGH_PORT}/*", istio_version
    )
    return {
        "name": INBOUND_PASSTHROUGH_CLUSTER,
        "validate_clusters": False,
        "virtual_hosts": [
            {"domains": ["*"], "name": inbound_vhost_name(PASSTHROUGH_PORT), "routes": [route]}
        ],
    }


def inbound_passthrough_chains(
    policy: MtlsPolicy,
    service_targets: Sequence[int],
    *,
    http: HttpListenerSpec,
    tcp_security: Sequence[Json],
    log: TcpLog,
) -> list[Json]:
    """The passthrough chains of one workload (see the module docstring). ``http`` is the
    passthrough HCM's spec (its HTTP filters: the workload's security filters, then the router),
    ``tcp_security`` the network RBAC filters in front of the TCP chains' ``tcp_proxy``."""
    http_filters = [http_connection_manager(http)]
    tcp_filters = [
        *tcp_security,
        tcp_proxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, (), log),
    ]
    chains: list[Json] = []
    for port, mode in passthrough_modes(policy, service_targets):
        chains += auto_filter_chains(
            mode,
            match={"destination_port": port} if port else {},
            names=PASSTHROUGH_NAMES,
            http_filters=http_filters,
            tcp_filters=tcp_filters,
        )
    return chains


def _inspected_ports(chains: Sequence[Json]) -> tuple[dict[int, bool], dict[int, bool]]:
    """Per destination port (0: chains without one), whether a chain there needs
    ``tls_inspector`` (matches ``tls``) and whether one needs ``http_inspector`` (matches
    ``http/1.1``/``h2c``): istiod's ``inspectors`` map."""
    tls: dict[int, bool] = {}
    http: dict[int, bool] = {}
    for chain in chains:
        match = chain.get("filter_chain_match", {})
        port = int(match.get("destination_port", 0))
        wants = any(a in HTTP_APPLICATION_PROTOCOLS for a in match.get("application_protocols", ()))
        tls[port] = tls.get(port, False) or match.get("transport_protocol") == "tls"
        http[port] = http.get(port, False) or wants
    return tls, http


def _port_ranges(ports: Sequence[int]) -> Json:
    ranges = [{"destination_port_range": {"start": p, "end": p + 1}} for p in sorted(ports)]
    return ranges[0] if len(ranges) == 1 else {"or_match": {"rules": ranges}}


def _tls_inspector(needs: dict[int, bool]) -> Json:
    """istiod's ``buildTLSInspector``: when the passthrough chains (port 0) need it, on every
    port but the declared ones that do not; otherwise only on the declared ones that do."""
    body = tls_inspector()
    if needs.get(0, False):
        off = [p for p, wants in needs.items() if p and not wants]
        if off:
            body["filter_disabled"] = _port_ranges(off)
    else:
        on = [p for p, wants in needs.items() if p and wants]
        if on:
            body["filter_disabled"] = {"not_match": _port_ranges(on)}
    return body


def virtual_inbound(
    where: ListenerAddress,
    chains: Sequence[Json],
    additional: Sequence[ListenerAddress] = (),
    passthrough: Sequence[Json] = (),
) -> Json:
    """``virtualInbound``: the blackhole loop guard, the ``passthrough`` chains
    (:func:`inbound_passthrough_chains`), then the per-port ``chains``; listener filters as istiod's
    ``populateListenerFilters`` (module docstring)."""
    listener = _base(VIRTUAL_INBOUND, where, "INBOUND")
    if additional:
        listener["additional_addresses"] = [{"address": _address(a)} for a in additional]
    listener["filter_chains"] = [
        {
            "filter_chain_match": {"destination_port": INBOUND_CAPTURE_PORT},
            "filters": [tcp_proxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
            "name": VIRTUAL_INBOUND_BLACKHOLE_CHAIN,
        },
        *passthrough,
        *chains,
    ]
    tls, http = _inspected_ports(listener["filter_chains"])
    filters: list[Json] = [
        {"name": tu.FILTER_ORIGINAL_DST, "typed_config": tu.typed(tu.ORIGINAL_DST)}
    ]
    if any(tls.values()):
        filters.append(_tls_inspector(tls))
    if any(http.values()):
        # after the TLS inspector: a connection it saw as TLS is not inspected for HTTP
        filters.append(http_inspector([p for p, wants in http.items() if not wants]))
    listener["listener_filters"] = filters
    listener["listener_filters_timeout"] = "0s"  # the mesh's protocolDetectionTimeout
    listener["continue_on_listener_filters_timeout"] = True
    return listener
