"""security.istio.io PeerAuthentication, AuthorizationPolicy and RequestAuthentication
(peer_authentication.proto, authorization_policy.proto, request_authentication.proto, jwt.proto).

PeerAuthentication decides whether a workload's inbound side accepts plaintext, mTLS or both.
RequestAuthentication validates JWTs (an invalid token is rejected, a missing one is not).
AuthorizationPolicy evaluates CUSTOM, then DENY, then ALLOW rules into Envoy RBAC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from mesh.model.common import Duration, FrozenMap, Resource, WorkloadSelector

__all__ = [
    "AuthorizationPolicy",
    "AuthorizationPolicyAction",
    "ClaimToHeader",
    "Condition",
    "ExtensionProvider",
    "JWTHeader",
    "JWTRule",
    "MutualTLS",
    "MutualTLSMode",
    "Operation",
    "PeerAuthentication",
    "RequestAuthentication",
    "Rule",
    "RuleFrom",
    "RuleTo",
    "Source",
]

SECURITY_VERSIONS: tuple[str, ...] = ("v1", "v1beta1")


class MutualTLSMode(StrEnum):
    """PeerAuthentication.MutualTLS.Mode. UNSET inherits from the parent scope."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


@dataclass(frozen=True, slots=True, kw_only=True)
class MutualTLS:
    """The mTLS mode of a PeerAuthentication (or of one of its ports)."""

    mode: MutualTLSMode = MutualTLSMode.UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAuthentication(Resource):
    """security.istio.io PeerAuthentication (mesh-wide in the root namespace, namespace, workload)."""

    API_GROUP: ClassVar[str] = "security.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = SECURITY_VERSIONS
    KIND: ClassVar[str] = "PeerAuthentication"
    PLURAL: ClassVar[str] = "peerauthentications"

    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: FrozenMap[int, MutualTLS] = field(default_factory=FrozenMap)


class AuthorizationPolicyAction(StrEnum):
    """What a matching rule does."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Who sends the request: peer identity, JWT principal, namespace, IP."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    not_service_accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """What the request does: host, port, method, path (with Istio's ``*`` prefix/suffix rules)."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleFrom:
    """Rule.From"""

    source: Source


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleTo:
    """Rule.To"""

    operation: Operation


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """An extra attribute test (``request.headers[x]``, ``source.ip``, ``request.auth.claims[..]``)."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A rule matches when every present section matches (from AND to AND when)."""

    from_: tuple[RuleFrom, ...] = ()
    to: tuple[RuleTo, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionProvider:
    """The external authorizer of a CUSTOM policy."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationPolicy(Resource):
    """security.istio.io AuthorizationPolicy."""

    API_GROUP: ClassVar[str] = "security.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = SECURITY_VERSIONS
    KIND: ClassVar[str] = "AuthorizationPolicy"
    PLURAL: ClassVar[str] = "authorizationpolicies"
    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"targetRef", "targetRefs"})

    selector: WorkloadSelector | None = None
    rules: tuple[Rule, ...] | None = None
    action: AuthorizationPolicyAction = AuthorizationPolicyAction.ALLOW
    provider: ExtensionProvider | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JWTHeader:
    """A header a JWT is read from, with an optional prefix (``Bearer ``)."""

    name: str
    prefix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimToHeader:
    """Copy a verified claim into a request header."""

    header: str
    claim: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JWTRule:
    """How to validate tokens of one issuer."""

    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: tuple[JWTHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str = ""
    forward_original_token: bool = False
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    timeout: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAuthentication(Resource):
    """security.istio.io RequestAuthentication."""

    API_GROUP: ClassVar[str] = "security.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = SECURITY_VERSIONS
    KIND: ClassVar[str] = "RequestAuthentication"
    PLURAL: ClassVar[str] = "requestauthentications"
    UNMODELLED: ClassVar[frozenset[str]] = frozenset({"targetRef", "targetRefs"})

    selector: WorkloadSelector | None = None
    jwt_rules: tuple[JWTRule, ...] = ()
