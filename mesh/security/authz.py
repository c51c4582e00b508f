"""One request against a workload's whole inbound security path, decided from the Envoy config:
PeerAuthentication (does the connection get in at all?) -> jwt_authn -> RBAC (AUDIT, DENY,
ALLOW). What ``meshplay authz-check`` prints and what the simulator's inbound path can call.

Local rate limiting is stateful (a token bucket per sidecar) and NetworkPolicy sits below the
sidecar, so neither is part of this per-request verdict; see :mod:`mesh.security.ratelimit` and
:mod:`mesh.security.network_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.model import DestinationRule, FrozenMap, PeerAuthentication, Resource
from mesh.model.destination_rule import ClientTLSSettings
from mesh.security.jwt import JwksResolver, jwt_authn_filter
from mesh.security.jwt_verify import JwtOutcome, Verifier, authenticate, rs256_verifier
from mesh.security.mtls_client import (
    ClientTLS,
    UpstreamEndpoint,
    client_tls_decision,
)
from mesh.security.peer_authn import accepts, effective_mtls, namespace_mtls_mode
from mesh.security.rbac import AuthzFilters, build_http_rbac
from mesh.security.rbac_eval import RbacDecision, RequestContext, evaluate_rbac_filters
from mesh.security.selection import (
    authorization_policies_for,
    of_kind,
    request_authentications_for,
)
from mesh.topology import Pod, ProxyKind, Topology

__all__ = ["AuthzVerdict", "InboundRequest", "check_request", "client_sends_mtls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundRequest:
    """A request arriving at ``port`` (the container/target port) of a server pod.

    ``source`` is the calling pod (None: a client outside the mesh at ``source_ip``);
    ``mtls`` overrides what the client would do (None: auto mTLS / DestinationRule decide).
    """

    method: str = "GET"
    path: str = "/"
    authority: str = ""
    headers: Mapping[str, str] = field(default_factory=FrozenMap)
    port: int
    source: Pod | None = None
    source_ip: str = "127.0.0.1"
    mtls: bool | None = None


@dataclass(frozen=True, slots=True)
class AuthzVerdict:
    """The outcome: who stopped the request (``stage``), with Envoy's status and body.

    ``stage`` is ``mtls`` (connection refused: no HTTP status, ``status`` 0), ``jwt``, ``rbac``
    or ``app`` (the request reaches the application).
    """

    allowed: bool
    stage: str
    status: int
    body: str
    reason: str
    mtls: bool
    rbac: RbacDecision | None = None
    jwt: JwtOutcome | None = None
    not_modelled: tuple[str, ...] = ()

    @property
    def policy(self) -> tuple[str, str, int] | None:
        """The AuthorizationPolicy ``(namespace, name, rule)`` that decided, if any."""
        return self.rbac.authorization_policy if self.rbac is not None else None


def _dr_tls(
    resources: Sequence[Resource], topology: Topology, server: Pod, port: int
) -> ClientTLSSettings | None:
    """The DestinationRule TLS settings a client uses towards ``server`` (namespace-local DR
    first, then the server's namespace, then the root namespace; port-level wins)."""
    services = topology.services_of(server)
    hosts = {s.hostname for s in services}
    service_ports = {p.port for s in services for p in s.ports if p.target_port == port}
    for dr in of_kind(resources, DestinationRule):
        if topology.resolve_host(dr.host, dr.namespace) not in hosts or dr.traffic_policy is None:
            continue
        for ptp in dr.traffic_policy.port_level_settings:
            if ptp.port is not None and ptp.port.number in service_ports and ptp.tls is not None:
                return ptp.tls
        if dr.traffic_policy.tls is not None:
            return dr.traffic_policy.tls
    return None


def client_sends_mtls(
    client: Pod | None, server: Pod, port: int, resources: Sequence[Resource], topology: Topology
) -> bool:
    """Whether the client's connection to ``server:port`` is Istio mTLS: a client without a
    sidecar never is; a sidecar follows its DestinationRule or auto mTLS (reference §9.4)."""
    if client is None or client.proxy is not ProxyKind.SIDECAR:
        return False
    pas = of_kind(resources, PeerAuthentication)
    root = topology.config.root_namespace
    endpoint = UpstreamEndpoint(
        server.identity,
        server.proxy is ProxyKind.SIDECAR,
        effective_mtls(server, pas, root).for_port(port),
    )
    decision = client_tls_decision(
        [endpoint],
        _dr_tls(resources, topology, server, port),
        namespace_mode=namespace_mtls_mode(server.namespace, pas, root),
        auto_mtls=topology.config.enable_auto_mtls,
    )
    return decision in (ClientTLS.ISTIO_MUTUAL, ClientTLS.AUTO)


def check_request(
    server: Pod,
    request: InboundRequest,
    resources: Sequence[Resource],
    topology: Topology,
    *,
    now: float,
    verifier: Verifier = rs256_verifier,
    jwks_resolver: JwksResolver | None = None,
) -> AuthzVerdict:
    """Would ``request`` reach the application on ``server``, and if not, what stopped it?"""
    root = topology.config.root_namespace
    mtls = (
        request.mtls
        if request.mtls is not None
        else client_sends_mtls(request.source, server, request.port, resources, topology)
    )
    if server.proxy is not ProxyKind.SIDECAR:
        return AuthzVerdict(
            True, "app", 200, "", f"{server.name} has no sidecar: nothing is enforced", mtls
        )
    mode = effective_mtls(server, of_kind(resources, PeerAuthentication), root)
    port_mode = mode.for_port(request.port)
    if not accepts(port_mode, mtls):
        what = "plaintext" if not mtls else "mTLS"
        return AuthzVerdict(
            False, "mtls", 0, "",
            f"port {request.port} of {server.name} is {port_mode.value} ({mode.decided_by}): "
            f"a {what} connection matches no filter chain and is closed",
            mtls,
        )  # fmt: skip
    headers = {k.lower(): v for k, v in request.headers.items()}
    jwt_filter = jwt_authn_filter(
        request_authentications_for(server, resources, root), jwks_resolver
    )
    outcome: JwtOutcome | None = None
    metadata: dict[str, dict[str, Any]] = {}
    if jwt_filter is not None:
        outcome = authenticate(
            jwt_filter["typed_config"], headers, request.path, now=now, verifier=verifier
        )
        if not outcome.allowed:
            return AuthzVerdict(False, "jwt", outcome.http_status, outcome.body,
                                f"jwt_authn rejected the token: {outcome.body}", mtls, jwt=outcome)  # fmt: skip
        metadata = outcome.metadata
    built: AuthzFilters = build_http_rbac(authorization_policies_for(server, resources, root))
    peer = ""
    if mtls and request.source is not None:
        peer = request.source.identity
    ctx = RequestContext(
        method=request.method.upper(),
        path=request.path,
        authority=request.authority or headers.get("host", ""),
        headers=FrozenMap(headers),
        destination_port=request.port,
        destination_ip=server.address,
        source_ip=request.source.address if request.source is not None else request.source_ip,
        peer_principal=peer,
        metadata=FrozenMap(metadata),
    )
    decision = evaluate_rbac_filters(built.filters, ctx)
    if not decision.allowed:
        return AuthzVerdict(False, "rbac", 403, decision.body, _explain(decision), mtls,
                            decision, outcome, built.not_modelled)  # fmt: skip
    return AuthzVerdict(
        True, "app", 200, "", _explain(decision), mtls, decision, outcome, built.not_modelled
    )


def _explain(decision: RbacDecision) -> str:
    found = decision.authorization_policy
    if not decision.allowed:
        if found is None:
            return "ALLOW policies apply to the workload and none of their rules matched"
        ns, name, rule = found
        return f"DENY policy {ns}/{name} rule {rule} matched"
    if found is None:
        return "no ALLOW policy applies to the workload and no DENY rule matched"
    ns, name, rule = found
    return f"ALLOW policy {ns}/{name} rule {rule} matched"
