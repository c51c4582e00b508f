"""Cross-resource checks of the security resources, for ``meshplay analyze`` (:mod:`mesh.analyze`
runs them with the others).

* CUSTOM AuthorizationPolicies delegate to an external authorizer (ext_authz) that meshplay does
  not model: the policy produces no filter, so requests it would deny get through (MPY2006).
* A ``when`` key Istio does not know is rejected by its validation webhook (IST0106); the
  ``experimental.envoy.filters.*`` keys are valid but not modelled (MPY2001).
* ``source.namespaces`` naming a namespace nothing lives in never matches (IST0101).
* An ALLOW policy without rules matches nothing, so it denies every request to the workloads
  it selects (MPY3005) - Istio's documented "deny all", and a frequent accident.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mesh.analyze.common import Path, diag
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import AuthorizationPolicy, AuthorizationPolicyAction, Namespace, Resource
from mesh.security.rbac_match import UnsupportedKeyError, check_key
from mesh.topology import Topology

__all__ = [
    "check_allow_without_rules",
    "check_authorization_conditions",
    "check_custom_authorization",
    "check_source_namespaces",
]


def _policies(resources: Sequence[Resource]) -> list[AuthorizationPolicy]:
    return [r for r in resources if isinstance(r, AuthorizationPolicy)]


def check_custom_authorization(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """MPY2006: a CUSTOM policy (ext_authz) is not modelled: no filter, nothing denied."""
    for p in _policies(resources):
        if p.action is AuthorizationPolicyAction.CUSTOM:
            provider = p.provider.name if p.provider is not None else "?"
            yield diag("MPY2006", p, ("spec", "action"),
                        f"action CUSTOM (external authorizer {provider!r}) is not modelled: sim and "
                        "local install no filter for it, so it denies nothing",
                        "use ALLOW/DENY rules to see the decision in sim and local; kube applies it "
                        "as-is")  # fmt: skip


def check_authorization_conditions(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0106 for a ``when`` key Istio rejects; MPY2001 for an experimental one."""
    for p in _policies(resources):
        for i, rule in enumerate(p.rules or ()):
            for j, condition in enumerate(rule.when):
                try:
                    check_key(condition.key)
                except UnsupportedKeyError as exc:
                    path: Path = ("spec", "rules", i, "when", j, "key")
                    if condition.key.startswith("experimental.envoy.filters."):
                        yield diag("MPY2001", p, path, f"{exc}; the condition is ignored",
                                    "kube applies it as-is")  # fmt: skip
                    else:
                        yield diag("IST0106", p, path, f"{exc}: Istio rejects the policy",
                                    "keys are request.headers[...], source.ip, source.namespace, "
                                    "source.principal, request.auth.*, destination.port, "
                                    "connection.sni, ...")  # fmt: skip


def _namespaces(resources: Sequence[Resource], topo: Topology) -> set[str]:
    known = {r.name for r in resources if isinstance(r, Namespace)}
    known |= {r.namespace for r in resources if r.namespace}
    known |= {p.namespace for p in topo.pods}
    known.add(topo.config.root_namespace)
    return known


def check_source_namespaces(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0101: ``source.namespaces`` / ``notNamespaces`` naming a namespace that does not
    exist (wildcards aside)."""
    known = _namespaces(resources, topo)
    for p in _policies(resources):
        for i, rule in enumerate(p.rules or ()):
            for j, origin in enumerate(rule.from_):
                for field, values in (
                    ("namespaces", origin.source.namespaces),
                    ("notNamespaces", origin.source.not_namespaces),
                ):
                    for k, ns in enumerate(values):
                        if "*" in ns or ns in known:
                            continue
                        path: Path = ("spec", "rules", i, "from", j, "source", field, k)
                        yield diag("IST0101", p, path,
                                    f"referenced namespace not found: {ns!r}",
                                    did_you_mean(ns, sorted(known))
                                    or "no resource of the mesh lives in it")  # fmt: skip


def check_allow_without_rules(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """MPY3005: an ALLOW policy with no rules denies every request to what it selects."""
    for p in _policies(resources):
        if p.action is AuthorizationPolicyAction.ALLOW and not p.rules:
            yield diag("MPY3005", p, ("spec",),
                        "ALLOW policy without rules matches no request: every request to the "
                        "workloads it selects is denied (403 RBAC: access denied)",
                        "add rules for what should be allowed, or write `rules: [{}]` to allow "
                        "everything")  # fmt: skip
