"""Listeners compiled for execution: filter chains selected the way Envoy's FilterChainMatch does,
and the network filters of each chain (an HTTP connection manager with its HTTP filters and route
configuration, or ``tcp_proxy`` with network RBAC in front of it).

What a connection offers to the match is worked out by the listener filters, as in Envoy: the
transport protocol is ``tls`` only when ``tls_inspector`` runs and the bytes are TLS (otherwise
``raw_buffer``, Envoy's default), the application protocols are the TLS ALPN the client offered
(seen by ``tls_inspector``) or, for plaintext HTTP, ``http/1.1`` when ``http_inspector`` runs
(istiod's sniffed ports match ``http/1.1`` / ``h2c``); nothing otherwise. A listener filter's
``filter_disabled`` predicate (istiod's per-port inspectors on ``virtualInbound``) turns it off
for the destination ports it matches: there a TLS connection stays ``raw_buffer``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api import type_urls as tu
from sim.xds.values import listener_port, typed_config

__all__ = [
    "HTTP1",
    "ChainMatch",
    "FilterChainSpec",
    "HcmSpec",
    "HttpFilterSpec",
    "ListenerSpec",
    "PortPredicate",
]

Json = Mapping[str, Any]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HTTP1 = "http/1.1"
"""The application protocol ``http_inspector`` reports for an HTTP/1.x request."""
EXECUTED_HTTP_FILTERS = frozenset({tu.FILTER_JWT_AUTHN, tu.FILTER_RBAC, tu.FILTER_LOCAL_RATELIMIT})
"""HTTP filters the simulator runs in front of the router, in the HCM's order (the fault filter
runs from the route's per-filter config; the peer-metadata header mutation, CORS and the router
itself have nothing to decide here)."""


def _networks(ranges: Sequence[Json] | None) -> tuple[IpNetwork, ...]:
    """Envoy ``CidrRange`` values (``address_prefix``, ``prefix_len``) as networks."""
    return tuple(
        ipaddress.ip_network(f"{r['address_prefix']}/{r.get('prefix_len', 32)}", strict=False)
        for r in ranges or ()
    )


@dataclass(frozen=True, slots=True)
class PortPredicate:
    """A ``ListenerFilterChainMatchPredicate`` over the destination port (``filter_disabled``):
    ``destination_port_range`` [start, end), ``or_match``, ``and_match``, ``not_match`` and
    ``any_match``, the forms istiod writes."""

    kind: str
    start: int = 0
    end: int = 0
    rules: tuple[PortPredicate, ...] = ()

    @classmethod
    def from_envoy(cls, rule: Mapping[str, Any]) -> PortPredicate:
        """Compile one predicate; a form the sim does not know is refused."""
        if "destination_port_range" in rule:
            r = rule["destination_port_range"]
            return cls("range", int(r.get("start", 0)), int(r.get("end", 0)))
        for kind in ("or_match", "and_match"):
            if kind in rule:
                rules = tuple(cls.from_envoy(x) for x in rule[kind].get("rules") or ())
                return cls(kind, rules=rules)
        if "not_match" in rule:
            return cls("not_match", rules=(cls.from_envoy(rule["not_match"]),))
        if rule.get("any_match"):
            return cls("any_match")
        raise ValueError(f"filter_disabled: predicate {sorted(rule)} is not modelled")

    def matches(self, port: int) -> bool:
        """Whether a connection to destination ``port`` satisfies the predicate."""
        if self.kind == "range":
            return self.start <= port < self.end
        if self.kind == "or_match":
            return any(r.matches(port) for r in self.rules)
        if self.kind == "and_match":
            return all(r.matches(port) for r in self.rules)
        if self.kind == "not_match":
            return not self.rules[0].matches(port)
        return True  # any_match


def _disabled(listener_filter: Mapping[str, Any]) -> PortPredicate | None:
    rule = listener_filter.get("filter_disabled")
    return PortPredicate.from_envoy(rule) if rule else None


@dataclass(frozen=True, slots=True)
class ChainMatch:
    """A ``filter_chain_match`` (unset criteria match anything)."""

    destination_port: int | None = None
    prefix_ranges: tuple[IpNetwork, ...] = ()
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    application_protocols: tuple[str, ...] = ()

    @classmethod
    def from_envoy(cls, match: Mapping[str, Any]) -> ChainMatch:
        """Compile ``filter_chain_match``."""
        port = match.get("destination_port")
        return cls(
            destination_port=int(port) if port is not None else None,
            prefix_ranges=_networks(match.get("prefix_ranges")),
            server_names=tuple(str(n) for n in match.get("server_names") or ()),
            transport_protocol=str(match.get("transport_protocol", "")),
            application_protocols=tuple(str(a) for a in match.get("application_protocols") or ()),
        )

    def describe(self) -> str:
        """What the match asks for, as ``istioctl proxy-config listeners`` prints it."""
        parts = []
        if self.server_names:
            parts.append("SNI: " + ",".join(self.server_names))
        if self.transport_protocol:
            parts.append(f"Trans: {self.transport_protocol}")
        if self.application_protocols:
            parts.append("App: " + ",".join(self.application_protocols))
        if self.prefix_ranges:
            parts.append("Addr: " + ",".join(str(n) for n in self.prefix_ranges))
        if self.destination_port is not None:
            parts.append(f"Port: {self.destination_port}")
        return "; ".join(parts) or "ALL"


@dataclass(frozen=True, slots=True)
class HttpFilterSpec:
    """One entry of an HCM's ``http_filters``: its name and ``typed_config``."""

    name: str
    config: Json


@dataclass(frozen=True, slots=True)
class HcmSpec:
    """An HTTP connection manager: the route configuration it serves (RDS name, or the name of
    an inline ``route_config``) and its HTTP filters in order."""

    stat_prefix: str
    route_config: str
    inline_routes: Json | None
    filters: tuple[HttpFilterSpec, ...]
    executed: tuple[HttpFilterSpec, ...]
    """The filters the simulator runs before the router (jwt_authn, RBAC, local_ratelimit)."""
    fault: bool
    """The fault filter is in the chain (a route's fault config needs it to take effect)."""
    edge: bool = False
    """``use_remote_address`` (a gateway): the HCM sets ``x-forwarded-proto`` from the
    downstream connection (``https`` when it was TLS)."""
    new_request_id: bool = False
    """An edge HCM that gives an external caller's request a new ``x-request-id``
    (``generate_request_id`` on, ``preserve_external_request_id`` off: Envoy's defaults)."""
    internal: tuple[IpNetwork, ...] = ()
    """``internal_address_config.cidr_ranges``: callers from these addresses are internal
    (their ``x-request-id`` is kept). Envoy 1.40 treats no address as internal without it."""

    def regenerates_request_id(self, caller: str) -> bool:
        """Whether a request from ``caller`` (its address; "" = outside the mesh) gets a new
        ``x-request-id`` here."""
        if not self.new_request_id:
            return False
        if not caller or not self.internal:
            return True
        try:
            address = ipaddress.ip_address(caller)
        except ValueError:
            return True
        return not any(address in net for net in self.internal)

    @classmethod
    def from_envoy(cls, config: Json) -> HcmSpec:
        """Compile an HCM ``typed_config``."""
        rds = config.get("rds") or {}
        inline = config.get("route_config")
        edge = bool(config.get("use_remote_address"))
        filters = tuple(
            HttpFilterSpec(str(f.get("name", "")), typed_config(f))
            for f in config.get("http_filters") or ()
        )
        return cls(
            stat_prefix=str(config.get("stat_prefix", "")),
            route_config=str(
                rds.get("route_config_name") or (inline.get("name", "") if inline else "")
            ),
            inline_routes=inline,
            filters=filters,
            executed=tuple(f for f in filters if f.name in EXECUTED_HTTP_FILTERS),
            fault=any(f.name == tu.FILTER_FAULT for f in filters),
            edge=edge,
            new_request_id=edge
            and config.get("generate_request_id", True) is not False
            and not config.get("preserve_external_request_id", False),
            internal=_networks((config.get("internal_address_config") or {}).get("cidr_ranges")),
        )


@dataclass(frozen=True, slots=True)
class FilterChainSpec:
    """One filter chain: its match and the network filters the sim executes (``tcp_proxy``
    with its cluster or weighted clusters, network RBAC; or an HTTP connection manager)."""

    name: str
    match: ChainMatch
    clusters: tuple[tuple[str, int], ...] = ()
    total_weight: int = 0
    stat_prefix: str = ""
    rbac: tuple[Json, ...] = ()
    hcm: HcmSpec | None = None
    terminates_tls: bool = False
    requires_client_certificate: bool = False
    """The chain's TLS context asks the client for a certificate (MUTUAL, ISTIO_MUTUAL)."""
    certificate_secret: str = ""
    """SDS name of the certificate the chain presents (``kubernetes://<credentialName>``,
    ``default``); "" when given inline or not at all."""
    validation_secret: str = ""
    """SDS name of the CA client certificates are checked against (``...-cacert``, ``ROOTCA``)."""
    logs: bool = False
    """The chain's ``tcp_proxy`` writes an access log (Envoy logs a connection only then)."""

    @property
    def http(self) -> bool:
        """The chain ends in an HTTP connection manager."""
        return self.hcm is not None

    @classmethod
    def from_envoy(cls, chain: Mapping[str, Any]) -> FilterChainSpec:
        """Compile one entry of ``filter_chains`` (or ``default_filter_chain``)."""
        clusters: tuple[tuple[str, int], ...] = ()
        stat_prefix = ""
        rbac: list[Json] = []
        hcm: HcmSpec | None = None
        logs = False
        for f in chain.get("filters") or ():
            name = f.get("name")
            cfg = typed_config(f)
            if name == tu.FILTER_TCP_PROXY:
                stat_prefix = str(cfg.get("stat_prefix", ""))
                logs = bool(cfg.get("access_log"))
                if "weighted_clusters" in cfg:
                    clusters = tuple(
                        (str(c["name"]), int(c.get("weight", 0)))
                        for c in cfg["weighted_clusters"].get("clusters", ())
                    )
                else:
                    clusters = ((str(cfg.get("cluster", "")), 1),)
            elif name == tu.FILTER_NETWORK_RBAC:
                rbac.append(f)
            elif name == tu.FILTER_HCM:
                hcm = HcmSpec.from_envoy(cfg)
                logs = bool(cfg.get("access_log"))
        return cls(
            name=str(chain.get("name", "")),
            match=ChainMatch.from_envoy(chain.get("filter_chain_match") or {}),
            clusters=clusters,
            total_weight=sum(w for _, w in clusters),
            stat_prefix=stat_prefix,
            rbac=tuple(rbac),
            hcm=hcm,
            terminates_tls=bool(chain.get("transport_socket")),
            requires_client_certificate=bool(
                typed_config(chain["transport_socket"]).get("require_client_certificate")
                if chain.get("transport_socket")
                else False
            ),
            **_sds_names(chain.get("transport_socket")),
            logs=logs,
        )


def _sds_names(socket: Mapping[str, Any] | None) -> dict[str, str]:
    """The SDS names of a downstream TLS context's certificate and validation context."""
    if not socket:
        return {}
    common = typed_config(socket).get("common_tls_context") or {}
    certs = common.get("tls_certificate_sds_secret_configs") or ()
    combined = common.get("combined_validation_context") or {}
    validation = (
        combined.get("validation_context_sds_secret_config")
        or common.get("validation_context_sds_secret_config")
        or {}
    )
    return {
        "certificate_secret": str(certs[0].get("name", "")) if certs else "",
        "validation_secret": str(validation.get("name", "")),
    }


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # a host name: matches no prefix range


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A listener's filter chains, selected the way Envoy's FilterChainMatch does."""

    name: str
    address: str
    port: int
    chains: tuple[FilterChainSpec, ...]
    default_chain: FilterChainSpec | None = None
    tls_inspector: bool = False
    http_inspector: bool = False
    use_original_dst: bool = False
    tls_disabled: PortPredicate | None = None
    """``tls_inspector``'s ``filter_disabled``: the destination ports it does not run on."""
    http_disabled: PortPredicate | None = None
    """``http_inspector``'s ``filter_disabled``."""

    @classmethod
    def from_envoy(cls, listener: Mapping[str, Any]) -> ListenerSpec:
        """Compile a Listener's filter chains and what its listener filters detect."""
        default = listener.get("default_filter_chain")
        by_name = {str(f.get("name", "")): f for f in listener.get("listener_filters") or ()}
        names = set(by_name)
        sock = (listener.get("address") or {}).get("socket_address") or {}
        return cls(
            name=str(listener.get("name", "")),
            address=str(sock.get("address", "")),
            port=listener_port(listener) or 0,
            chains=tuple(
                FilterChainSpec.from_envoy(c) for c in listener.get("filter_chains") or ()
            ),
            default_chain=FilterChainSpec.from_envoy(default) if default else None,
            tls_inspector=tu.FILTER_TLS_INSPECTOR in names,
            http_inspector=tu.FILTER_HTTP_INSPECTOR in names,
            use_original_dst=bool(listener.get("use_original_dst")),
            tls_disabled=_disabled(by_name.get(tu.FILTER_TLS_INSPECTOR, {})),
            http_disabled=_disabled(by_name.get(tu.FILTER_HTTP_INSPECTOR, {})),
        )

    def inspects_tls(self, port: int) -> bool:
        """``tls_inspector`` runs on a connection to destination ``port``."""
        return self.tls_inspector and not (
            self.tls_disabled is not None and self.tls_disabled.matches(port)
        )

    def inspects_http(self, port: int) -> bool:
        """``http_inspector`` runs on a connection to destination ``port``."""
        return self.http_inspector and not (
            self.http_disabled is not None and self.http_disabled.matches(port)
        )

    def detect(
        self, *, tls: bool, alpn: Sequence[str] = (), http: bool = False, port: int = 0
    ) -> tuple[str, tuple[str, ...]]:
        """(transport protocol, application protocols) the listener filters report for a
        connection to destination ``port`` that is TLS offering ``alpn`` (``tls``) or plaintext
        (HTTP/1.1 when ``http``). TLS that ``tls_inspector`` does not look at is
        ``raw_buffer`` with no ALPN (``http_inspector`` finds no HTTP in a ClientHello)."""
        if tls:
            return ("tls", tuple(alpn)) if self.inspects_tls(port) else ("raw_buffer", ())
        return "raw_buffer", ((HTTP1,) if http and self.inspects_http(port) else ())

    def select(
        self,
        ip: str,
        port: int,
        transport: str = "raw_buffer",
        alpn: Sequence[str] = (),
        sni: str = "",
    ) -> FilterChainSpec | None:
        """The chain a connection to ``ip:port`` takes, or None (Envoy closes it).

        Envoy narrows the chains criterion by criterion, most specific first: destination port,
        destination IP (longest prefix), server name (the SNI ``tls_inspector`` read: an exact
        name first, then the longest ``*.suffix``), transport protocol (``tls`` /
        ``raw_buffer``), ALPN. At each step the chains that name the value win; only when none
        does, the chains that leave the criterion unset go on. A port with its own chains
        therefore never falls back to port-less chains."""
        stage = [c for c in self.chains if c.match.destination_port == port] or [
            c for c in self.chains if c.match.destination_port is None
        ]
        addr = _address(ip)
        best = -1
        by_ip: list[FilterChainSpec] = []
        for c in stage:
            for net in c.match.prefix_ranges:
                if addr is not None and addr.version == net.version and addr in net:
                    if net.prefixlen > best:
                        best, by_ip = net.prefixlen, [c]
                    elif net.prefixlen == best:
                        by_ip.append(c)
        stage = by_ip or [c for c in stage if not c.match.prefix_ranges]
        stage = _by_server_name(stage, sni if self.inspects_tls(port) else "")
        stage = [c for c in stage if c.match.transport_protocol == transport] or [
            c for c in stage if not c.match.transport_protocol
        ]
        offered = set(alpn)
        stage = [c for c in stage if offered & set(c.match.application_protocols)] or [
            c for c in stage if not c.match.application_protocols
        ]
        return stage[0] if stage else self.default_chain


def _by_server_name(chains: list[FilterChainSpec], sni: str) -> list[FilterChainSpec]:
    """Envoy's server-name step: chains naming ``sni`` exactly, else those whose longest
    ``*.suffix`` covers it, else those without ``server_names``."""
    if sni:
        exact = [c for c in chains if sni in c.match.server_names]
        if exact:
            return exact
        best = 0
        found: list[FilterChainSpec] = []
        for c in chains:
            for name in c.match.server_names:
                if name.startswith("*.") and sni.endswith(name[1:]) and len(name) >= best:
                    if len(name) > best:
                        best, found = len(name), []
                    found.append(c)
        if found:
            return found
    return [c for c in chains if not c.match.server_names]
