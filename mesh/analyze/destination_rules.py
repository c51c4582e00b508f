"""DestinationRule checks (istioctl's ``destinationrule.*`` analyzers, and meshplay's own).

* IST0174: the host matches no Service or ServiceEntry visible from the rule's namespace.
* IST0173: a subset whose labels (with the ServiceEntry's workloadSelector) no pod carries, so
  requests routed to it fail with 503 UH. For a ServiceEntry without workloadSelector meshplay
  checks the entry's endpoints instead of pods (what the subset really selects).
* MPY3006: the subset's labels exist, but on no pod behind this Service (another service's pods
  carry them): still 503 UH. istioctl has no check for this.
* IST0128 / IST0129: client TLS SIMPLE or MUTUAL (top level / per port) without caCertificates:
  the server certificate is not verified (unless credentialName is used with a workloadSelector).
* MPY3001: plaintext or one-way TLS towards pods whose PeerAuthentication is STRICT.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from mesh.analyze.common import Path, Registry, diag, labels_match, of_kind
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import DestinationRule, PeerAuthentication, Resource, ServiceEntry, TLSMode
from mesh.model.destination_rule import ClientTLSSettings
from mesh.model.security import MutualTLSMode
from mesh.security.peer_authn import effective_mtls
from mesh.topology import MeshService, Topology

__all__ = ["check_destination_rules", "check_tls_conflicts", "check_tls_verification"]


def check_destination_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0174 unknown host; IST0173 subsets selecting no pod; MPY3006 none behind the host."""
    registry = Registry(resources, topo.config.domain_suffix)
    for dr in of_kind(resources, DestinationRule):
        entry = registry.lookup(dr.namespace, dr.export_to, dr.host)
        if entry is None:
            hint = did_you_mean(dr.host.split(".")[0], [s.name for s in topo.services])
            yield diag("IST0174", dr, ("spec", "host"),
                       f"The host {dr.host} defined in the DestinationRule does not match any "
                       "services in the mesh.", hint)  # fmt: skip
            continue
        se = entry.resource if isinstance(entry.resource, ServiceEntry) else None
        service = (
            None
            if se is not None
            else topo.service(
                f"{entry.resource.name}.{entry.resource.namespace}.{topo.config.domain_suffix}"
            )
        )
        for i, subset in enumerate(dr.subsets):
            selector = {**(entry.workload_selector or {}), **subset.labels}
            labels = ",".join(f"{k}={v}" for k, v in subset.labels.items()) or "no labels"
            if se is not None and entry.workload_selector is None:
                candidates: list[Mapping[str, str]] = [e.labels for e in se.endpoints]
            else:
                candidates = [p.labels for p in topo.select_pods(None, selector)]
            if not any(labels_match(selector, c) for c in candidates):
                yield diag("IST0173", dr, ("spec", "subsets", i),
                           f"The Subset {subset.name} defined in the DestinationRule does not select "
                           "any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                           _versions_hint(topo, service, labels))  # fmt: skip
            elif (
                service is not None
                and service.selector
                and not any(labels_match(subset.labels, p.labels) for p in topo.endpoints(service))
            ):
                yield diag("MPY3006", dr, ("spec", "subsets", i),
                           f'subset "{subset.name}" ({labels}) selects pods, but none behind '
                           f"{service.name}; requests routed to it fail with 503 UH",
                           _versions_hint(topo, service, labels))  # fmt: skip


def _versions_hint(topo: Topology, service: MeshService | None, labels: str) -> str:
    if service is None:
        return f"no pod carries {labels}"
    pods = topo.endpoints(service)
    versions = sorted({p.labels.get("version", "") for p in pods} - {""})
    if versions:
        return f"pods of {service.name} have version labels: {', '.join(versions)}"
    return (
        f"no pods back {service.name}" if not pods else f"no pod of {service.name} carries {labels}"
    )


def _unverified(tls: ClientTLSSettings | None, dr: DestinationRule) -> bool:
    if tls is None or tls.mode not in (TLSMode.SIMPLE, TLSMode.MUTUAL):
        return False
    return not tls.ca_certificates and not (
        tls.credential_name and dr.workload_selector is not None
    )


def check_tls_verification(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0128 / IST0129: SIMPLE or MUTUAL client TLS without caCertificates."""
    del topo
    hint = "set caCertificates, or use ISTIO_MUTUAL inside the mesh"
    for dr in of_kind(resources, DestinationRule):
        policy = dr.traffic_policy
        if policy is None:
            continue
        if _unverified(policy.tls, dr):
            assert policy.tls is not None
            yield diag("IST0128", dr, ("spec", "trafficPolicy", "tls"),
                       f"DestinationRule {dr.namespace}/{dr.name} in namespace {dr.namespace} has TLS "
                       f"mode set to {policy.tls.mode.value} but no caCertificates are set to "
                       f"validate server identity for host: {dr.host}", hint)  # fmt: skip
        for i, port in enumerate(policy.port_level_settings):
            if _unverified(port.tls, dr):
                assert port.tls is not None
                number = port.port.number if port.port is not None else 0
                path: Path = ("spec", "trafficPolicy", "portLevelSettings", i, "tls")
                yield diag("IST0129", dr, path,
                           f"DestinationRule {dr.namespace}/{dr.name} in namespace {dr.namespace} has "
                           f"TLS mode set to {port.tls.mode.value} but no caCertificates are set to "
                           f"validate server identity for host: {dr.host} at port number:{number}",
                           hint)  # fmt: skip


def check_tls_conflicts(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3001: a DestinationRule that sends plaintext (DISABLE) or one-way TLS (SIMPLE) to
    workloads whose PeerAuthentication is STRICT: the server refuses every connection."""
    pas = of_kind(resources, PeerAuthentication)
    if not pas:
        return
    root = topo.config.root_namespace
    for dr in of_kind(resources, DestinationRule):
        policy = dr.traffic_policy
        tls = policy.tls if policy is not None else None
        if tls is None or tls.mode not in (TLSMode.DISABLE, TLSMode.SIMPLE):
            continue
        service = topo.service(topo.resolve_host(dr.host, dr.namespace))
        if service is None:
            continue
        strict = [
            p.name for p in topo.endpoints(service)
            if effective_mtls(p, pas, root).mode is MutualTLSMode.STRICT
        ]  # fmt: skip
        if strict:
            yield diag("MPY3001", dr, ("spec", "trafficPolicy", "tls", "mode"),
                       f"tls mode {tls.mode.value} towards {service.name}, whose pods require mutual "
                       f"TLS (PeerAuthentication STRICT): {', '.join(strict[:3])}; requests fail "
                       "with 503", "use mode ISTIO_MUTUAL, or remove the tls block (auto mTLS)")  # fmt: skip
