"""Workload checks: DestinationRule subsets and hosts, selectors, TLS settings, Services,
ServiceAccounts, Sidecars and EnvoyFilters (IST0110/0111, IST0118, IST0127/0128, IST0173/0174,
MPY2003, MPY3001, MPY3002, MPY3004)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

from mesh.analyze.common import diag, of_kind, registry_host
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import (
    AuthorizationPolicy,
    Deployment,
    DestinationRule,
    EnvoyFilter,
    Gateway,
    MutualTLSMode,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
    Service,
    ServiceAccount,
    Sidecar,
    TLSMode,
)
from mesh.model.common import LabelsWorkloadSelector, WorkloadSelector
from mesh.topology import Topology


def check_destination_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0174: the DR host is in the registry. IST0173: each subset selects some pods."""
    for dr in of_kind(resources, DestinationRule):
        fqdn = registry_host(topo, dr.host, dr.namespace)
        if fqdn is None:
            hint = did_you_mean(dr.host.split(".")[0], [s.name for s in topo.services])
            yield diag("IST0174", dr, ("spec", "host"),
                        f'the host "{dr.host}" defined in the DestinationRule does not match any '
                        "services in the mesh", hint)  # fmt: skip
            continue
        service = topo.service(fqdn)
        if service is None or service.from_service_entry:
            continue
        pods = topo.endpoints(service)
        for i, subset in enumerate(dr.subsets):
            if not any(all(p.labels.get(k) == v for k, v in subset.labels.items()) for p in pods):
                versions = sorted({p.labels.get("version", "") for p in pods} - {""})
                hint = (
                    f"pods of {service.name} have version labels: {', '.join(versions)}"
                    if versions
                    else f"no pods back {service.name}"
                )
                labels = ",".join(f"{k}={v}" for k, v in subset.labels.items())
                yield diag("IST0173", dr, ("spec", "subsets", i),
                            f'this DestinationRule subset "{subset.name}" ({labels}) does not select '
                            "any pods; requests routed to it fail with 503", hint)  # fmt: skip


def _selector_matches_nothing(
    selector: WorkloadSelector | LabelsWorkloadSelector | None, namespace: str, topo: Topology
) -> bool:
    if selector is None or not selector.match_labels:
        return False
    if namespace == topo.config.root_namespace:
        return not topo.select_pods(None, selector.match_labels)
    return not topo.select_pods(namespace, selector.match_labels)


def check_selectors(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0127: policies whose selector matches no workload have no effect."""
    for r in resources:
        selector: WorkloadSelector | LabelsWorkloadSelector | None = None
        field = "selector"
        if isinstance(r, AuthorizationPolicy | PeerAuthentication | RequestAuthentication):
            selector = r.selector
        elif isinstance(r, Sidecar | EnvoyFilter):
            selector, field = r.workload_selector, "workloadSelector"
        if _selector_matches_nothing(selector, r.namespace, topo):
            assert selector is not None
            labels = ",".join(f"{k}={v}" for k, v in selector.match_labels.items())
            yield diag("IST0127", r, ("spec", field),
                        f"no matching workloads for this resource with the following labels: {labels}",
                        "check the labels against the pod template labels of your Deployments")  # fmt: skip
    for gw in of_kind(resources, Gateway):
        if gw.selector and not topo.select_pods(None, gw.selector):
            labels = ",".join(f"{k}={v}" for k, v in gw.selector.items())
            yield diag("IST0101", gw, ("spec", "selector"),
                        f"referenced selector not found: {labels}",
                        'the ingress gateway pods carry "istio: ingressgateway"')  # fmt: skip


def _pa_mode(
    pas: Sequence[PeerAuthentication], namespace: str, labels: dict[str, str], root: str
) -> MutualTLSMode:
    """Effective PeerAuthentication mode for a workload: workload > namespace > mesh."""

    def scoped(items: Iterable[PeerAuthentication]) -> MutualTLSMode | None:
        for pa in items:
            if pa.mtls is not None and pa.mtls.mode is not MutualTLSMode.UNSET:
                return pa.mtls.mode
        return None

    workload = [
        p for p in pas if p.namespace == namespace and p.selector is not None
        and p.selector.match_labels and p.selector.matches(labels)
    ]  # fmt: skip
    ns_wide = [
        p
        for p in pas
        if p.namespace == namespace and (p.selector is None or not p.selector.match_labels)
    ]
    mesh_wide = [
        p
        for p in pas
        if p.namespace == root and (p.selector is None or not p.selector.match_labels)
    ]
    return scoped(workload) or scoped(ns_wide) or scoped(mesh_wide) or MutualTLSMode.PERMISSIVE


def check_tls_conflicts(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3001: a DestinationRule that sends plaintext (DISABLE) or one-way TLS (SIMPLE) to
    workloads whose PeerAuthentication is STRICT: the server refuses every connection."""
    pas = of_kind(resources, PeerAuthentication)
    if not pas:
        return
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
            if _pa_mode(pas, p.namespace, dict(p.labels), topo.config.root_namespace)
            is MutualTLSMode.STRICT
        ]  # fmt: skip
        if strict:
            yield diag("MPY3001", dr, ("spec", "trafficPolicy", "tls", "mode"),
                        f"tls mode {tls.mode.value} towards {service.name}, whose pods require mutual "
                        f"TLS (PeerAuthentication STRICT): {', '.join(strict[:3])}; requests fail "
                        "with 503", "use mode ISTIO_MUTUAL, or remove the tls block (auto mTLS)")  # fmt: skip


def check_services(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3002: Services selecting no pods. IST0118: port names without a protocol prefix."""
    for svc in of_kind(resources, Service):
        if svc.spec.selector and not topo.select_pods(svc.namespace, svc.spec.selector):
            labels = ",".join(f"{k}={v}" for k, v in svc.spec.selector.items())
            yield diag("MPY3002", svc, ("spec", "selector"),
                        f"selector {labels} matches no pods: requests to {svc.name} get 503 UH",
                        "check the Deployment's pod template labels")  # fmt: skip
        mesh_service = topo.service(f"{svc.name}.{svc.namespace}.{topo.config.domain_suffix}")
        if mesh_service is None:
            continue
        for i, port in enumerate(mesh_service.ports):
            if port.protocol.value == "UNSUPPORTED":
                yield diag("IST0118", svc, ("spec", "ports", i, "name"),
                            f'port name "{port.name}" (port {port.port}) does not follow the '
                            "protocol-prefix convention; Istio will sniff the protocol",
                            'name it "http", "http-<suffix>", "grpc", "tcp", ... or set appProtocol')  # fmt: skip


def check_service_accounts(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3004: a Deployment runs as a ServiceAccount that no manifest defines."""
    del topo
    accounts = {(a.namespace, a.name) for a in of_kind(resources, ServiceAccount)}
    for d in of_kind(resources, Deployment):
        sa = d.spec.template.spec.service_account_name
        if sa and sa != "default" and (d.namespace, sa) not in accounts:
            yield diag("MPY3004", d, ("spec", "template", "spec", "serviceAccountName"),
                        f'ServiceAccount "{sa}" is not defined in namespace {d.namespace}; its pods '
                        "will not start", "add a ServiceAccount manifest")  # fmt: skip


def check_sidecars(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0110/IST0111: conflicting Sidecar resources."""
    sidecars = of_kind(resources, Sidecar)
    by_ns: dict[str, list[Sidecar]] = defaultdict(list)
    for s in sidecars:
        if s.workload_selector is None or not s.workload_selector.match_labels:
            by_ns[s.namespace].append(s)
    for ns, items in sorted(by_ns.items()):
        if len(items) > 1:
            for s in items:
                yield diag("IST0111", s, ("spec",),
                            f"more than one Sidecar without workloadSelector in namespace {ns}")  # fmt: skip
    for pod in topo.pods:
        selecting = [
            s for s in sidecars
            if s.namespace == pod.namespace and s.workload_selector is not None
            and s.workload_selector.match_labels and s.workload_selector.matches(pod.labels)
        ]  # fmt: skip
        if len(selecting) > 1:
            for s in selecting:
                yield diag("IST0110", s, ("spec", "workloadSelector"),
                            f"the Sidecars {', '.join(x.name for x in selecting)} select the same "
                            f"workload pod {pod.name}")  # fmt: skip


def check_tls_verification(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0128: SIMPLE or MUTUAL client TLS without caCertificates does not verify the server."""
    del topo
    for dr in of_kind(resources, DestinationRule):
        tls = dr.traffic_policy.tls if dr.traffic_policy is not None else None
        if tls is None or tls.mode not in (TLSMode.SIMPLE, TLSMode.MUTUAL):
            continue
        if not tls.ca_certificates and not tls.credential_name and not tls.insecure_skip_verify:
            yield diag("IST0128", dr, ("spec", "trafficPolicy", "tls"),
                        f"DestinationRule {dr.namespace}/{dr.name} in namespace {dr.namespace} has "
                        f"TLS mode set to {tls.mode.value} but no caCertificates are set to validate "
                        f"server identity for host: {dr.host}",
                        "set caCertificates (or credentialName), or use ISTIO_MUTUAL inside the mesh")  # fmt: skip


LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"


def check_envoy_filters(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY2003: only the documented local-rate-limit EnvoyFilter form is modelled."""
    del topo
    for ef in of_kind(resources, EnvoyFilter):
        for i, patch in enumerate(ef.config_patches):
            value = patch.patch.value if patch.patch is not None else None
            name = value.get("name") if isinstance(value, Mapping) else None
            is_ratelimit = patch.apply_to == "HTTP_FILTER" and name == LOCAL_RATELIMIT
            is_ratelimit_route = patch.apply_to in {"HTTP_ROUTE", "VIRTUAL_HOST"} and (
                LOCAL_RATELIMIT in str(value)
            )
            if not (is_ratelimit or is_ratelimit_route):
                yield diag("MPY2003", ef, ("spec", "configPatches", i),
                            f"EnvoyFilter patch (applyTo {patch.apply_to}) is not modelled: meshplay "
                            "applies only the local rate limit form; this patch has no effect on "
                            "sim or local", "it is still applied as-is on the kube runner")  # fmt: skip
