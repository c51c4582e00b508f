"""Offline analysis in the spirit of ``istioctl analyze``: cross-resource checks.

Each check is one function over the applied resources and the topology derived from them, and
yields diagnostics positioned at the offending field. Codes are Istio's where the meaning is the
same (IST0101 missing references, IST0109 conflicting VirtualServices, IST0127 selectors that
match nothing, IST0130 unreachable rules, IST0173 empty subsets, IST0174 unknown DR hosts, ...).
Checks live in ``routing``, ``workloads`` and ``security``; this module runs them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.analyze.common import Analyzer
from mesh.analyze.routing import (
    check_conflicting_gateways,
    check_conflicting_virtual_services,
    check_route_weights,
    check_unreachable_rules,
    check_virtual_service_destinations,
    check_virtual_service_gateways,
)
from mesh.analyze.security import (
    check_allow_without_rules,
    check_authorization_conditions,
    check_custom_authorization,
    check_source_namespaces,
)
from mesh.analyze.workloads import (
    check_destination_rules,
    check_envoy_filters,
    check_selectors,
    check_service_accounts,
    check_services,
    check_sidecars,
    check_tls_conflicts,
    check_tls_verification,
)
from mesh.diagnostics import Diagnostic
from mesh.model import Resource
from mesh.topology import MeshConfig, build_topology

__all__ = ["ANALYZERS", "analyze"]

ANALYZERS: tuple[Analyzer, ...] = (
    check_virtual_service_destinations,
    check_virtual_service_gateways,
    check_conflicting_virtual_services,
    check_unreachable_rules,
    check_route_weights,
    check_destination_rules,
    check_selectors,
    check_tls_conflicts,
    check_tls_verification,
    check_conflicting_gateways,
    check_services,
    check_service_accounts,
    check_sidecars,
    check_envoy_filters,
    check_custom_authorization,
    check_authorization_conditions,
    check_source_namespaces,
    check_allow_without_rules,
)
"""Every check ``meshplay analyze`` runs, in order (security ones: :mod:`mesh.analyze_security`)."""


def analyze(resources: Sequence[Resource], config: MeshConfig | None = None) -> list[Diagnostic]:
    """Run every analyzer over a set of applied resources; sorted, de-duplicated diagnostics."""
    topo = build_topology(resources, config)
    found: dict[tuple[object, ...], Diagnostic] = {}
    for analyzer in ANALYZERS:
        for d in analyzer(resources, topo):
            found.setdefault((d.code, d.file, d.line, d.column, d.message), d)
    return sorted(found.values(), key=Diagnostic.sort_key)
