"""Route configurations compiled for execution: virtual hosts by domain, routes with their
matchers precompiled, and what each route does (cluster or weighted clusters, retry policy,
timeout, fault, mirrors, rewrites, header operations, redirect, direct response).

Per-filter configuration (``typed_per_filter_config``) is resolved the way Envoy looks it up for a
filter: the route's own entry, else its virtual host's (:attr:`RouteSpec.per_filter`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.matchers import HeaderMatcher, PathMatcher, QueryMatcher
from sim.protojson import (
    enum_name,
    wrapped_int,
)
from sim.xds.values import HeaderOp, fraction, header_values, parse_duration

__all__ = [
    "REDIRECT_CODES",
    "FaultSpec",
    "HeaderOps",
    "MirrorSpec",
    "RegexRewrite",
    "RetrySpec",
    "RouteSpec",
    "redirect_status",
]

Json = Mapping[str, Any]
REDIRECT_CODES = (
    "MOVED_PERMANENTLY",
    "FOUND",
    "SEE_OTHER",
    "TEMPORARY_REDIRECT",
    "PERMANENT_REDIRECT",
)
"""``RedirectAction.RedirectResponseCode`` by number."""
_REDIRECT_STATUS = dict(zip(REDIRECT_CODES, (301, 302, 303, 307, 308), strict=True))
RegexRewrite = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]
"""A compiled ``RegexMatchAndSubstitute``: the RE2 pattern and its substitution."""


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header mutations at one level (route, virtual host or route configuration)."""

    request_add: tuple[HeaderOp, ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[HeaderOp, ...] = ()
    response_remove: tuple[str, ...] = ()

    @classmethod
    def from_envoy(cls, item: Mapping[str, Any]) -> HeaderOps:
        """The four ``*_headers_to_add``/``*_headers_to_remove`` fields of ``item``."""
        return cls(
            header_values(item.get("request_headers_to_add")),
            tuple(str(h).lower() for h in item.get("request_headers_to_remove") or ()),
            header_values(item.get("response_headers_to_add")),
            tuple(str(h).lower() for h in item.get("response_headers_to_remove") or ()),
        )


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
            num_retries=wrapped_int(policy.get("num_retries"), 1),
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
            host_selection_max_attempts=wrapped_int(
                policy.get("host_selection_retry_max_attempts"), 1
            ),
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
    regex_rewrite: RegexRewrite | None = None
    host_rewrite: str = ""
    host_rewrite_header: str = ""
    host_rewrite_regex: RegexRewrite | None = None
    request_headers_to_add: tuple[HeaderOp, ...] = ()
    request_headers_to_remove: tuple[str, ...] = ()
    response_headers_to_add: tuple[HeaderOp, ...] = ()
    response_headers_to_remove: tuple[str, ...] = ()
    request_levels: tuple[tuple[tuple[str, ...], tuple[HeaderOp, ...]], ...] = ()
    """Request header mutations as Envoy applies them: (removals, additions) of the route, then
    of its virtual host, then of the route configuration (the most general wins a conflict)."""
    response_levels: tuple[tuple[tuple[str, ...], tuple[HeaderOp, ...]], ...] = ()
    """The same for response headers."""
    grpc: bool = False
    """``match.grpc``: only requests whose ``content-type`` starts with ``application/grpc``."""
    runtime: tuple[int, int] | None = None
    """``match.runtime_fraction`` (numerator, denominator): the route matches when the request's
    random value modulo the denominator is below the numerator (no runtime override exists)."""
    weight_header: str = ""
    """``weighted_clusters.header_name``: the request header holding the random value."""
    cluster_not_found_code: int = 503
    redirect: Mapping[str, Any] = field(default_factory=dict)
    direct_status: int = 0
    direct_body: str = ""
    decorator: str = ""
    config_source: str = ""
    per_filter: Mapping[str, Json] = field(default_factory=dict)
    """``typed_per_filter_config`` by filter name: the route's entries over its virtual host's."""
    cluster_filters: Mapping[str, Mapping[str, Json]] = field(default_factory=dict)
    """A weighted cluster's own ``typed_per_filter_config``, by cluster name: Envoy looks a
    filter's per-route config up there first once the cluster is picked."""
    raw: Mapping[str, Any] = field(default_factory=dict)

    def matches(
        self,
        path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        random_value: int = 0,
    ) -> bool:
        """Envoy's RouteMatch: path matcher AND every header matcher AND every query matcher
        (AND ``grpc``, AND ``runtime_fraction`` for ``random_value``)."""
        if not self.path.matches(path):
            return False
        if self.grpc and not headers.get("content-type", "").startswith("application/grpc"):
            return False
        if self.runtime is not None and random_value % self.runtime[1] >= self.runtime[0]:
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


def redirect_status(redirect: Mapping[str, Any]) -> int:
    """The status of a ``redirect`` action (301 unless ``response_code`` says otherwise; the
    code by name or by enum number)."""
    return _REDIRECT_STATUS[
        enum_name(redirect.get("response_code"), REDIRECT_CODES, "MOVED_PERMANENTLY")
    ]
