"""Cross-resource checks of the security resources, for ``meshplay analyze`` (:mod:`mesh.analyze`
runs them with the others).

* CUSTOM AuthorizationPolicies delegate to an external authorizer (ext_authz) that meshplay does
  not model: the policy produces no filter, so requests it would deny get through (MPY2006).
* A ``when`` key Istio does not know is rejected by its validation webhook (IST0106); the
  ``experimental.envoy.filters.*`` keys are valid but not modelled (MPY2001).
* ``source.namespaces`` naming a namespace nothing lives in never matches (IST0101).
* A policy whose selector matches no workload with a proxy has no effect (IST0127); for an
  AuthorizationPolicy without selector, a namespace without such workloads. istioctl checks
  AuthorizationPolicies only; meshplay also checks PeerAuthentication, RequestAuthentication and
  EnvoyFilter selectors (same meaning, same code).
* An ALLOW policy without rules matches nothing, so it denies every request to the workloads
  it selects (MPY3005) - Istio's documented "deny all", and a frequent accident.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mesh.analyze.common import (
    Path,
    diag,
    go_quote,
    in_mesh,
    labels_match,
    of_kind,
    selector_string,
)
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import (
    AuthorizationPolicy,
    AuthorizationPolicyAction,
    EnvoyFilter,
    Namespace,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
)
from mesh.security.rbac_match import UnsupportedKeyError, check_key
from mesh.topology import Topology

__all__ = [
    "check_allow_without_rules",
    "check_authorization_conditions",
    "check_custom_authorization",
    "check_policy_selectors",
    "check_source_namespaces",
]


def _policies(resources: Sequence[Resource]) -> list[AuthorizationPolicy]:
    return of_kind(resources, AuthorizationPolicy)


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


def _namespace_matches(pattern: str, namespace: str) -> bool:
    """AuthorizationPolicy namespace values: exact (any case), ``*``, ``prefix*`` or ``*suffix``."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return pattern.lower() == namespace.lower()


def check_source_namespaces(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0101: ``source.namespaces`` / ``notNamespaces`` naming no namespace of the cluster."""
    known = _namespaces(resources, topo)
    for p in _policies(resources):
        for i, rule in enumerate(p.rules or ()):
            for j, origin in enumerate(rule.from_):
                for field, values in (
                    ("namespaces", origin.source.namespaces),
                    ("notNamespaces", origin.source.not_namespaces),
                ):
                    for k, ns in enumerate(values):
                        if any(_namespace_matches(ns, n) for n in known):
                            continue
                        path: Path = ("spec", "rules", i, "from", j, "source", field, k)
                        yield diag("IST0101", p, path,
                                   f"Referenced namespace not found: {go_quote(ns)}",
                                   did_you_mean(ns, sorted(known))
                                   or "no resource of the mesh lives in it")  # fmt: skip


def check_policy_selectors(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0127: a policy selecting no workload with a proxy (only those enforce policies)."""
    root = topo.config.root_namespace
    pods = [p for p in topo.pods if in_mesh(p)]
    hint = "check the labels against the pod template labels of your Deployments"
    for r in resources:
        if isinstance(r, AuthorizationPolicy | PeerAuthentication | RequestAuthentication):
            selector = r.selector.match_labels if r.selector is not None else None
            path: Path = ("spec", "selector")
        elif isinstance(r, EnvoyFilter):
            selector = r.workload_selector.labels if r.workload_selector is not None else None
            path = ("spec", "workloadSelector")
        else:
            continue
        scope = [p for p in pods if r.namespace in (root, p.namespace)]
        if selector is None:
            if isinstance(r, AuthorizationPolicy) and r.namespace != root and not scope:
                yield diag("IST0127", r, ("metadata", "name"),
                           "No matching workloads for this resource with the following labels: ",
                           f"no workload with a sidecar runs in namespace {r.namespace}")  # fmt: skip
            continue
        if not any(labels_match(selector, p.labels) for p in scope):
            yield diag("IST0127", r, path,
                       "No matching workloads for this resource with the following labels: "
                       f"{selector_string(selector)}", hint)  # fmt: skip


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
