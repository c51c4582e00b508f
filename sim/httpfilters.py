"""The server sidecar's HTTP filters, executed from the translated config: ``jwt_authn``, RBAC
and ``local_ratelimit``, in the order of the HTTP connection manager's ``http_filters``.

Each filter runs the pure evaluator of :mod:`mesh.security` over the filter's own Envoy JSON
(``typed_config``), with the matched route's ``typed_per_filter_config`` taking its place where
the route (or its virtual host) has an entry for the filter, as Envoy looks per-route config up.
So the simulator follows whatever the config says, a hand-edited one included:

* ``envoy.filters.http.jwt_authn``: :func:`mesh.security.authenticate`. A rejected token is a
  ``401`` with Envoy's body (``Jwt is expired``, ...) or ``403`` (audiences); a verified token
  leaves its payload as dynamic metadata for RBAC and its header mutations on the request the app
  receives. A provider with ``remote_jwks`` (the translation without a JWKS resolver) gets the
  keys istiod would have inlined: by default (``PILOT_JWT_ENABLE_REMOTE_JWKS=false``) istiod
  fetches ``jwksUri`` itself and pushes ``local_jwks``; here the simulated user service answers
  it (:meth:`sim.tokens.UserTokens.resolve_jwks`), any other issuer's keys are unknown and its
  tokens fail verification.
* ``envoy.filters.http.rbac``: :func:`mesh.security.evaluate_rbac_filters` (a per-route
  ``RBACPerRoute`` replaces the filter's rules). A denial is ``403 RBAC: access denied``.
* ``envoy.filters.http.local_ratelimit``: one :class:`mesh.security.LocalRateLimiter` per sidecar,
  port, filter instance and config (shared by all connections, kept across pushes that leave it
  unchanged; a route's bucket is shared by the filters it configures); a filter without a
  ``token_bucket`` of its own or from the route limits nothing. A request that
  finds no token is ``429 local_rate_limited`` with flag ``RL``.

None of these replies carries a response flag except the rate limit's. Time for JWT checks is
:data:`sim.tokens.SIM_EPOCH` + simulated seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mesh.envoy_api import type_urls as tu
from mesh.model import FrozenMap
from mesh.security import LocalRateLimiter, RequestContext, authenticate, evaluate_rbac_filters
from mesh.security.jwt_verify import SignatureCheck, rs256_verifier
from mesh.security.ratelimit import RATE_LIMITED_BODY, RATE_LIMITED_FLAG
from sim.cni import OUTSIDE_IP
from sim.messages import Request, Response
from sim.tokens import SIM_EPOCH
from sim.xds import HcmSpec, HttpFilterSpec, RouteSpec

if TYPE_CHECKING:
    from sim.pods import PodRuntime
    from sim.world import World

__all__ = ["FilterReply", "run_http_filters"]

Json = Mapping[str, Any]


@lru_cache(maxsize=4096)
def _cached_signature(token: str, jwks: str) -> SignatureCheck:
    """RS256 is a pure function of (token, keys): verify each pair once per process."""
    return rs256_verifier(token, jwks)


@dataclass(frozen=True, slots=True)
class FilterReply:
    """A local reply of one HTTP filter: which filter answered, and Envoy's response."""

    filter: str
    response: Response
    decision: str = ""
    """What the filter decided, for traces (the RBAC policy, the JWT status, ...)."""


@dataclass(slots=True)
class _Request:
    """What the filters of one request share: the dynamic metadata jwt_authn leaves for RBAC."""

    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def _fetched(world: World, config: Json) -> Json:
    """``config`` with every ``remote_jwks`` provider given the keys istiod's fetch returns."""
    hit = world.jwt_configs.get(id(config))
    if hit is not None and hit[0] is config:
        fetched: Json = hit[1]
        return fetched
    providers: dict[str, Any] = {}
    for name, provider in (config.get("providers") or {}).items():
        remote = provider.get("remote_jwks")
        if not remote:
            providers[name] = provider
            continue
        uri = str((remote.get("http_uri") or {}).get("uri", ""))
        keys = world.tokens.resolve_jwks(uri)
        local = {k: v for k, v in provider.items() if k != "remote_jwks"}
        local["local_jwks"] = {"inline_string": keys or ""}
        providers[name] = local
    fetched = {**config, "providers": providers}
    world.jwt_configs[id(config)] = (config, fetched)
    return fetched


def _jwt_authn(
    world: World, pod: PodRuntime, f: HttpFilterSpec, req: Request, state: _Request
) -> FilterReply | None:
    outcome = authenticate(
        _fetched(world, f.config),
        req.headers,
        req.path,
        now=SIM_EPOCH + world.env.now,
        verifier=_cached_signature,
    )
    if not outcome.allowed:
        resp = Response(outcome.http_status, (), outcome.details, outcome.body)
        return FilterReply(f.name, resp, outcome.status.value)
    state.metadata = outcome.metadata
    if outcome.remove_headers or outcome.set_headers:
        headers = {k: v for k, v in req.headers.items() if k not in outcome.remove_headers}
        headers.update(outcome.set_headers)
        req.headers = headers  # req is the server's own copy (see sim.inbound)
        req.forward = None
    return None


def _rbac(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    f: HttpFilterSpec,
    req: Request,
    state: _Request,
    route: RouteSpec | None,
    client: PodRuntime | None,
    mtls: bool,
    port: int,
) -> FilterReply | None:
    config = f.config
    per_route = route.per_filter.get(f.name) if route is not None else None
    if per_route is not None and "rbac" in per_route:
        config = per_route["rbac"]
    ctx = RequestContext(
        method=req.method.upper(),
        path=req.path,
        authority=req.authority or req.headers.get("host", ""),
        headers=req.headers,
        destination_port=port,
        destination_ip=pod.pod.address,
        source_ip=client.pod.address if client is not None else OUTSIDE_IP,
        peer_principal=client.identity if mtls and client is not None else "",
        metadata=FrozenMap(state.metadata),
    )
    decision = evaluate_rbac_filters(({"name": f.name, "typed_config": config},), ctx)
    if decision.allowed:
        return None
    resp = Response(403, (), decision.details, decision.body)
    return FilterReply(f.name, resp, f"{decision.action or 'ALLOW'} {decision.policy or 'none'}")


def _local_ratelimit(  # noqa: PLR0917
    world: World,
    pod: PodRuntime,
    f: HttpFilterSpec,
    index: int,
    route: RouteSpec | None,
    port: int,
) -> FilterReply | None:
    config = route.per_filter.get(f.name) if route is not None else None
    # a filter's own bucket is its instance's (``index`` in the chain); a route's bucket is the
    # route's, shared by every filter of that name
    scope = "route" if config is not None else str(index)
    if config is None:
        config = f.config
    if not config.get("token_bucket"):
        return None  # a filter that only enables per-route buckets
    key = (pod.name, port, f"{scope}:{json.dumps(config, sort_keys=True)}")
    limiter = world.limiters.get(key)
    now = world.env.now
    if limiter is None:
        limiter = world.limiters[key] = LocalRateLimiter(config, now=now)
    decision = limiter.check(now, world.rng)
    if not decision.limited:
        return None
    resp = Response(
        429,
        (RATE_LIMITED_FLAG,),
        "local_rate_limited",
        RATE_LIMITED_BODY,
        headers=dict(decision.headers) or None,
    )
    return FilterReply(f.name, resp, "no token left")


def run_http_filters(  # noqa: PLR0917 - one call per request on the hot path
    world: World,
    pod: PodRuntime,
    hcm: HcmSpec,
    route: RouteSpec | None,
    req: Request,
    client: PodRuntime | None,
    mtls: bool,
    port: int,
) -> FilterReply | None:
    """Run the HCM's jwt_authn / RBAC / local_ratelimit filters in order on ``req`` (the
    server's own copy: jwt_authn may rewrite its headers); the first local reply ends it."""
    state = _Request()
    for index, f in enumerate(hcm.executed):
        name = f.name
        if name == tu.FILTER_JWT_AUTHN:
            reply = _jwt_authn(world, pod, f, req, state)
        elif name == tu.FILTER_RBAC:
            reply = _rbac(world, pod, f, req, state, route, client, mtls, port)
        else:
            reply = _local_ratelimit(world, pod, f, index, route, port)
        if reply is not None:
            return reply
    return None
