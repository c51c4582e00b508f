"""ServiceEntry checks (istioctl's ``serviceentry.*`` analyzers).

* IST0134: a TCP port (or one without protocol) on an entry without ``addresses`` that Istio does
  not give an address either. A sidecar can only tell TCP connections apart by destination IP, so
  without one the port cannot be routed to this entry. Since Istio 1.25 istiod allocates an
  address itself for entries with resolution DNS or STATIC unless the label
  ``networking.istio.io/enable-autoallocate-ip: "false"`` opts out; resolution NONE never gets one.
* IST0177: ServiceEntries visible in the same namespaces giving one host and port different
  protocols: which one a sidecar uses is undefined.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from mesh.analyze.common import diag, go_quote, of_kind
from mesh.diagnostics import Diagnostic
from mesh.model import Resource, ServiceEntry, ServiceEntryResolution
from mesh.topology import Topology

__all__ = ["check_service_entry_addresses", "check_service_entry_protocols"]

AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"


def _auto_allocated(se: ServiceEntry) -> bool:
    """Whether istiod assigns this entry an address (``status.addresses``)."""
    opted_out = se.metadata.labels.get(AUTOALLOCATE_LABEL, "").lower() == "false"
    return se.resolution is not ServiceEntryResolution.NONE and not opted_out


def check_service_entry_addresses(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0134: TCP ports of an entry without any address."""
    del topo
    for se in of_kind(resources, ServiceEntry):
        if se.addresses or _auto_allocated(se):
            continue
        for i, port in enumerate(se.ports):
            if port.protocol == "" or port.protocol.upper() == "TCP":
                yield diag("IST0134", se, ("spec", "ports", i),
                           "ServiceEntry addresses are required for this protocol.",
                           "add addresses (the IPs or CIDRs clients connect to), or use an HTTP/TLS "
                           "protocol, which is routed by Host or SNI")  # fmt: skip


def _scopes(se: ServiceEntry) -> set[str]:
    if not se.export_to or "*" in se.export_to:
        return {"*"}
    return {se.namespace if e == "." else e for e in se.export_to}


def check_service_entry_protocols(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0177: one host and port, several protocols, across ServiceEntries (reported once per
    entry, at its port)."""
    del topo
    index: dict[tuple[str, str, int], list[tuple[str, ServiceEntry, int]]] = defaultdict(list)
    for se in of_kind(resources, ServiceEntry):
        for scope in _scopes(se):
            for host in se.hosts:
                for i, port in enumerate(se.ports):
                    index[(scope, host, port.number)].append((port.protocol.upper(), se, i))
    reported: set[tuple[str, str]] = set()
    for (scope, host, number), own in sorted(index.items(), key=lambda kv: kv[0]):
        entries = own if scope == "*" else [*own, *index.get(("*", host, number), [])]
        protocols = sorted({protocol for protocol, _, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({f"{se.namespace}/{se.name}" for _, se, _ in entries}))
        for _, se, i in entries:
            if (se.namespace, se.name) in reported:
                continue
            reported.add((se.namespace, se.name))
            yield diag("IST0177", se, ("spec", "ports", i),
                       f"Multiple ServiceEntries ({names}) define the same host {go_quote(host)} and "
                       f"port {number} with conflicting protocols ({', '.join(protocols)}).",
                       "give the port the same protocol in every ServiceEntry of this host")  # fmt: skip
