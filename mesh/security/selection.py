"""Which security policies apply to a workload, by Istio's scoping rules.

AuthorizationPolicy and RequestAuthentication (``security/v1beta1`` ``WorkloadSelector``):
a policy in the root namespace (``istio-system``) without selector applies to every workload of
the mesh, with selector to the matching workloads of *every* namespace; a policy in another
namespace applies to the workloads of that namespace, all of them without selector.
PeerAuthentication has its own three-level precedence (see :mod:`mesh.security.peer_authn`).
EnvoyFilter follows the same rule as the first two with ``workloadSelector.labels``.

Istio orders policies by creation time; meshplay has no API server, so the *apply order* of the
resources (the order of the state, as ``kubectl apply`` would create them) stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from mesh.model import AuthorizationPolicy, EnvoyFilter, RequestAuthentication, Resource
from mesh.model.common import LabelsWorkloadSelector, WorkloadSelector
from mesh.topology import Pod

__all__ = [
    "applies_to",
    "authorization_policies_for",
    "envoy_filters_for",
    "of_kind",
    "request_authentications_for",
]

R = TypeVar("R", bound=Resource)


def of_kind(resources: Iterable[Resource], kind: type[R]) -> list[R]:
    """The resources of one kind, in apply order."""
    return [r for r in resources if isinstance(r, kind)]


def applies_to(
    namespace: str,
    selector: WorkloadSelector | LabelsWorkloadSelector | None,
    pod: Pod,
    root_namespace: str,
) -> bool:
    """Whether a policy in ``namespace`` with ``selector`` applies to ``pod``."""
    if namespace not in (root_namespace, pod.namespace):
        return False
    if selector is None or not selector.match_labels:
        return True
    return selector.matches(pod.labels)


def authorization_policies_for(
    pod: Pod, resources: Sequence[Resource], root_namespace: str
) -> list[AuthorizationPolicy]:
    """The AuthorizationPolicies enforced by ``pod``'s sidecar, root namespace first (as istiod
    lists them), each group in apply order."""
    found = [
        p
        for p in of_kind(resources, AuthorizationPolicy)
        if applies_to(p.namespace, p.selector, pod, root_namespace)
    ]
    return sorted(found, key=lambda p: 0 if p.namespace == root_namespace else 1)


def request_authentications_for(
    pod: Pod, resources: Sequence[Resource], root_namespace: str
) -> list[RequestAuthentication]:
    """The RequestAuthentications whose JWT rules ``pod``'s sidecar enforces."""
    found = [
        p
        for p in of_kind(resources, RequestAuthentication)
        if applies_to(p.namespace, p.selector, pod, root_namespace)
    ]
    return sorted(found, key=lambda p: 0 if p.namespace == root_namespace else 1)


def envoy_filters_for(
    pod: Pod, resources: Sequence[Resource], root_namespace: str
) -> list[EnvoyFilter]:
    """The EnvoyFilters patching ``pod``'s proxy: root namespace first, then by ``priority``."""
    found = [
        f
        for f in of_kind(resources, EnvoyFilter)
        if applies_to(f.namespace, f.workload_selector, pod, root_namespace)
    ]
    return sorted(found, key=lambda f: (0 if f.namespace == root_namespace else 1, f.priority))
