"""Listeners as istiod shapes them for a sidecar or a gateway.

Sidecar: ``virtualOutbound`` (15001, original-destination hand-off, catch-all to Passthrough or
BlackHole), one ``0.0.0.0_<port>`` HTTP listener per outbound HTTP port (RDS named ``"<port>"``,
not bound itself: traffic arrives through the capture listener), one ``<VIP>_<port>`` TCP
listener per TCP service port and VIP (``0.0.0.0_<port>`` for a service without one);
``virtualInbound`` (15006) is :mod:`mesh.envoy.virtual_inbound`.
Gateway: one bound ``0.0.0.0_<targetPort>`` per server port with RDS ``http.<targetPort>``.
Every listener sets ``enable_reuse_port: false`` so a port clash fails loudly instead of silently
sharing the port with another Envoy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy.accesslog import (
    SOURCE_APP_HEADER,
    SOURCE_NAMESPACE_HEADER,
    SOURCE_VERSION_HEADER,
    SOURCE_WORKLOAD_HEADER,
    LogIdentity,
    access_log,
    json_format,
    tcp_json_format,
)
from mesh.envoy.alpn import alpn_filter
from mesh.envoy.clusters import ADS
from mesh.envoy.ports import ListenerAddress
from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    PASSTHROUGH_FILTER_CHAIN,
    VIRTUAL_OUTBOUND,
    VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN,
    VIRTUAL_OUTBOUND_CATCHALL_CHAIN,
    listener_name,
)
from mesh.envoy_api.values import socket_address
from mesh.records import Reporter
from mesh.security.peer_authn import tls_inspector

__all__ = [
    "INBOUND_CAPTURE_PORT",
    "OUTBOUND_CAPTURE_PORT",
    "HttpListenerSpec",
    "TcpChain",
    "TcpLog",
    "http_connection_manager",
    "http_inspector",
    "inbound_http_filters",
    "outbound_http_listener",
    "sniffed_listener",
    "tcp_listener",
    "tcp_proxy",
    "virtual_outbound",
]

"""istiod's name for the default chain of an outbound listener whose chains all match on a
destination (it carries the outbound traffic policy's catch-all)."""
OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006
HTTP_APPLICATION_PROTOCOLS: tuple[str, ...] = ("http/1.1", "h2c")
"""What ``http_inspector`` reports for plaintext HTTP/1.1 and HTTP/2 (prior knowledge), the
application protocols istiod's sniffed HTTP chains match (``plaintextHTTPALPNs``; ``http/1.0``
only with ``PILOT_HTTP10``)."""


@dataclass(frozen=True, slots=True)
class TcpLog:
    """Where and as whom a ``tcp_proxy`` writes its per-connection JSON line (the same file as
    the proxy's HTTP log)."""

    path: str
    me: LogIdentity
    reporter: Reporter
    destination_service: str = ""

    def access_log(self) -> list[dict[str, Any]]:
        """The filter's ``access_log`` list."""
        fmt = tcp_json_format(self.reporter, self.me, self.destination_service)
        return access_log(self.path, fmt)


@dataclass(frozen=True, slots=True)
class TcpChain:
    """One outbound TCP filter chain: ``tcp_proxy`` to ``cluster`` (or ``weighted``, VirtualService
    ``tcp``/``tls`` routes), for connections to ``cidr`` (a ServiceEntry CIDR on a wildcard
    listener) and/or whose TLS SNI is one of ``server_names`` (a TLS/HTTPS port without a VIP,
    a VirtualService ``tls`` match), or to any address of its listener (neither)."""

    cluster: str
    weighted: tuple[tuple[str, int], ...] = ()
    cidr: str = ""
    server_names: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        """The chain has a ``filter_chain_match`` (else it takes whatever no other chain does)."""
        return bool(self.cidr or self.server_names)


def tcp_proxy(
    stat_prefix: str,
    cluster: str = "",
    weighted: Sequence[tuple[str, int]] = (),
    log: TcpLog | None = None,
) -> dict[str, Any]:
    """A ``tcp_proxy`` network filter to one cluster or weighted clusters, logging each
    connection when ``log`` is given."""
    body: dict[str, Any] = {"stat_prefix": stat_prefix}
    if log is not None:
        body["access_log"] = log.access_log()
    if weighted:
        body["weighted_clusters"] = {
            "clusters": [{"name": name, "weight": weight} for name, weight in weighted]
        }
    else:
        body["cluster"] = cluster
    return {"name": tu.FILTER_TCP_PROXY, "typed_config": tu.typed(tu.TCP_PROXY, **body)}


def _filter(name: str, type_url: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "typed_config": tu.typed(type_url, **fields)}


def _source_headers(me: LogIdentity) -> dict[str, Any]:
    """Tell the server sidecar who is calling (Istio's peer-metadata headers, in plain text)."""
    values = (
        (SOURCE_WORKLOAD_HEADER, me.workload),
        (SOURCE_NAMESPACE_HEADER, me.namespace),
        (SOURCE_APP_HEADER, me.app),
        (SOURCE_VERSION_HEADER, me.version),
    )
    return _filter(
        tu.FILTER_HEADER_MUTATION,
        tu.HEADER_MUTATION,
        mutations={
            "request_mutations": [
                {
                    "append": {
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        "header": {"key": key, "value": value},
                    }
                }
                for key, value in values
            ]
        },
    )


def outbound_http_filters(me: LogIdentity) -> list[dict[str, Any]]:
    """Client-side HTTP filters (a sidecar's outbound HCMs, a gateway's), in istiod's order:
    (peer metadata) -> ``istio.alpn`` (:mod:`mesh.envoy.alpn`) -> fault -> cors -> router."""
    return [
        _source_headers(me),
        alpn_filter(),
        _filter(tu.FILTER_FAULT, tu.FAULT),
        _filter(tu.FILTER_CORS, tu.CORS),
        _filter(tu.FILTER_ROUTER, tu.ROUTER),
    ]


def inbound_http_filters(security: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Server-side HTTP filters: the workload's security filters (jwt_authn, RBAC AUDIT/DENY/
    ALLOW, local_ratelimit, from :func:`mesh.security.inbound_security_filters`), then the
    router."""
    return [*security, _filter(tu.FILTER_ROUTER, tu.ROUTER)]


class HttpListenerSpec:
    """Inputs of one HTTP connection manager."""

    __slots__ = ("access_log_path", "filters", "inbound", "me", "route_config", "stat_prefix")

    def __init__(
        self,
        *,
        stat_prefix: str,
        route_config: str,
        filters: list[dict[str, Any]],
        me: LogIdentity,
        access_log_path: str,
        inbound: bool = False,
    ) -> None:
        self.stat_prefix = stat_prefix
        self.route_config = route_config
        self.filters = filters
        self.me = me
        self.access_log_path = access_log_path
        self.inbound = inbound


def http_connection_manager(
    spec: HttpListenerSpec, destination_service: str = "", *, gateway: bool = False
) -> dict[str, Any]:
    """The HCM network filter, routes by RDS name (inlined by a static bootstrap)."""
    reporter = Reporter.DESTINATION if spec.inbound else Reporter.SOURCE
    fmt = json_format(reporter, spec.me, destination_service, host_fallback=not gateway)
    body: dict[str, Any] = {
        "access_log": access_log(spec.access_log_path, fmt),
        "http_filters": spec.filters,
        "normalize_path": True,
        "rds": {"config_source": ADS, "route_config_name": spec.route_config},
        "stat_prefix": spec.stat_prefix,
        "stream_idle_timeout": "0s",
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "use_remote_address": False,
    }
    if spec.inbound:
        body["forward_client_cert_details"] = "APPEND_FORWARD"
        body["set_current_client_cert_details"] = {"dns": True, "subject": True, "uri": True}
    return {"name": tu.FILTER_HCM, "typed_config": tu.typed(tu.HCM, **body)}


def _address(where: ListenerAddress) -> dict[str, Any]:
    return socket_address(where.address, where.port)


def _base(name: str, where: ListenerAddress, direction: str) -> dict[str, Any]:
    listener: dict[str, Any] = {
        "name": name,
        "address": _address(where),
        "enable_reuse_port": False,
        "traffic_direction": direction,
    }
    if not where.bind:
        listener["bind_to_port"] = False
    return listener


def outbound_http_listener(
    port: int, where: ListenerAddress, spec: HttpListenerSpec
) -> dict[str, Any]:
    """``0.0.0.0_<port>`` with an HCM using RDS ``spec.route_config``."""
    listener = _base(listener_name("0.0.0.0", port), where, "OUTBOUND")
    listener["filter_chains"] = [{"filters": [http_connection_manager(spec)]}]
    return listener


def _prefix_range(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr, strict=False)
    return {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}


def tcp_listener(
    where: ListenerAddress,
    chains: Sequence[TcpChain],
    log: TcpLog,
    fallthrough: str,
    name: str = "",
) -> dict[str, Any]:
    """An outbound TCP listener as istiod builds it: ``<VIP>_<port>`` for a Service VIP (or a
    headless Service's endpoint IP), ``0.0.0.0_<port>`` for services without one.

    Each chain ``tcp_proxy``s to its service's cluster(s); a chain for a CIDR matches on
    ``prefix_ranges``, a chain for TLS on ``server_names`` (with ``tls_inspector``). A chain without a CIDR matches everything: alone it is the only chain,
    next to CIDR chains it becomes the ``default_filter_chain``. When every chain is for a CIDR,
    the default chain is ``PassthroughFilterChain``: connections to other addresses go to
    ``fallthrough`` (PassthroughCluster or BlackHoleCluster, the outbound traffic policy)."""
    listener = _base(name or listener_name(where.address, where.port), where, "OUTBOUND")
    built: list[dict[str, Any]] = []
    default: dict[str, Any] | None = None
    for chain in chains:
        fc: dict[str, Any] = {
            "filters": [tcp_proxy(chain.cluster, chain.cluster, chain.weighted, log)]
        }
        if chain.matches:
            match: dict[str, Any] = {}
            if chain.cidr:
                match["prefix_ranges"] = [_prefix_range(chain.cidr)]
            if chain.server_names:
                match["server_names"] = list(chain.server_names)
            fc["filter_chain_match"] = match
            built.append(fc)
        elif default is None:
            default = fc
    if any(c.server_names for c in chains):
        # SNI matches need the TLS inspector to read the ClientHello
        listener["listener_filters"] = [tls_inspector()]
    if not built:
        listener["filter_chains"] = [default] if default is not None else []
        return listener
    listener["filter_chains"] = built
    listener["default_filter_chain"] = default or {
        "filter_chain_match": {},
        "filters": [tcp_proxy(fallthrough, fallthrough, (), log)],
        "name": PASSTHROUGH_FILTER_CHAIN,
    }
    return listener


def http_inspector(disabled_ports: Sequence[int] = ()) -> dict[str, Any]:
    """The listener filter that sniffs plaintext HTTP (``http/1.1`` / ``h2c``) for chains that
    match on ``application_protocols``; off for ``disabled_ports`` (istiod's
    ``filter_disabled`` destination-port predicate on ``virtualInbound``)."""
    body: dict[str, Any] = {
        "name": tu.FILTER_HTTP_INSPECTOR,
        "typed_config": tu.typed(tu.HTTP_INSPECTOR),
    }
    ranges = [
        {"destination_port_range": {"start": p, "end": p + 1}} for p in sorted(set(disabled_ports))
    ]
    if len(ranges) == 1:
        body["filter_disabled"] = ranges[0]
    elif ranges:
        body["filter_disabled"] = {"or_match": {"rules": ranges}}
    return body


def sniffed_listener(
    where: ListenerAddress,
    chains: Sequence[TcpChain],
    log: TcpLog,
    fallthrough: str,
    *,
    spec: HttpListenerSpec,
    name: str,
) -> dict[str, Any]:
    """A sniffed port's ``<VIP>_<port>`` listener, as istiod builds one for a port whose protocol
    is unknown: ``http_inspector`` reads the first bytes; plaintext HTTP/1.1 or HTTP/2 matches
    the HCM chain (``application_protocols`` ``http/1.1``, ``h2c`` and ``transport_protocol``
    ``raw_buffer``; RDS ``<host>:<port>``), anything else (raw TCP, TLS) takes the
    ``default_filter_chain``: the service's ``tcp_proxy`` (VirtualService ``tcp`` routes apply).
    ``listener_filters_timeout`` is the mesh's ``protocolDetectionTimeout`` (0s by default: the
    inspector waits for the client's first bytes, so a server-first protocol hangs) and
    ``continue_on_listener_filters_timeout`` lets a timed-out connection go on as TCP."""
    listener = tcp_listener(where, chains, log, fallthrough, name)
    http_chain = {
        "filter_chain_match": {
            "application_protocols": list(HTTP_APPLICATION_PROTOCOLS),
            "transport_protocol": "raw_buffer",
        },
        "filters": [http_connection_manager(spec)],
    }
    if not chains:
        # an HTTP-only wildcard: anything that is not plaintext HTTP falls through to the
        # outbound traffic policy's cluster
        listener["filter_chains"] = [http_chain]
        listener["default_filter_chain"] = {
            "filter_chain_match": {},
            "filters": [tcp_proxy(fallthrough, fallthrough, (), log)],
            "name": PASSTHROUGH_FILTER_CHAIN,
        }
    elif "default_filter_chain" in listener:
        listener["filter_chains"] = [*listener["filter_chains"], http_chain]
    else:
        # the one match-all TCP chain becomes the default next to the HTTP chain
        listener["default_filter_chain"] = listener["filter_chains"][0]
        listener["filter_chains"] = [*listener["filter_chains"][1:], http_chain]
    listener["listener_filters"] = [*listener.get("listener_filters", ()), http_inspector()]
    listener["listener_filters_timeout"] = "0s"
    listener["continue_on_listener_filters_timeout"] = True
    return listener


def virtual_outbound(
    where: ListenerAddress, allow_any: bool, log: TcpLog | None = None
) -> dict[str, Any]:
    """The capture listener: loop guard on its own port, then catch-all TCP per outbound policy
    (a connection no outbound listener takes; logged like any ``tcp_proxy`` connection)."""
    catchall = PASSTHROUGH_CLUSTER if allow_any else BLACKHOLE_CLUSTER
    listener = _base(VIRTUAL_OUTBOUND, where, "OUTBOUND")
    listener["use_original_dst"] = True
    listener["filter_chains"] = [
        {
            "filter_chain_match": {"destination_port": OUTBOUND_CAPTURE_PORT},
            "filters": [tcp_proxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
            "name": VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN,
        },
        {
            "filters": [tcp_proxy(catchall, catchall, (), log)],
            "name": VIRTUAL_OUTBOUND_CATCHALL_CHAIN,
        },
    ]
    return listener


def gateway_hcm(spec: HttpListenerSpec) -> dict[str, Any]:
    """A gateway's HTTP connection manager (the edge: ``use_remote_address``).

    As istiod builds it: no ``internal_address_config`` (istiod sets one only from meshNetworks),
    Envoy's default ``generate_request_id`` and no ``preserve_external_request_id``. Envoy 1.40
    then counts no caller as internal, so every request, a sidecar's included, gets a new
    ``x-request-id`` here (a sidecar's HCM, without ``use_remote_address``, keeps the caller's)."""
    hcm = http_connection_manager(spec, gateway=True)
    hcm["typed_config"]["use_remote_address"] = True
    return hcm


def gateway_listener_base(port: int, where: ListenerAddress) -> dict[str, Any]:
    """A gateway port's bound ``0.0.0.0_<targetPort>`` listener, without filter chains."""
    return _base(listener_name("0.0.0.0", port), where, "OUTBOUND")


def gateway_listener(port: int, where: ListenerAddress, spec: HttpListenerSpec) -> dict[str, Any]:
    """A plain-HTTP gateway server port: a bound ``0.0.0.0_<targetPort>`` HTTP listener."""
    listener = gateway_listener_base(port, where)
    listener["filter_chains"] = [{"filters": [gateway_hcm(spec)]}]
    return listener
