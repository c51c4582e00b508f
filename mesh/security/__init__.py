"""The security half of the mesh: PeerAuthentication, AuthorizationPolicy, RequestAuthentication,
local rate limiting and NetworkPolicy, translated into Envoy config the way istiod does, plus pure
evaluators of that config for the simulator and ``meshplay authz-check``.

Entry points for the translator (``mesh/envoy``), documented in ``docs/security.md``:

* :func:`inbound_security_filters` -> the HTTP filters of a workload's inbound HCM, in istiod's
  order (jwt_authn, RBAC AUDIT/DENY/ALLOW, local_ratelimit); they go in front of the router via
  ``mesh.envoy.listeners.inbound_http_filters(security=...)``.
* :func:`inbound_filter_chains` (with :func:`tls_inspector`) -> the ``virtualInbound`` chains of
  one port for its PeerAuthentication mode.
* :func:`client_tls` -> the outbound cluster's TLS (DestinationRule or auto mTLS).

Everything here is pure and imports only the standard library and ``mesh``: Envoy names, type
URLs and values from :mod:`mesh.envoy_api`, never :mod:`mesh.envoy` (the translator that
composes these builders; an import-linter layer keeps it that way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mesh.envoy_api.type_urls import SECURITY_TYPE_URLS
from mesh.model import PeerAuthentication, Resource
from mesh.security.authz import AuthzVerdict, InboundRequest, check_request, client_sends_mtls
from mesh.security.jwt import JwksResolver, jwt_authn_filter
from mesh.security.jwt_verify import JwtOutcome, JwtStatus, SignatureCheck, TokenCheck, authenticate
from mesh.security.mtls_client import ClientTLS, UpstreamEndpoint, client_tls, client_tls_decision
from mesh.security.network_policy import NetworkPolicies, NetworkVerdict
from mesh.security.peer_authn import (
    MtlsPolicy,
    accepts,
    connection_security_policy,
    effective_mtls,
    inbound_filter_chains,
    namespace_mtls_mode,
    tls_inspector,
)
from mesh.security.ratelimit import LocalRateLimiter, TokenBucket, local_ratelimit_filters
from mesh.security.rbac import AuthzFilters, build_http_rbac, build_network_rbac
from mesh.security.rbac_eval import RbacDecision, RequestContext, evaluate_rbac_filters
from mesh.security.selection import authorization_policies_for, request_authentications_for
from mesh.topology import Pod, Topology

__all__ = [
    "SECURITY_TYPE_URLS",
    "AuthzFilters",
    "AuthzVerdict",
    "ClientTLS",
    "InboundRequest",
    "JwtOutcome",
    "JwtStatus",
    "LocalRateLimiter",
    "MtlsPolicy",
    "NetworkPolicies",
    "NetworkVerdict",
    "RbacDecision",
    "RequestContext",
    "SignatureCheck",
    "TokenBucket",
    "TokenCheck",
    "UpstreamEndpoint",
    "accepts",
    "authenticate",
    "build_http_rbac",
    "build_network_rbac",
    "check_request",
    "client_sends_mtls",
    "client_tls",
    "client_tls_decision",
    "connection_security_policy",
    "effective_mtls",
    "evaluate_rbac_filters",
    "inbound_filter_chains",
    "inbound_security_filters",
    "inbound_tcp_security_filters",
    "local_ratelimit_filters",
    "namespace_mtls_mode",
    "peer_authentication_of",
    "tls_inspector",
]


def inbound_security_filters(
    pod: Pod,
    resources: Sequence[Resource],
    topology: Topology,
    *,
    port: int | None = None,
    jwks_resolver: JwksResolver | None = None,
) -> list[dict[str, Any]]:
    """The HTTP filters the security policies put in front of ``pod``'s inbound router on
    container ``port`` (None: filters that apply to every port), in istiod's order:
    ``jwt_authn``, RBAC (AUDIT as ``LOG``, DENY, ALLOW), ``local_ratelimit``."""
    root = topology.config.root_namespace
    out: list[dict[str, Any]] = []
    jwt = jwt_authn_filter(request_authentications_for(pod, resources, root), jwks_resolver)
    if jwt is not None:
        out.append(jwt)
    out.extend(build_http_rbac(authorization_policies_for(pod, resources, root)).filters)
    out.extend(local_ratelimit_filters(pod, resources, root_namespace=root, port=port))
    return out


def inbound_tcp_security_filters(
    pod: Pod, resources: Sequence[Resource], topology: Topology, *, stat_prefix: str = "tcp."
) -> list[dict[str, Any]]:
    """The network RBAC filters in front of ``tcp_proxy`` on ``pod``'s TCP inbound chains."""
    root = topology.config.root_namespace
    policies = authorization_policies_for(pod, resources, root)
    return list(build_network_rbac(policies, stat_prefix).filters)


def peer_authentication_of(
    pod: Pod, resources: Sequence[Resource], topology: Topology
) -> MtlsPolicy:
    """The resolved PeerAuthentication of ``pod`` (mode per port via ``for_port``)."""
    pas = [r for r in resources if isinstance(r, PeerAuthentication)]
    return effective_mtls(pod, pas, topology.config.root_namespace)
