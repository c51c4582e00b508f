"""AuthorizationPolicy -> Envoy RBAC filters, as istiod's ``authz/builder`` builds them.

Per workload, the policies that apply to it (see :mod:`mesh.security.selection`) are grouped by
action and each group becomes one RBAC filter, in istiod's order: AUDIT (action ``LOG``: logs,
never denies), DENY, ALLOW. CUSTOM (ext_authz) is not modelled: such policies are reported in
:attr:`AuthzFilters.not_modelled` and produce no filter. A policy annotated
``istio.io/dry-run: "true"`` goes into its filter's ``shadow_rules`` (evaluated, never enforced).

Every rule is one Envoy policy named ``ns[<ns>]-policy[<name>]-rule[<i>]``. A rule matches when
one of its ``to`` operations (Envoy ``permissions``, OR) and one of its ``from`` sources
(``principals``, OR) match, each AND-ing its fields, each field OR-ing its values and ``notX``
fields negated; ``when`` conditions are AND-ed into every permission (``destination.*``,
``connection.sni``) or principal (everything else). A missing ``from``/``to`` matches anything.

The empty-policy rules: ``rules`` absent ⇒ one rule that never matches (an ALLOW policy with no
rules therefore denies everything on the workload, a DENY one does nothing); ``rules: [{}]`` ⇒
one rule that matches everything. As soon as a workload has one ALLOW policy, a request no ALLOW
rule matches gets **403** ``RBAC: access denied`` (no response flag).

On TCP chains (``for_tcp``) HTTP-only attributes (hosts, methods, paths, requestPrincipals,
``request.*`` conditions) cannot be evaluated: an ALLOW rule using one is skipped (narrower), a
DENY rule just drops it (wider: it may then deny every connection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesh.envoy_api.type_urls import (
    FILTER_NETWORK_RBAC,
    FILTER_RBAC,
    NETWORK_RBAC,
    RBAC,
    typed,
)
from mesh.model import AuthorizationPolicy, AuthorizationPolicyAction
from mesh.model.security import Condition, Operation, Rule, Source
from mesh.security import rbac_match as m

__all__ = [
    "DRY_RUN_ANNOTATION",
    "AuthzFilters",
    "build_http_rbac",
    "build_network_rbac",
    "parse_policy_name",
    "policy_name",
]

Json = dict[str, Any]
DRY_RUN_ANNOTATION = "istio.io/dry-run"
MATCH_NEVER: Json = {
    "permissions": [{"not_rule": {"any": True}}],
    "principals": [{"not_id": {"any": True}}],
}
"""istiod's ``rbacPolicyMatchNever``: the single rule of a policy without ``rules``."""

_ENVOY_ACTION = {
    AuthorizationPolicyAction.AUDIT: "LOG",
    AuthorizationPolicyAction.DENY: "DENY",
    AuthorizationPolicyAction.ALLOW: "ALLOW",
}
_SHADOW_PREFIX = {
    AuthorizationPolicyAction.AUDIT: "istio_dry_run_",
    AuthorizationPolicyAction.DENY: "istio_dry_run_deny_",
    AuthorizationPolicyAction.ALLOW: "istio_dry_run_allow_",
}
_ORDER = (
    AuthorizationPolicyAction.AUDIT,
    AuthorizationPolicyAction.DENY,
    AuthorizationPolicyAction.ALLOW,
)


def policy_name(namespace: str, name: str, index: int) -> str:
    """``ns[foo]-policy[httpbin]-rule[0]`` (``builder.go``)."""
    return f"ns[{namespace}]-policy[{name}]-rule[{index}]"


def parse_policy_name(text: str) -> tuple[str, str, int] | None:
    """Inverse of :func:`policy_name`: ``(namespace, name, rule index)``."""
    if not (text.startswith("ns[") and "]-policy[" in text and text.endswith("]")):
        return None
    ns, rest = text[3:].split("]-policy[", 1)
    name, sep, idx = rest.rpartition("]-rule[")
    if not sep or not idx[:-1].isdigit():
        return None
    return ns, name, int(idx[:-1])


@dataclass(frozen=True, slots=True)
class AuthzFilters:
    """The RBAC filters of one workload, plus what could not be translated."""

    filters: tuple[Json, ...]
    not_modelled: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _or(values: list[Json], kind: str) -> Json:
    key = "or_rules" if kind == "rules" else "or_ids"
    return {key: {kind: values}}


def _not(value: Json, kind: str) -> Json:
    return {"not_rule" if kind == "rules" else "not_id": value}


def _field(
    out: list[Json], values: Sequence[str], negated: Sequence[str], build: Any, kind: str
) -> None:
    if values:
        out.append(_or([build(v) for v in values], kind))
    if negated:
        out.append(_not(_or([build(v) for v in negated], kind), kind))


def _has_http_only_source(s: Source) -> bool:
    return bool(s.request_principals or s.not_request_principals)


def _has_http_only_operation(o: Operation) -> bool:
    return bool(o.hosts or o.not_hosts or o.methods or o.not_methods or o.paths or o.not_paths)


def _is_http_only_key(key: str) -> bool:
    return key.startswith(m.HTTP_ONLY_KEYS)


def _permission(op: Operation | None, when: Sequence[Condition], for_tcp: bool) -> Json:
    rules: list[Json] = []
    if op is not None:
        if not for_tcp:
            _field(rules, op.hosts, op.not_hosts, m.host_permission, "rules")
            _field(rules, op.methods, op.not_methods, m.method_permission, "rules")
            _field(rules, op.paths, op.not_paths, m.path_permission, "rules")
        _field(rules, op.ports, op.not_ports, lambda v: {"destination_port": int(v)}, "rules")
    for c in when:
        if c.key in m.PERMISSION_KEYS:
            _field(
                rules,
                c.values,
                c.not_values,
                lambda v, k=c.key: m.condition_permission(k, v),
                "rules",
            )
    return {"and_rules": {"rules": rules or [dict(m.ANY)]}}


def _principal(src: Source | None, when: Sequence[Condition], ns: str, for_tcp: bool) -> Json:
    ids: list[Json] = []
    if src is not None:
        _field(ids, src.service_accounts, src.not_service_accounts,
               lambda v: m.service_account_principal(v, ns), "ids")  # fmt: skip
        _field(ids, src.principals, src.not_principals, m.principal_name, "ids")
        if not for_tcp:
            _field(
                ids, src.request_principals, src.not_request_principals, m.request_principal, "ids"
            )
        _field(ids, src.namespaces, src.not_namespaces, m.namespace_principal, "ids")
        _field(ids, src.remote_ip_blocks, src.not_remote_ip_blocks,
               lambda v: {"remote_ip": m.cidr(v)}, "ids")  # fmt: skip
        _field(
            ids, src.ip_blocks, src.not_ip_blocks, lambda v: {"direct_remote_ip": m.cidr(v)}, "ids"
        )
    for c in when:
        if for_tcp and _is_http_only_key(c.key):
            continue
        if c.key in m.PERMISSION_KEYS:
            continue
        _field(
            ids, c.values, c.not_values, lambda v, k=c.key: m.condition_principal(k, v, ns), "ids"
        )
    return {"and_ids": {"ids": ids or [dict(m.ANY)]}}


def _rule_policy(
    rule: Rule, ns: str, action: AuthorizationPolicyAction, for_tcp: bool
) -> Json | None:
    """One rule as an Envoy Policy; None when a TCP ALLOW rule needs HTTP attributes."""
    if for_tcp and action is AuthorizationPolicyAction.ALLOW:
        http_only = (
            any(_has_http_only_source(f.source) for f in rule.from_)
            or any(_has_http_only_operation(t.operation) for t in rule.to)
            or any(_is_http_only_key(c.key) for c in rule.when)
        )
        if http_only:
            return None
    for c in rule.when:  # validate every key up front: an invalid rule is skipped whole
        m.check_key(c.key)
    sources: list[Source | None] = [f.source for f in rule.from_] or [None]
    operations: list[Operation | None] = [t.operation for t in rule.to] or [None]
    return {
        "permissions": [_permission(op, rule.when, for_tcp) for op in operations],
        "principals": [_principal(s, rule.when, ns, for_tcp) for s in sources],
    }


def _group(
    policies: Sequence[AuthorizationPolicy], action: AuthorizationPolicyAction, for_tcp: bool
) -> tuple[Json, Json, list[str]]:
    enforced: Json = {}
    shadow: Json = {}
    problems: list[str] = []
    for p in policies:
        target = (
            shadow
            if p.metadata.annotations.get(DRY_RUN_ANNOTATION, "").lower() == "true"
            else enforced
        )
        if p.rules is None or not p.rules:
            target[policy_name(p.namespace, p.name, 0)] = MATCH_NEVER
            continue
        for i, rule in enumerate(p.rules):
            try:
                built = _rule_policy(rule, p.namespace, action, for_tcp)
            except (m.UnsupportedKeyError, ValueError) as exc:
                problems.append(f"{p.ref} rule {i}: {exc}; the rule is skipped")
                continue
            if built is not None:
                target[policy_name(p.namespace, p.name, i)] = built
    return enforced, shadow, problems


def _rbac_body(
    action: AuthorizationPolicyAction, enforced: Json, shadow: Json, has_enforced: bool
) -> Json:
    body: Json = {}
    if has_enforced:
        rules: Json = {"policies": dict(sorted(enforced.items()))}
        if action is not AuthorizationPolicyAction.ALLOW:
            rules = {"action": _ENVOY_ACTION[action], **rules}
        body["rules"] = rules
    if shadow:
        shadow_rules: Json = {"policies": dict(sorted(shadow.items()))}
        if action is not AuthorizationPolicyAction.ALLOW:
            shadow_rules = {"action": _ENVOY_ACTION[action], **shadow_rules}
        body["shadow_rules"] = shadow_rules
    body["shadow_rules_stat_prefix"] = _SHADOW_PREFIX[action]
    return body


def _build(
    policies: Sequence[AuthorizationPolicy], for_tcp: bool
) -> tuple[list[tuple[AuthorizationPolicyAction, Json]], list[str], list[str]]:
    out: list[tuple[AuthorizationPolicyAction, Json]] = []
    not_modelled = [p.ref for p in policies if p.action is AuthorizationPolicyAction.CUSTOM]
    problems: list[str] = []
    for action in _ORDER:
        group = [p for p in policies if p.action is action]
        if not group:
            continue
        enforced, shadow, found = _group(group, action, for_tcp)
        problems.extend(found)
        has_enforced = any(
            p.metadata.annotations.get(DRY_RUN_ANNOTATION, "").lower() != "true" for p in group
        )
        out.append((action, _rbac_body(action, enforced, shadow, has_enforced)))
    return out, not_modelled, problems


def build_http_rbac(policies: Sequence[AuthorizationPolicy]) -> AuthzFilters:
    """The ``envoy.filters.http.rbac`` filters for a workload's HTTP chains, in istiod order."""
    built, not_modelled, problems = _build(policies, for_tcp=False)
    filters = tuple({"name": FILTER_RBAC, "typed_config": typed(RBAC, **body)} for _, body in built)
    return AuthzFilters(filters, tuple(not_modelled), tuple(problems))


def build_network_rbac(
    policies: Sequence[AuthorizationPolicy], stat_prefix: str = "tcp."
) -> AuthzFilters:
    """The ``envoy.filters.network.rbac`` filters for a workload's TCP chains (go before
    ``tcp_proxy``); a denied connection is closed without a byte."""
    built, not_modelled, problems = _build(policies, for_tcp=True)
    filters = tuple(
        {
            "name": FILTER_NETWORK_RBAC,
            "typed_config": typed(NETWORK_RBAC, stat_prefix=stat_prefix, **body),
        }
        for _, body in built
    )
    return AuthzFilters(filters, tuple(not_modelled), tuple(problems))
