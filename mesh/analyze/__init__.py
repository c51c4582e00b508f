"""Offline analysis in the spirit of ``istioctl analyze``: cross-resource checks.

Each check is one function over the applied resources and the topology derived from them, and
yields diagnostics positioned at the offending field. Where istioctl has an analyzer for the
problem, the check fires when istioctl's does and prints istioctl's code, level and message
(``pkg/config/analysis/msg/messages.yaml``); meshplay's own findings use MPY codes. The list of
istioctl's analyzers and what meshplay does with each is in docs/diagnostics.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.analyze.common import Analyzer
from mesh.analyze.credentials import check_gateway_credentials, check_secret_data
from mesh.analyze.destination_rules import (
    check_destination_rules,
    check_tls_conflicts,
    check_tls_verification,
)
from mesh.analyze.envoy_filters import check_envoy_filter_operations, check_envoy_filters
from mesh.analyze.gateways import (
    check_conflicting_gateways,
    check_duplicate_certificates,
    check_gateway_servers_modelled,
    check_gateway_workloads,
)
from mesh.analyze.kubernetes import check_annotations, check_namespaces
from mesh.analyze.l4_matches import check_delegates_modelled, check_l4_matches_modelled
from mesh.analyze.routing import (
    check_conflicting_virtual_services,
    check_ingress_route_subsets,
    check_jwt_claim_routes,
    check_route_weights,
    check_virtual_service_destinations,
    check_virtual_service_gateways,
)
from mesh.analyze.rules import check_unreachable_rules
from mesh.analyze.security import (
    check_allow_without_rules,
    check_authorization_conditions,
    check_custom_authorization,
    check_policy_selectors,
    check_source_namespaces,
)
from mesh.analyze.service_entries import (
    check_service_entry_addresses,
    check_service_entry_protocols,
)
from mesh.analyze.sidecars import check_sidecar_egress_hosts, check_sidecars
from mesh.analyze.warnings import (
    check_deprecated_fields,
    check_gateway_warnings,
    check_policy_warnings,
    check_routing_warnings,
    check_service_entry_warnings,
    check_sidecar_warnings,
)
from mesh.analyze.workloads import (
    check_deployment_services,
    check_image_auto,
    check_service_accounts,
    check_services,
)
from mesh.diagnostics import Diagnostic
from mesh.model import Resource
from mesh.topology import MeshConfig, build_topology

__all__ = ["ANALYZERS", "analyze"]

ANALYZERS: tuple[Analyzer, ...] = (
    # VirtualService
    check_virtual_service_destinations,
    check_virtual_service_gateways,
    check_conflicting_virtual_services,
    check_unreachable_rules,
    check_ingress_route_subsets,
    check_jwt_claim_routes,
    check_route_weights,
    check_l4_matches_modelled,
    check_delegates_modelled,
    # DestinationRule
    check_destination_rules,
    check_tls_verification,
    check_tls_conflicts,
    # Gateway
    check_gateway_workloads,
    check_conflicting_gateways,
    check_duplicate_certificates,
    check_gateway_servers_modelled,
    check_gateway_credentials,
    check_secret_data,
    # ServiceEntry, Sidecar, EnvoyFilter
    check_service_entry_addresses,
    check_service_entry_protocols,
    check_sidecars,
    check_sidecar_egress_hosts,
    check_envoy_filters,
    check_envoy_filter_operations,
    # Kubernetes: Services, Deployments, Namespaces, annotations
    check_services,
    check_deployment_services,
    check_image_auto,
    check_service_accounts,
    check_namespaces,
    check_annotations,
    # security policies
    check_policy_selectors,
    check_custom_authorization,
    check_authorization_conditions,
    check_source_namespaces,
    check_allow_without_rules,
    # validation warnings and deprecated fields
    check_deprecated_fields,
    check_gateway_warnings,
    check_policy_warnings,
    check_routing_warnings,
    check_sidecar_warnings,
    check_service_entry_warnings,
)
"""Every check ``meshplay analyze`` runs, in order."""


def analyze(resources: Sequence[Resource], config: MeshConfig | None = None) -> list[Diagnostic]:
    """Run every analyzer over a set of applied resources; sorted, de-duplicated diagnostics."""
    topo = build_topology(resources, config)
    found: dict[tuple[object, ...], Diagnostic] = {}
    for analyzer in ANALYZERS:
        for d in analyzer(resources, topo):
            found.setdefault((d.code, d.file, d.line, d.column, d.message), d)
    return sorted(found.values(), key=Diagnostic.sort_key)
