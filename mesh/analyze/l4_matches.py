"""VirtualService fields meshplay does not translate: ``tls`` / ``tcp`` matches on
``destinationSubnets`` and ``http`` delegation.

``destinationSubnets`` becomes a filter chain ``prefix_ranges`` match in istiod (the
destination IP of the connection, decided by Envoy at run time). meshplay's TCP and TLS chains
carry one address range (the service's own CIDR), so a match that sets it is reported here
(MPY2001, at the field) and yields no chain on sim and local. ``sourceLabels``,
``sourceNamespace``, ``port``, ``gateways`` and ``sniHosts`` are translated
(:mod:`mesh.envoy.l4_match`).

An ``http`` route with ``delegate`` hands its matches to another VirtualService in istiod (the
delegate's routes are merged under the root's match). meshplay leaves such a route out
(:func:`mesh.envoy.routes.http_routes`): reported here (MPY2001, at ``delegate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mesh.analyze.common import diag, of_kind
from mesh.diagnostics import Diagnostic
from mesh.model import Resource, VirtualService
from mesh.topology import Topology

__all__ = ["check_delegates_modelled", "check_l4_matches_modelled"]


def check_l4_matches_modelled(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """MPY2001 for every ``tls`` / ``tcp`` match with ``destinationSubnets``."""
    del topo
    for vs in of_kind(resources, VirtualService):
        rules: list[tuple[str, int, Sequence[object]]] = [
            *(("tls", i, r.match) for i, r in enumerate(vs.tls)),
            *(("tcp", i, r.match) for i, r in enumerate(vs.tcp)),
        ]
        for section, i, matches in rules:
            for j, m in enumerate(matches):
                if getattr(m, "destination_subnets", ()):
                    yield diag("MPY2001", vs, ("spec", section, i, "match", j, "destinationSubnets"),
                               f"{section} match destinationSubnets (a filter chain prefix_ranges "
                               "match on the connection's destination IP) is not modelled: this "
                               "match yields no chain on sim and local",
                               "match by port, sniHosts or sourceLabels, or run on kube")  # fmt: skip


def check_delegates_modelled(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY2001 for every ``http`` route that delegates to another VirtualService."""
    del topo
    for vs in of_kind(resources, VirtualService):
        for i, route in enumerate(vs.http):
            if route.delegate is not None:
                target = f"{route.delegate.namespace or vs.namespace}/{route.delegate.name}"
                yield diag("MPY2001", vs, ("spec", "http", i, "delegate"),
                           f"http route delegation (to VirtualService {target}) is not modelled: "
                           "sim and local leave this route out, so its matches fall through to "
                           "the next route",
                           "write the delegate's routes into this VirtualService, or run on kube")  # fmt: skip
