"""Local rate limiting: the EnvoyFilter form Istio documents -> ``envoy.filters.http.local_ratelimit``,
and the token bucket it runs (reference §12; envoy-verified §9).

Istio has no rate-limit CRD. The documented recipe is an EnvoyFilter with an ``HTTP_FILTER`` patch
(context ``SIDECAR_INBOUND``, ``INSERT_BEFORE`` the router) whose value is the filter, written
either with a plain ``typed_config`` or wrapped in a ``udpa.type.v1.TypedStruct`` /
``xds.type.v3.TypedStruct`` (``type_url`` + ``value``). A second variant declares the filter with
only a ``stat_prefix`` and puts the bucket on the inbound route (``HTTP_ROUTE``/``VIRTUAL_HOST``
``MERGE`` of ``typed_per_filter_config``). Keys may be snake_case or camelCase (protobuf JSON).

Semantics: ``filter_enabled`` and ``filter_enforced`` default to **0 %**, so a filter without them
limits nothing. Envoy 1.40 refills the bucket continuously at ``tokens_per_fill /
fill_interval`` up to ``max_tokens`` (measured: 2 of 4 tokens are back half an interval after a
burst), starting full. A request that finds no whole token gets **429** with body
``local_rate_limited``, response flag ``RL``, plus the configured ``response_headers_to_add``
(Envoy adds no ``x-local-rate-limit`` header by itself). The bucket is shared by every
connection of the sidecar, so an inbound limit applies to all clients together.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.type_urls import (
    FILTER_LOCAL_RATELIMIT,
    LOCAL_RATELIMIT,
    TYPED_STRUCT,
    XDS_TYPED_STRUCT,
    typed,
)
from mesh.model import Resource
from mesh.model.common import Duration
from mesh.model.envoy_filter import EnvoyConfigObjectPatch
from mesh.security.selection import envoy_filters_for
from mesh.topology import Pod

__all__ = [
    "RATE_LIMITED_BODY",
    "RATE_LIMITED_FLAG",
    "LocalRateLimiter",
    "RateLimitDecision",
    "TokenBucket",
    "local_ratelimit_filters",
    "normalize_local_ratelimit",
    "route_local_ratelimit",
]

Json = dict[str, Any]
RATE_LIMITED_BODY = "local_rate_limited"
RATE_LIMITED_FLAG = "RL"
_CONTEXTS = {
    "SIDECAR_INBOUND": ("SIDECAR_INBOUND", "ANY"),
    "SIDECAR_OUTBOUND": ("SIDECAR_OUTBOUND", "ANY"),
    "GATEWAY": ("GATEWAY", "ANY"),
}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            (k if k.startswith("@") else _CAMEL.sub("_", k).lower()): _snake(v)
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return [_snake(v) for v in node]
    return node


def _header_option(option: Mapping[str, Any]) -> Json:
    out = dict(option)
    if "append" in out:  # deprecated bool -> append_action
        append = out.pop("append")
        if "append_action" not in out:
            out["append_action"] = (
                "APPEND_IF_EXISTS_OR_ADD"
                if append in (True, "true")
                else "OVERWRITE_IF_EXISTS_OR_ADD"
            )
    return out


def normalize_local_ratelimit(typed_config: Mapping[str, Any]) -> Json | None:
    """A local_ratelimit ``typed_config`` as the user wrote it (plain or TypedStruct, any key
    case) -> the plain ``LocalRateLimit`` body with snake_case keys; None for another filter."""
    cfg = _snake(typed_config)
    if cfg.get("@type") in (TYPED_STRUCT, XDS_TYPED_STRUCT):
        if not str(cfg.get("type_url", "")).endswith(LOCAL_RATELIMIT.rsplit("/", 1)[1]):
            return None
        cfg = {"@type": LOCAL_RATELIMIT, **cfg.get("value", {})}
    if cfg.get("@type") != LOCAL_RATELIMIT:
        return None
    body = {k: v for k, v in cfg.items() if k != "@type"}
    if "response_headers_to_add" in body:
        body["response_headers_to_add"] = [
            _header_option(o) for o in body["response_headers_to_add"]
        ]
    if "request_headers_to_add_when_not_enforced" in body:
        body["request_headers_to_add_when_not_enforced"] = [
            _header_option(o) for o in body["request_headers_to_add_when_not_enforced"]
        ]
    return typed(LOCAL_RATELIMIT, **dict(sorted(body.items())))


def _context_matches(patch: EnvoyConfigObjectPatch, context: str) -> bool:
    match = patch.match
    return match is None or match.context in _CONTEXTS.get(context, (context,))


def _port_matches(patch: EnvoyConfigObjectPatch, port: int | None) -> bool:
    listener = patch.match.listener if patch.match is not None else None
    return port is None or listener is None or listener.port_number in (None, 0, port)


def local_ratelimit_filters(
    pod: Pod,
    resources: Sequence[Resource],
    *,
    root_namespace: str = "istio-system",
    context: str = "SIDECAR_INBOUND",
    port: int | None = None,
) -> list[Json]:
    """The local_ratelimit HTTP filters the EnvoyFilters of ``pod`` insert (before the router)
    for one context and listener port, in EnvoyFilter order."""
    out: list[Json] = []
    for ef in envoy_filters_for(pod, resources, root_namespace):
        for patch in ef.config_patches:
            if patch.apply_to != "HTTP_FILTER" or patch.patch is None:
                continue
            if patch.patch.operation not in (
                "INSERT_BEFORE",
                "INSERT_FIRST",
                "ADD",
                "INSERT_AFTER",
            ):
                continue
            value = patch.patch.value
            if not isinstance(value, Mapping) or value.get("name") != FILTER_LOCAL_RATELIMIT:
                continue
            if not (_context_matches(patch, context) and _port_matches(patch, port)):
                continue
            raw = value.get("typed_config", value.get("typedConfig"))
            body = normalize_local_ratelimit(raw) if isinstance(raw, Mapping) else None
            if body is not None:
                out.append({"name": FILTER_LOCAL_RATELIMIT, "typed_config": body})
    return out


def route_local_ratelimit(
    pod: Pod,
    resources: Sequence[Resource],
    *,
    root_namespace: str = "istio-system",
    context: str = "SIDECAR_INBOUND",
) -> Json | None:
    """The per-route variant: a ``typed_per_filter_config`` local_ratelimit merged into the
    inbound route configuration (``HTTP_ROUTE`` or ``VIRTUAL_HOST`` patch), or None.

    The inbound route configuration has a single vhost and route, so the translator can put it
    on that vhost; the simulator treats it as overriding the filter-level bucket.
    """
    found: Json | None = None
    for ef in envoy_filters_for(pod, resources, root_namespace):
        for patch in ef.config_patches:
            if patch.apply_to not in ("HTTP_ROUTE", "VIRTUAL_HOST") or patch.patch is None:
                continue
            if not _context_matches(patch, context):
                continue
            value = _snake(patch.patch.value) if isinstance(patch.patch.value, Mapping) else {}
            per_filter = value.get("typed_per_filter_config", {})
            raw = (
                per_filter.get(FILTER_LOCAL_RATELIMIT) if isinstance(per_filter, Mapping) else None
            )
            if isinstance(raw, Mapping):
                found = normalize_local_ratelimit(raw) or found
    return found


def _fraction(spec: Mapping[str, Any] | None) -> float:
    """A ``RuntimeFractionalPercent`` default -> [0, 1]; absent -> 0 (Envoy's default)."""
    if not spec:
        return 0.0
    value = spec.get("default_value", {})
    denominator = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}[
        str(value.get("denominator", "HUNDRED"))
    ]
    return min(1.0, float(value.get("numerator", 0)) / denominator)


class TokenBucket:
    """Envoy 1.40's local rate-limit bucket: starts full, refills continuously.

    Mutable (one per sidecar, shared by its connections); time is whatever clock the caller
    uses (simulated seconds on ``sim``).
    """

    __slots__ = ("_last", "_tokens", "max_tokens", "rate")

    def __init__(
        self, max_tokens: int, tokens_per_fill: int, fill_interval_s: float, now: float = 0.0
    ) -> None:
        if max_tokens <= 0 or fill_interval_s <= 0:
            raise ValueError("a token bucket needs max_tokens > 0 and fill_interval > 0")
        self.max_tokens = max_tokens
        self.rate = tokens_per_fill / fill_interval_s
        self._tokens = float(max_tokens)
        self._last = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (fractional)."""
        return min(float(self.max_tokens), self._tokens + max(0.0, now - self._last) * self.rate)

    def try_consume(self, now: float) -> bool:
        """Take one token at ``now``; False when none is left (the request is limited)."""
        self._tokens = self.tokens(now)
        self._last = max(self._last, now)
        if self._tokens >= 1.0 - 1e-9:  # float dust must not eat a whole token
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one request through a local_ratelimit filter."""

    limited: bool
    headers: Mapping[str, str]

    @property
    def status(self) -> int:
        """429 when limited."""
        return 429 if self.limited else 200


class LocalRateLimiter:
    """One local_ratelimit filter instance: its bucket plus enabled/enforced fractions."""

    __slots__ = ("bucket", "enabled", "enforced", "headers")

    def __init__(self, typed_config: Mapping[str, Any], now: float = 0.0) -> None:
        bucket = typed_config.get("token_bucket")
        if not bucket:
            raise ValueError("local_ratelimit without token_bucket (a per-route-only filter)")
        self.bucket = TokenBucket(
            int(bucket["max_tokens"]),
            int(bucket.get("tokens_per_fill", 1)),
            Duration.parse(str(bucket["fill_interval"])).seconds,
            now,
        )
        self.enabled = _fraction(typed_config.get("filter_enabled"))
        self.enforced = _fraction(typed_config.get("filter_enforced"))
        self.headers = {
            str(o["header"]["key"]).lower(): str(o["header"].get("value", ""))
            for o in typed_config.get("response_headers_to_add", ())
        }

    def check(self, now: float, rng: random.Random | None = None) -> RateLimitDecision:
        """Decide one request at ``now`` (``rng`` draws the enabled/enforced fractions when they
        are strictly between 0 and 100 %)."""

        def hit(fraction: float) -> bool:
            if fraction >= 1.0 or fraction <= 0.0:
                return fraction >= 1.0
            if rng is None:
                raise ValueError("a fractional filter_enabled/enforced needs a seeded rng")
            return rng.random() < fraction

        if not hit(self.enabled):
            return RateLimitDecision(False, {})
        if self.bucket.try_consume(now):
            return RateLimitDecision(False, {})
        if not hit(self.enforced):
            return RateLimitDecision(False, {})
        return RateLimitDecision(True, dict(self.headers))
