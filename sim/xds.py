"""Envoy v3 config (plain dicts, as ``mesh.envoy.translate`` emits them) compiled for execution.

The simulator never re-reads Istio YAML: it executes the listeners, route configurations,
clusters and ClusterLoadAssignments a proxy would receive from istiod. Parsing a dict on every
request would be slow, so each proxy's config is compiled once into small objects: a
:class:`RouteTable` per outbound port (virtual hosts indexed by domain, routes with their
matchers precompiled), and a :class:`ClusterSpec` per cluster (LB policy, circuit-breaker
thresholds, outlier detection, endpoints with the workload metadata istiod attaches).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.envoy.names import parse_cluster_name
from sim.matchers import HeaderMatcher, PathMatcher, QueryMatcher, header_matcher, query_matcher

__all__ = [
    "ChainMatch",
    "ClusterSpec",
    "EndpointSpec",
    "FaultSpec",
    "FilterChainSpec",
    "ListenerSpec",
    "MirrorSpec",
    "OutlierSpec",
    "ProxyTables",
    "RetrySpec",
    "RouteSpec",
    "RouteTable",
    "Thresholds",
    "VirtualHostSpec",
    "compile_proxy",
    "parse_duration",
]

MAX_UINT32 = 4294967295
FAULT_FILTER = "envoy.filters.http.fault"
_DENOMINATORS = {"HUNDRED": 100.0, "TEN_THOUSAND": 10_000.0, "MILLION": 1_000_000.0}
_REDIRECT_STATUS = {
    "MOVED_PERMANENTLY": 301,
    "FOUND": 302,
    "SEE_OTHER": 303,
    "TEMPORARY_REDIRECT": 307,
    "PERMANENT_REDIRECT": 308,
}


def parse_duration(value: Any, default: float = 0.0) -> float:
    """Envoy JSON duration (``"0.250s"``, ``"10s"``) or a number -> seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000.0
    return float(text.rstrip("s") or 0.0)


def fraction(value: Any, default: float = 1.0) -> float:
    """FractionalPercent (``{numerator, denominator}``) or ``runtime_fraction`` -> [0, 1]."""
    if value is None:
        return default
    if "default_value" in value:
        value = value["default_value"]
    numerator = float(value.get("numerator", 0))
    return min(1.0, numerator / _DENOMINATORS.get(value.get("denominator", "HUNDRED"), 100.0))


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """A route's ``retry_policy``: how many retries, on which outcomes, with which back-off."""

    num_retries: int
    retry_on: frozenset[str]
    retriable_status_codes: frozenset[int]
    per_try_timeout: float
    base_interval: float
    max_interval: float
    previous_hosts: bool
    host_selection_max_attempts: int

    @classmethod
    def from_envoy(cls, policy: Mapping[str, Any]) -> RetrySpec:
        """Compile ``route.retry_policy`` (Envoy's default back-off: 25 ms base, 10x cap)."""
        back_off = policy.get("retry_back_off") or {}
        base = parse_duration(back_off.get("base_interval"), 0.025)
        predicates = policy.get("retry_host_predicate") or ()
        return cls(
            num_retries=int(policy.get("num_retries", 1)),
            retry_on=frozenset(
                t.strip() for t in str(policy.get("retry_on", "")).split(",") if t.strip()
            ),
            retriable_status_codes=frozenset(
                int(c) for c in policy.get("retriable_status_codes", ())
            ),
            per_try_timeout=parse_duration(policy.get("per_try_timeout")),
            base_interval=base,
            max_interval=parse_duration(back_off.get("max_interval"), base * 10),
            previous_hosts=any("previous_hosts" in str(p.get("name", "")) for p in predicates),
            host_selection_max_attempts=int(policy.get("host_selection_retry_max_attempts", 1)),
        )

    def retries_status(self, status: int) -> bool:
        """Whether an upstream response with ``status`` is retriable under ``retry_on``."""
        on = self.retry_on
        if "5xx" in on and status >= 500:
            return True
        if "gateway-error" in on and status in (502, 503, 504):
            return True
        if "retriable-4xx" in on and status == 409:
            return True
        return "retriable-status-codes" in on and status in self.retriable_status_codes

    def retries_connect_failure(self) -> bool:
        """Connect failures (refused, connect timeout) are retried by these conditions."""
        return bool(self.retry_on & {"5xx", "gateway-error", "connect-failure", "reset"})

    def retries_reset(self) -> bool:
        """A connection closed before the response (``UC``) is retried by these conditions."""
        return bool(self.retry_on & {"5xx", "gateway-error", "reset"})

    def retries_per_try_timeout(self) -> bool:
        """A per-try timeout is retried only with ``5xx``/``gateway-error`` (or ``reset``)."""
        return bool(self.retry_on & {"5xx", "gateway-error", "reset"})


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """``typed_per_filter_config["envoy.filters.http.fault"]`` of a route."""

    delay_s: float = 0.0
    delay_fraction: float = 0.0
    abort_status: int = 0
    abort_grpc_status: int | None = None
    abort_fraction: float = 0.0

    @classmethod
    def from_envoy(cls, config: Mapping[str, Any]) -> FaultSpec:
        """Compile an HTTPFault (absent percentage = Envoy's 100 %; Istio always writes one)."""
        delay = config.get("delay") or {}
        abort = config.get("abort") or {}
        return cls(
            delay_s=parse_duration(delay.get("fixed_delay")),
            delay_fraction=fraction(delay.get("percentage")) if delay else 0.0,
            abort_status=int(abort.get("http_status", 200 if "grpc_status" in abort else 0)),
            abort_grpc_status=abort.get("grpc_status"),
            abort_fraction=fraction(abort.get("percentage")) if abort else 0.0,
        )


@dataclass(frozen=True, slots=True)
class MirrorSpec:
    """One ``request_mirror_policies`` entry."""

    cluster: str
    fraction: float


@dataclass(slots=True)
class RouteSpec:
    """One Envoy route: its matcher, its action and the filters configured on it."""

    name: str
    index: int
    path: PathMatcher
    headers: tuple[HeaderMatcher, ...]
    query: tuple[QueryMatcher, ...]
    action: str  # "route" | "redirect" | "direct_response" | "none"
    clusters: tuple[tuple[str, int], ...] = ()
    total_weight: int = 0
    cluster_header: str = ""
    timeout: float = 0.0
    retry: RetrySpec | None = None
    hash_policy: tuple[Mapping[str, Any], ...] = ()
    mirrors: tuple[MirrorSpec, ...] = ()
    fault: FaultSpec | None = None
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[re.Pattern[str], str] | None = None
    host_rewrite: str = ""
    request_headers_to_add: tuple[tuple[str, str, bool], ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    response_headers_to_add: tuple[tuple[str, str, bool], ...] = ()
    response_headers_to_remove: tuple[str, ...] = ()
    redirect: Mapping[str, Any] = field(default_factory=dict)
    direct_status: int = 0
    direct_body: str = ""
    decorator: str = ""
    config_source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    def matches(
        self, path: str, query: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> bool:
        """Envoy's RouteMatch: path matcher AND every header matcher AND every query matcher."""
        if not self.path.matches(path):
            return False
        for h in self.headers:
            if not h.matches(headers):
                return False
        if self.query:
            q = query or {}
            for m in self.query:
                if not m.matches(q):
                    return False
        return True


@dataclass(slots=True)
class VirtualHostSpec:
    """A virtual host: its domains and ordered routes (first match wins)."""

    name: str
    domains: tuple[str, ...]
    routes: list[RouteSpec]
    pseudo_headers: bool = False
    service_host: str = ""

    def __post_init__(self) -> None:
        host = self.name.rsplit(":", 1)[0]
        self.service_host = host if host.count(".") >= 2 else ""
        self.pseudo_headers = any(h.name.startswith(":") for r in self.routes for h in r.headers)

    def match(
        self, path: str, query: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> RouteSpec | None:
        """The first route whose match holds, or None (Envoy answers 404 NR)."""
        for r in self.routes:
            if r.matches(path, query, headers):
                return r
        return None


class RouteTable:
    """A RouteConfiguration: virtual hosts selected by the ``:authority`` (Host) header.

    Envoy's order: an exact domain, then the longest ``*.suffix`` wildcard, then the longest
    ``prefix.*`` wildcard, then ``*``. Istio sets ``ignore_port_in_host_matching``, so a
    ``:port`` suffix on the Host header is ignored.
    """

    def __init__(self, name: str, vhosts: Sequence[VirtualHostSpec], ignore_port: bool) -> None:
        self.name = name
        self.vhosts = list(vhosts)
        self.ignore_port = ignore_port
        self._exact: dict[str, VirtualHostSpec] = {}
        self._suffix: list[tuple[str, VirtualHostSpec]] = []
        self._prefix: list[tuple[str, VirtualHostSpec]] = []
        self._any: VirtualHostSpec | None = None
        for vh in self.vhosts:
            for domain in vh.domains:
                d = domain.lower()
                if d == "*":
                    self._any = self._any or vh
                elif d.startswith("*"):
                    self._suffix.append((d[1:], vh))
                elif d.endswith("*"):
                    self._prefix.append((d[:-1], vh))
                else:
                    self._exact.setdefault(d, vh)
        self._suffix.sort(key=lambda p: -len(p[0]))
        self._prefix.sort(key=lambda p: -len(p[0]))
        self._cache: dict[str, VirtualHostSpec | None] = {}

    def vhost(self, authority: str) -> VirtualHostSpec | None:
        """The virtual host serving ``authority`` (cached per distinct Host value)."""
        if authority in self._cache:
            return self._cache[authority]
        host = authority.lower()
        result = self._exact.get(host)
        if result is None and self.ignore_port and ":" in host:
            host = host.rsplit(":", 1)[0]
            result = self._exact.get(host)
        if result is None:
            result = next((vh for s, vh in self._suffix if host.endswith(s)), None)
        if result is None:
            result = next((vh for p, vh in self._prefix if host.startswith(p)), None)
        if result is None:
            result = self._any
        self._cache[authority] = result
        return result


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One ``lb_endpoint`` with istiod's ``istio`` metadata decoded."""

    address: str
    port: int
    weight: int
    priority: int
    locality: str
    pod: str
    workload: str
    namespace: str
    app: str
    version: str
    identity: str
    health: str = "HEALTHY"
    istio_tls: bool = False
    locality_weight: int = 0
    """The locality's ``load_balancing_weight`` (0 = none given)."""

    @property
    def host(self) -> str:
        """``address:port`` as ``%UPSTREAM_HOST%`` prints it."""
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``circuit_breakers.thresholds[DEFAULT]`` (Envoy's own defaults when absent)."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3


@dataclass(frozen=True, slots=True)
class OutlierSpec:
    """``outlier_detection`` with Envoy's defaults for unset fields."""

    consecutive_5xx: int = 5
    enforcing_consecutive_5xx: int = 100
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    consecutive_local_origin_failure: int = 5
    split_external_local_origin_errors: bool = False
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 10

    @classmethod
    def from_envoy(cls, od: Mapping[str, Any]) -> OutlierSpec:
        """Compile ``cluster.outlier_detection``."""
        base = parse_duration(od.get("base_ejection_time"), 30.0)
        return cls(
            consecutive_5xx=int(od.get("consecutive_5xx", 5)),
            enforcing_consecutive_5xx=int(od.get("enforcing_consecutive_5xx", 100)),
            consecutive_gateway_failure=int(od.get("consecutive_gateway_failure", 5)),
            enforcing_consecutive_gateway_failure=int(
                od.get("enforcing_consecutive_gateway_failure", 0)
            ),
            consecutive_local_origin_failure=int(od.get("consecutive_local_origin_failure", 5)),
            split_external_local_origin_errors=bool(
                od.get("split_external_local_origin_errors", False)
            ),
            interval=parse_duration(od.get("interval"), 10.0),
            base_ejection_time=base,
            max_ejection_time=max(parse_duration(od.get("max_ejection_time"), 300.0), base),
            max_ejection_percent=int(od.get("max_ejection_percent", 10)),
        )


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster as the simulator executes it."""

    name: str
    type: str
    lb_policy: str
    thresholds: Thresholds
    outlier: OutlierSpec | None
    panic_threshold: float
    endpoints: tuple[EndpointSpec, ...]
    ring_size: int = 1024
    maglev_size: int = 65537
    service_host: str = ""
    subset: str = ""
    connect_timeout: float = 10.0
    mtls: bool = False
    max_requests_per_connection: int = 0
    istio_mtls: str = ""
    """Istio mTLS to the endpoints: ``all`` (a ``transport_socket`` with the SDS ``default``
    certificate: DestinationRule ISTIO_MUTUAL), ``auto`` (istiod's ``tlsMode-istio`` socket
    match: endpoints tagged ``tlsMode: istio``) or ``""`` (plaintext, or TLS that is not
    Istio's)."""

    priorities: tuple[int, ...] = (0,)
    """Distinct endpoint priorities, best first."""
    locality_weighted: bool = False
    """``common_lb_config.locality_weighted_lb_config``: pick a locality by weight first."""

    def istio_mtls_to(self, ep: EndpointSpec) -> bool:
        """Whether this cluster reaches ``ep`` over Istio mTLS: always (DestinationRule
        ISTIO_MUTUAL) or by auto mTLS to an endpoint labelled ``tlsMode: istio``."""
        return self.istio_mtls == "all" or (self.istio_mtls == "auto" and ep.istio_tls)


FILTER_TCP_PROXY = "envoy.filters.network.tcp_proxy"
FILTER_NETWORK_RBAC = "envoy.filters.network.rbac"
FILTER_HCM = "envoy.filters.network.http_connection_manager"
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
            prefix_ranges=tuple(
                ipaddress.ip_network(
                    f"{r['address_prefix']}/{r.get('prefix_len', 32)}", strict=False
                )
                for r in match.get("prefix_ranges") or ()
            ),
            server_names=tuple(str(n) for n in match.get("server_names") or ()),
            transport_protocol=str(match.get("transport_protocol", "")),
            application_protocols=tuple(str(a) for a in match.get("application_protocols") or ()),
        )


@dataclass(frozen=True, slots=True)
class FilterChainSpec:
    """One filter chain: its match and the network filters the sim executes (``tcp_proxy``
    with its cluster or weighted clusters, network RBAC; ``http`` when it ends in an HCM)."""

    name: str
    match: ChainMatch
    clusters: tuple[tuple[str, int], ...] = ()
    total_weight: int = 0
    stat_prefix: str = ""
    rbac: tuple[Mapping[str, Any], ...] = ()
    http: bool = False
    terminates_tls: bool = False

    @classmethod
    def from_envoy(cls, chain: Mapping[str, Any]) -> FilterChainSpec:
        """Compile one entry of ``filter_chains`` (or ``default_filter_chain``)."""
        clusters: tuple[tuple[str, int], ...] = ()
        stat_prefix = ""
        rbac: list[Mapping[str, Any]] = []
        http = False
        for f in chain.get("filters") or ():
            name = f.get("name")
            cfg = f.get("typed_config") or {}
            if name == FILTER_TCP_PROXY:
                stat_prefix = str(cfg.get("stat_prefix", ""))
                if "weighted_clusters" in cfg:
                    clusters = tuple(
                        (str(c["name"]), int(c.get("weight", 0)))
                        for c in cfg["weighted_clusters"].get("clusters", ())
                    )
                else:
                    clusters = ((str(cfg.get("cluster", "")), 1),)
            elif name == FILTER_NETWORK_RBAC:
                rbac.append(f)
            elif name == FILTER_HCM:
                http = True
        return cls(
            name=str(chain.get("name", "")),
            match=ChainMatch.from_envoy(chain.get("filter_chain_match") or {}),
            clusters=clusters,
            total_weight=sum(w for _, w in clusters),
            stat_prefix=stat_prefix,
            rbac=tuple(rbac),
            http=http,
            terminates_tls=bool(chain.get("transport_socket")),
        )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # a Service name: matches no prefix range


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A listener's filter chains, selected the way Envoy's FilterChainMatch does."""

    name: str
    port: int
    chains: tuple[FilterChainSpec, ...]
    default_chain: FilterChainSpec | None = None

    @classmethod
    def from_envoy(cls, listener: Mapping[str, Any]) -> ListenerSpec:
        """Compile a Listener's filter chains."""
        default = listener.get("default_filter_chain")
        return cls(
            name=str(listener.get("name", "")),
            port=_listener_port(listener) or 0,
            chains=tuple(
                FilterChainSpec.from_envoy(c) for c in listener.get("filter_chains") or ()
            ),
            default_chain=FilterChainSpec.from_envoy(default) if default else None,
        )

    def select(
        self, ip: str, port: int, transport: str = "raw_buffer", alpn: Sequence[str] = ()
    ) -> FilterChainSpec | None:
        """The chain a connection to ``ip:port`` takes, or None (Envoy closes it).

        Envoy narrows the chains criterion by criterion, most specific first: destination port,
        destination IP (longest prefix), server name (no SNI here), transport protocol
        (``tls`` / ``raw_buffer``), ALPN. At each step the chains that name the value win; only
        when none does, the chains that leave the criterion unset go on. A port with its own
        chains therefore never falls back to port-less chains."""
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
        stage = [c for c in stage if not c.match.server_names]
        stage = [c for c in stage if c.match.transport_protocol == transport] or [
            c for c in stage if not c.match.transport_protocol
        ]
        offered = set(alpn)
        stage = [c for c in stage if offered & set(c.match.application_protocols)] or [
            c for c in stage if not c.match.application_protocols
        ]
        return stage[0] if stage else self.default_chain


def _outbound(listener: Mapping[str, Any], port: int, ip: str) -> bool:
    sock = (listener.get("address") or {}).get("socket_address") or {}
    return (
        _listener_port(listener) == port
        and str(sock.get("address", "")) == ip
        and listener.get("traffic_direction") == "OUTBOUND"
        and listener.get("name") != VIRTUAL_OUTBOUND
    )


@dataclass
class ProxyTables:
    """Everything one proxy executes: route tables by listener port, clusters by name, and the
    listeners themselves (compiled on first use: only TCP connections need their chains)."""

    routes_by_port: dict[int, RouteTable]
    route_configs: dict[str, RouteTable]
    clusters: dict[str, ClusterSpec]
    listener_of_port: dict[int, str] = field(default_factory=dict)
    listeners: tuple[Mapping[str, Any], ...] = ()
    _compiled: dict[str, ListenerSpec | None] = field(default_factory=dict)

    def route_table(self, port: int) -> RouteTable | None:
        """The route configuration an outbound request to ``port`` is served by."""
        return self.routes_by_port.get(port)

    def _listener(self, key: str, pick: Any) -> ListenerSpec | None:
        if key not in self._compiled:
            raw = next((x for x in self.listeners if pick(x)), None)
            self._compiled[key] = ListenerSpec.from_envoy(raw) if raw is not None else None
        return self._compiled[key]

    def outbound_listener(self, ip: str, port: int) -> ListenerSpec | None:
        """The outbound listener ``virtualOutbound`` hands a connection to ``ip:port`` to
        (``use_original_dst``): the one bound to exactly that address (``<VIP>_<port>``), else
        the wildcard ``0.0.0.0_<port>``; None when neither exists (the connection stays on
        ``virtualOutbound``)."""
        found = self._listener(f"{ip}:{port}", lambda x: _outbound(x, port, ip))
        if found is None:
            found = self._listener(f"0.0.0.0:{port}", lambda x: _outbound(x, port, "0.0.0.0"))
        return found

    def virtual_listener(self, name: str) -> ListenerSpec | None:
        """``virtualOutbound`` or ``virtualInbound``."""
        return self._listener(name, lambda x: x.get("name") == name)


def _hcm_route_names(listener: Mapping[str, Any]) -> list[str]:
    names = []
    chains = list(listener.get("filter_chains") or ())
    if listener.get("default_filter_chain"):
        chains.append(listener["default_filter_chain"])
    for chain in chains:
        for f in chain.get("filters") or ():
            cfg = f.get("typed_config") or {}
            rds = cfg.get("rds")
            if rds and rds.get("route_config_name"):
                names.append(str(rds["route_config_name"]))
            elif cfg.get("route_config"):
                names.append(str(cfg["route_config"].get("name", "")))
    return names


def _listener_port(listener: Mapping[str, Any]) -> int | None:
    sock = (listener.get("address") or {}).get("socket_address") or {}
    port = sock.get("port_value")
    return int(port) if port is not None else None


def _header_values(entries: Any) -> tuple[tuple[str, str, bool], ...]:
    """``*_headers_to_add`` as (lower-case name, value, append?): Istio's ``add`` is
    ``APPEND_IF_EXISTS_OR_ADD``, ``set`` is ``OVERWRITE_IF_EXISTS_OR_ADD``."""
    return tuple(
        (
            str(h["header"]["key"]).lower(),
            str(h["header"].get("value", "")),
            h.get("append_action", "APPEND_IF_EXISTS_OR_ADD") == "APPEND_IF_EXISTS_OR_ADD",
        )
        for h in entries or ()
    )


def _compile_route(route: Mapping[str, Any], index: int) -> RouteSpec:
    match = route.get("match") or {}
    path = PathMatcher.from_envoy(match)
    headers = tuple(header_matcher(h) for h in match.get("headers") or ())
    query = tuple(query_matcher(q) for q in match.get("query_parameters") or ())
    meta = ((route.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    spec = RouteSpec(
        name=str(route.get("name", "")),
        index=index,
        path=path,
        headers=headers,
        query=query,
        action="none",
        decorator=str((route.get("decorator") or {}).get("operation", "")),
        config_source=str(meta.get("config", "")),
        raw=route,
    )
    spec.request_headers_to_add = _header_values(route.get("request_headers_to_add"))
    spec.request_headers_to_remove = tuple(
        str(h).lower() for h in route.get("request_headers_to_remove") or ()
    )
    spec.response_headers_to_add = _header_values(route.get("response_headers_to_add"))
    spec.response_headers_to_remove = tuple(
        str(h).lower() for h in route.get("response_headers_to_remove") or ()
    )
    fault = (route.get("typed_per_filter_config") or {}).get(FAULT_FILTER)
    if fault:
        spec.fault = FaultSpec.from_envoy(fault)
    if "route" in route:
        action = route["route"]
        spec.action = "route"
        if "cluster" in action:
            spec.clusters = ((str(action["cluster"]), 1),)
        elif "weighted_clusters" in action:
            spec.clusters = tuple(
                (str(c["name"]), int(c.get("weight", 0)))
                for c in action["weighted_clusters"].get("clusters", ())
            )
        elif "cluster_header" in action:
            spec.cluster_header = str(action["cluster_header"]).lower()
        spec.total_weight = sum(w for _, w in spec.clusters)
        spec.timeout = parse_duration(action.get("timeout"), 15.0)
        if action.get("retry_policy"):
            spec.retry = RetrySpec.from_envoy(action["retry_policy"])
        spec.hash_policy = tuple(action.get("hash_policy") or ())
        spec.mirrors = tuple(
            MirrorSpec(str(m["cluster"]), fraction(m.get("runtime_fraction"), 1.0))
            for m in action.get("request_mirror_policies") or ()
        )
        if "prefix_rewrite" in action:
            spec.prefix_rewrite = str(action["prefix_rewrite"])
        if "regex_rewrite" in action:
            rr = action["regex_rewrite"]
            spec.regex_rewrite = (re.compile(rr["pattern"]["regex"]), str(rr["substitution"]))
        spec.host_rewrite = str(action.get("host_rewrite_literal", ""))
    elif "redirect" in route:
        spec.action = "redirect"
        spec.redirect = route["redirect"]
    elif "direct_response" in route:
        spec.action = "direct_response"
        dr = route["direct_response"]
        spec.direct_status = int(dr.get("status", 200))
        body = dr.get("body") or {}
        spec.direct_body = str(body.get("inline_string", body.get("inline_bytes", "")))
    return spec


def redirect_status(redirect: Mapping[str, Any]) -> int:
    """The status of a ``redirect`` action (301 unless ``response_code`` says otherwise)."""
    return _REDIRECT_STATUS.get(str(redirect.get("response_code", "MOVED_PERMANENTLY")), 301)


def compile_route_config(rc: Mapping[str, Any]) -> RouteTable:
    """A RouteConfiguration dict -> RouteTable."""
    vhosts = [
        VirtualHostSpec(
            name=str(vh.get("name", "")),
            domains=tuple(str(d) for d in vh.get("domains") or ()),
            routes=[_compile_route(r, i) for i, r in enumerate(vh.get("routes") or ())],
        )
        for vh in rc.get("virtual_hosts") or ()
    ]
    return RouteTable(
        str(rc.get("name", "")), vhosts, bool(rc.get("ignore_port_in_host_matching", True))
    )


def _endpoint(
    lb: Mapping[str, Any], priority: int, locality: str, locality_weight: int = 0
) -> EndpointSpec:
    sock = lb["endpoint"]["address"]["socket_address"]
    filter_meta = (lb.get("metadata") or {}).get("filter_metadata") or {}
    meta = filter_meta.get("istio") or {}
    tls_match = filter_meta.get("envoy.transport_socket_match") or {}
    workload_parts = [*str(meta.get("workload", "")).split(";"), "", "", "", ""]
    labels = meta.get("labels") or {}
    return EndpointSpec(
        address=str(sock["address"]),
        port=int(sock.get("port_value", 0)),
        weight=int(lb.get("load_balancing_weight", 1) or 1),
        priority=priority,
        locality=locality,
        pod=str(meta.get("pod", "")),
        workload=workload_parts[0],
        namespace=workload_parts[1],
        app=workload_parts[2] or str(labels.get("app", "")),
        version=workload_parts[3] or str(labels.get("version", "")),
        identity=str(meta.get("identity", "")),
        health=str(lb.get("health_status", "HEALTHY")),
        istio_tls=tls_match.get("tlsMode") == "istio",
        locality_weight=locality_weight,
    )


def _endpoints(cla: Mapping[str, Any] | None) -> tuple[EndpointSpec, ...]:
    if not cla:
        return ()
    out: list[EndpointSpec] = []
    for group in cla.get("endpoints") or ():
        loc = "/".join(
            str(v) for v in (group.get("locality") or {}).values() if v
        )  # region/zone/sub_zone
        prio = int(group.get("priority", 0))
        weight = int(group.get("load_balancing_weight", 0) or 0)
        out.extend(_endpoint(lb, prio, loc, weight) for lb in group.get("lb_endpoints") or ())
    return tuple(e for e in out if e.health in ("HEALTHY", "UNKNOWN"))


def _thresholds(cluster: Mapping[str, Any]) -> Thresholds:
    cb = cluster.get("circuit_breakers") or {}
    for t in cb.get("thresholds") or ():
        if t.get("priority", "DEFAULT") == "DEFAULT":
            return Thresholds(
                max_connections=int(t.get("max_connections", 1024)),
                max_pending_requests=int(t.get("max_pending_requests", 1024)),
                max_requests=int(t.get("max_requests", 1024)),
                max_retries=int(t.get("max_retries", 3)),
            )
    return Thresholds()


def _is_istio_mutual(socket: Mapping[str, Any]) -> bool:
    """An UpstreamTlsContext presenting the workload certificate (SDS ``default``)."""
    context = (socket.get("typed_config") or {}).get("common_tls_context") or {}
    return any(
        s.get("name") == "default" for s in context.get("tls_certificate_sds_secret_configs") or ()
    )


def compile_cluster(cluster: Mapping[str, Any], cla: Mapping[str, Any] | None) -> ClusterSpec:
    """A Cluster dict (+ its ClusterLoadAssignment for EDS) -> ClusterSpec."""
    name = str(cluster["name"])
    assignment = cla if cla is not None else cluster.get("load_assignment")
    od = cluster.get("outlier_detection")
    lb_config = cluster.get("common_lb_config") or {}
    panic = (lb_config.get("healthy_panic_threshold") or {}).get("value", 50.0)
    meta = ((cluster.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    services = meta.get("services") or ()
    parsed = parse_cluster_name(name)
    service_host = str(services[0]["host"]) if services else (parsed.host if parsed else "")
    subset = str(meta.get("subset", parsed.subset if parsed else ""))
    endpoints = _endpoints(assignment)
    tls = cluster.get("transport_socket") or {}
    matches = cluster.get("transport_socket_matches") or ()
    mtls = "tls" in str(tls.get("name", "")) or bool(matches)
    istio_mtls = ""
    if _is_istio_mutual(tls):
        istio_mtls = "all"
    elif any(
        (m.get("match") or {}).get("tlsMode") == "istio"
        and _is_istio_mutual(m.get("transport_socket") or {})
        for m in matches
    ):
        istio_mtls = "auto"
    options = (cluster.get("typed_extension_protocol_options") or {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ) or {}
    common = options.get("common_http_protocol_options") or {}
    return ClusterSpec(
        name=name,
        type=str(cluster.get("type", "EDS")),
        lb_policy=str(cluster.get("lb_policy", "ROUND_ROBIN")),
        thresholds=_thresholds(cluster),
        outlier=OutlierSpec.from_envoy(od) if od is not None else None,
        panic_threshold=float(panic),
        endpoints=endpoints,
        ring_size=int((cluster.get("ring_hash_lb_config") or {}).get("minimum_ring_size", 1024)),
        maglev_size=int((cluster.get("maglev_lb_config") or {}).get("table_size", 65537)),
        service_host=service_host,
        subset=subset,
        connect_timeout=parse_duration(cluster.get("connect_timeout"), 5.0),
        mtls=mtls,
        istio_mtls=istio_mtls,
        max_requests_per_connection=int(common.get("max_requests_per_connection", 0)),
        priorities=tuple(sorted({e.priority for e in endpoints})) or (0,),
        locality_weighted="locality_weighted_lb_config" in lb_config,
    )


def compile_proxy(
    listeners: Iterable[Mapping[str, Any]],
    routes: Iterable[Mapping[str, Any]],
    clusters: Iterable[Mapping[str, Any]],
    endpoints: Iterable[Mapping[str, Any]],
    *,
    memo: dict[int, Any] | None = None,
) -> ProxyTables:
    """Compile one proxy's xDS resources (LDS, RDS, CDS, EDS) for execution.

    The outbound route table of a port comes from the listener on that port (its HTTP
    connection manager's ``rds.route_config_name``); without such a listener, a route
    configuration named after the port (``"8080"``, istiod's sidecar naming, or ``http.8080`` on
    gateways) is used.
    """
    cache: dict[int, Any] = memo if memo is not None else {}

    def once(key: int, keep: Any, build: Any) -> Any:
        # translate shares dicts between proxies of the same scope: compile each one once
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = (keep, build())
        return hit[1]

    tables = {
        str(rc.get("name", "")): once(id(rc), rc, lambda rc=rc: compile_route_config(rc))
        for rc in routes
    }
    cla_by_name = {str(c.get("cluster_name", "")): c for c in endpoints}
    compiled = {}
    for c in clusters:
        name = str(c["name"])
        eds_name = str((c.get("eds_cluster_config") or {}).get("service_name") or name)
        cla = cla_by_name.get(eds_name) if c.get("type", "EDS") == "EDS" else None
        compiled[name] = once(
            hash((id(c), id(cla))), (c, cla), lambda c=c, cla=cla: compile_cluster(c, cla)
        )
    by_port: dict[int, RouteTable] = {}
    listener_of_port: dict[int, str] = {}
    listeners = tuple(listeners)
    for listener in listeners:
        port = _listener_port(listener)
        if port is None:
            continue
        for rc_name in _hcm_route_names(listener):
            if rc_name in tables and port not in by_port:
                by_port[port] = tables[rc_name]
                listener_of_port[port] = str(listener.get("name", ""))
    for name, table in tables.items():
        candidate = name.removeprefix("http.")
        if candidate.isdigit() and int(candidate) not in by_port:
            by_port[int(candidate)] = table
    return ProxyTables(by_port, tables, compiled, listener_of_port, tuple(listeners))
