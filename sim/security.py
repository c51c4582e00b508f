"""The security half of the data path, as the simulator runs it (docs/security.md, "Simulator").

Below and inside the server sidecar, in the order a connection and a request meet them:

1. **NetworkPolicy** (the CNI, before any sidecar): :meth:`SimSecurity.connect_allowed`. A
   denied connection is a dropped SYN: the client sidecar's attempt fails after the cluster's
   ``connect_timeout`` (flag ``UF``, then its retry policy); a client without sidecar times out.
2. **PeerAuthentication** (``virtualInbound``'s filter chains): :meth:`SimSecurity.admits`. A
   connection whose kind (Istio mTLS or plaintext) the port's mode does not take matches no
   chain and is closed: nothing is logged by the server; a client sidecar answers ``503 UC``.
3. **jwt_authn, then RBAC** (AUDIT, DENY, ALLOW): the same evaluators as ``meshplay
   authz-check`` (:func:`mesh.security.authz.check_request`), with each pod's filters built once
   per configuration instead of per request. A rejected token is a ``401`` with Envoy's body
   (``Jwt is expired``, ...), a denial ``403 RBAC: access denied``; neither has a flag.
4. **local rate limit**: one token bucket per sidecar, port and filter
   (:class:`mesh.security.LocalRateLimiter`); a request that finds no token is ``429
   local_rate_limited`` with flag ``RL``.

Whether a hop is mTLS comes from the client's compiled cluster (its ``transport_socket`` or the
``tlsMode-istio`` match and the endpoint's tag), i.e. from the Envoy config the sim executes.
Time for JWT checks is :data:`sim.tokens.SIM_EPOCH` + simulated seconds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mesh.model import (
    AuthorizationPolicy,
    EnvoyFilter,
    FrozenMap,
    NetworkPolicy,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
)
from mesh.security import (
    LocalRateLimiter,
    MtlsPolicy,
    NetworkPolicies,
    RbacDecision,
    RequestContext,
    accepts,
    authenticate,
    effective_mtls,
    evaluate_rbac_filters,
    local_ratelimit_filters,
)
from mesh.security.jwt import JwksResolver, jwt_authn_filter
from mesh.security.jwt_verify import JwtOutcome, SignatureCheck, rs256_verifier
from mesh.security.ratelimit import RATE_LIMITED_BODY, RATE_LIMITED_FLAG, route_local_ratelimit
from mesh.security.rbac import build_http_rbac
from mesh.security.selection import authorization_policies_for, request_authentications_for
from mesh.topology import Pod, Topology
from sim.tokens import SIM_EPOCH, UserTokens

__all__ = ["InboundVerdict", "SimSecurity"]

Json = dict[str, Any]

_POLICY_KINDS = (AuthorizationPolicy, RequestAuthentication, EnvoyFilter)
OUTSIDE_IP = "127.0.0.1"
"""The address of a client outside the mesh (what ``meshplay authz-check`` assumes too)."""


@lru_cache(maxsize=4096)
def _cached_signature(token: str, jwks: str) -> SignatureCheck:
    """RS256 is a pure function of (token, keys): verify each pair once per process."""
    return rs256_verifier(token, jwks)


@dataclass(frozen=True, slots=True)
class InboundVerdict:
    """What jwt_authn + RBAC (+ the rate limit) answered for one request."""

    status: int
    body: str
    details: str
    flags: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=FrozenMap)


@dataclass(slots=True)
class _PodFilters:
    """One server pod's security filters, built once per configuration."""

    mtls: MtlsPolicy
    jwt: Json | None
    rbac: tuple[Json, ...]
    ratelimit: dict[int, tuple[Json, ...]] = field(default_factory=dict)

    @property
    def http(self) -> bool:
        return self.jwt is not None or bool(self.rbac)


class SimSecurity:
    """The security resources of one configuration, with per-pod caches.

    ``limiters`` is shared across configuration pushes (``carry``): a bucket survives a push
    that leaves its filter unchanged, like a listener that is not drained.
    """

    def __init__(
        self,
        resources: Sequence[Resource],
        topology: Topology,
        *,
        tokens: UserTokens,
        limiters: dict[tuple[str, int, str], LocalRateLimiter] | None = None,
    ) -> None:
        self.resources = tuple(resources)
        self.topology = topology
        self.tokens = tokens
        self.jwks_resolver: JwksResolver = tokens.resolve_jwks
        self.root = topology.config.root_namespace
        self._pas = [r for r in self.resources if isinstance(r, PeerAuthentication)]
        policies = [r for r in self.resources if isinstance(r, NetworkPolicy)]
        self.network = NetworkPolicies(self.resources, topology) if policies else None
        self.http_policies = any(isinstance(r, _POLICY_KINDS) for r in self.resources)
        self._pods: dict[str, _PodFilters] = {}
        self.limiters: dict[tuple[str, int, str], LocalRateLimiter] = (
            limiters if limiters is not None else {}
        )

    # -- per pod ------------------------------------------------------------------------------
    def filters(self, pod: Pod) -> _PodFilters:
        """The pod's PeerAuthentication and HTTP security filters (built on first use)."""
        found = self._pods.get(pod.name)
        if found is None:
            mtls = effective_mtls(pod, self._pas, self.root)
            jwt: Json | None = None
            rbac: tuple[Json, ...] = ()
            if self.http_policies:
                jwt = jwt_authn_filter(
                    request_authentications_for(pod, self.resources, self.root),
                    self.jwks_resolver,
                )
                rbac = tuple(
                    build_http_rbac(
                        authorization_policies_for(pod, self.resources, self.root)
                    ).filters
                )
            found = self._pods[pod.name] = _PodFilters(mtls, jwt, rbac)
        return found

    # -- 1. NetworkPolicy -------------------------------------------------------------------
    def connect_allowed(self, client: Pod | None, server: Pod, port: int) -> bool:
        """May ``client`` (None: outside the cluster) open a connection to ``server:port``?"""
        if self.network is None:
            return True
        return bool(self.network.allows(client, server, port, source_ip=OUTSIDE_IP))

    # -- 2. PeerAuthentication -----------------------------------------------------------------
    def admits(self, server: Pod, port: int, mtls: bool) -> bool:
        """Does a filter chain of ``server:port`` take a connection that is (not) mTLS?"""
        if not self._pas:
            return True  # every port PERMISSIVE
        return accepts(self.filters(server).mtls.for_port(port), mtls)

    # -- 3. + 4. jwt_authn, RBAC, local rate limit -------------------------------------------
    def check(
        self,
        server: Pod,
        *,
        method: str,
        path: str,
        authority: str,
        headers: Mapping[str, str],
        port: int,
        source: Pod | None,
        mtls: bool,
        now: float,
    ) -> tuple[InboundVerdict | None, JwtOutcome | None]:
        """jwt_authn then RBAC on ``server`` (None: the request goes on), as
        :func:`mesh.security.authz.check_request` decides, plus the jwt_authn outcome (its
        header mutations apply to what the app receives)."""
        pod = self.filters(server)
        if not pod.http:
            return None, None
        outcome: JwtOutcome | None = None
        metadata: dict[str, dict[str, Any]] = {}
        if pod.jwt is not None:
            outcome = authenticate(
                pod.jwt["typed_config"],
                headers,
                path,
                now=SIM_EPOCH + now,
                verifier=_cached_signature,
            )
            if not outcome.allowed:
                verdict = InboundVerdict(outcome.http_status, outcome.body, outcome.details)
                return verdict, outcome
            metadata = outcome.metadata
        if pod.rbac:
            ctx = RequestContext(
                method=method.upper(),
                path=path,
                authority=authority or headers.get("host", ""),
                headers=headers,
                destination_port=port,
                destination_ip=server.address,
                source_ip=source.address if source is not None else OUTSIDE_IP,
                peer_principal=source.identity if mtls and source is not None else "",
                metadata=FrozenMap(metadata),
            )
            decision: RbacDecision = evaluate_rbac_filters(pod.rbac, ctx)
            if not decision.allowed:
                return InboundVerdict(403, decision.body, decision.details), outcome
        return None, outcome

    def rate_limit(
        self, server: Pod, port: int, now: float, rng: random.Random
    ) -> InboundVerdict | None:
        """The sidecar's local_ratelimit filters on ``port`` (None: not limited)."""
        if not self.http_policies:
            return None
        pod = self.filters(server)
        configs = pod.ratelimit.get(port)
        if configs is None:
            configs = tuple(
                f["typed_config"]
                for f in local_ratelimit_filters(
                    server, self.resources, root_namespace=self.root, port=port
                )
            )
            per_route = route_local_ratelimit(server, self.resources, root_namespace=self.root)
            if configs and per_route is not None and per_route.get("token_bucket"):
                configs = (per_route, *configs[1:])  # the route's bucket overrides the filter's
            configs = tuple(c for c in configs if c.get("token_bucket"))
            pod.ratelimit[port] = configs
        for config in configs:
            key = (server.name, port, json.dumps(config, sort_keys=True))
            limiter = self.limiters.get(key)
            if limiter is None:
                limiter = self.limiters[key] = LocalRateLimiter(config, now=now)
            decision = limiter.check(now, rng)
            if decision.limited:
                return InboundVerdict(
                    429,
                    RATE_LIMITED_BODY,
                    "local_rate_limited",
                    (RATE_LIMITED_FLAG,),
                    FrozenMap(decision.headers),
                )
        return None
