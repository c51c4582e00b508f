"""Route configurations compiled for execution: virtual hosts by domain, routes with their
matchers precompiled, and what each route does (cluster or weighted clusters, retry policy,
timeout, fault, mirrors, rewrites, header operations, redirect, direct response).

Per-filter configuration (``typed_per_filter_config``) is resolved the way Envoy looks it up for a
filter: the route's own entry, else its virtual host's (:attr:`RouteSpec.per_filter`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.envoy_api import type_urls as tu
from sim.matchers import HeaderMatcher, PathMatcher, QueryMatcher, header_matcher, query_matcher
from sim.xds.values import fraction, header_values, parse_duration

__all__ = [
    "FaultSpec",
    "MirrorSpec",
    "RetrySpec",
    "RouteSpec",
    "RouteTable",
    "VirtualHostSpec",
    "compile_route_config",
    "redirect_status",
]

Json = Mapping[str, Any]
_REDIRECT_STATUS = {
    "MOVED_PERMANENTLY": 301,
    "FOUND": 302,
    "SEE_OTHER": 303,
    "TEMPORARY_REDIRECT": 307,
    "PERMANENT_REDIRECT": 308,
}


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
    """The fault filter's per-route config (``typed_per_filter_config``) of a route."""

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
    cluster: str = ""
    """The first (or only) cluster of the route action."""
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
    per_filter: Mapping[str, Json] = field(default_factory=dict)
    """``typed_per_filter_config`` by filter name: the route's entries over its virtual host's."""
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

    catch_all: RouteSpec | None = None
    """The first route when it matches every request whose path starts with ``/`` (``prefix:
    /``, no header or query matcher): then it is the one, without matching per request."""

    def __post_init__(self) -> None:
        host = self.name.rsplit(":", 1)[0]
        self.service_host = host if host.count(".") >= 2 else ""
        self.pseudo_headers = any(h.name.startswith(":") for r in self.routes for h in r.headers)
        first = self.routes[0] if self.routes else None
        if first is not None and first.path.matches_everything and not first.headers:
            self.catch_all = None if first.query else first

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


def _compile_route(route: Mapping[str, Any], index: int, vhost_filters: Json) -> RouteSpec:
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
        per_filter={**vhost_filters, **(route.get("typed_per_filter_config") or {})},
        raw=route,
    )
    spec.request_headers_to_add = header_values(route.get("request_headers_to_add"))
    spec.request_headers_to_remove = tuple(
        str(h).lower() for h in route.get("request_headers_to_remove") or ()
    )
    spec.response_headers_to_add = header_values(route.get("response_headers_to_add"))
    spec.response_headers_to_remove = tuple(
        str(h).lower() for h in route.get("response_headers_to_remove") or ()
    )
    fault = spec.per_filter.get(tu.FILTER_FAULT)
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
        spec.cluster = spec.clusters[0][0] if spec.clusters else ""
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
            routes=[
                _compile_route(r, i, vh.get("typed_per_filter_config") or {})
                for i, r in enumerate(vh.get("routes") or ())
            ],
        )
        for vh in rc.get("virtual_hosts") or ()
    ]
    return RouteTable(
        str(rc.get("name", "")), vhosts, bool(rc.get("ignore_port_in_host_matching", True))
    )
