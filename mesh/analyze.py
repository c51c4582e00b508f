"""Offline analysis in the spirit of ``istioctl analyze``: cross-resource checks.

Each check is one function over the applied resources and the topology derived from them, and
yields diagnostics positioned at the offending field. Codes are Istio's where the meaning is the
same (IST0101 missing references, IST0109 conflicting VirtualServices, IST0127 selectors that
match nothing, IST0130 unreachable rules, IST0173 empty subsets, IST0174 unknown DR hosts, ...).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from mesh.analyze_security import (
    check_allow_without_rules,
    check_authorization_conditions,
    check_custom_authorization,
    check_source_namespaces,
)
from mesh.diagnostics import Diagnostic, did_you_mean, format_path
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
    VirtualService,
)
from mesh.model.common import LabelsWorkloadSelector, WorkloadSelector
from mesh.model.virtual_service import HTTPMatchRequest
from mesh.topology import MeshConfig, Topology, build_topology

__all__ = ["ANALYZERS", "analyze"]

R = TypeVar("R", bound=Resource)
Path = tuple[str | int, ...]
Analyzer = Callable[[Sequence[Resource], Topology], Iterator[Diagnostic]]


def _diag(code: str, r: Resource, path: Path, message: str, hint: str = "") -> Diagnostic:
    pos = r.source.position(path)
    return Diagnostic(
        code, message, file=pos.file, line=pos.line, column=pos.column, resource=r.ref,
        path=format_path(path), hint=hint,
    )  # fmt: skip


def _of(resources: Iterable[Resource], kind: type[R]) -> list[R]:
    return [r for r in resources if isinstance(r, kind)]


def _registry_host(topo: Topology, host: str, namespace: str) -> str | None:
    """The registry FQDN a resource's host refers to, or None if nothing in the mesh has it."""
    fqdn = topo.resolve_host(host, namespace)
    if topo.service(fqdn) is not None:
        return fqdn
    if "*" in fqdn:
        suffix = fqdn.lstrip("*")
        if any(s.hostname.endswith(suffix) for s in topo.services):
            return fqdn
    return None


def _subsets(resources: Sequence[Resource], topo: Topology) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for dr in _of(resources, DestinationRule):
        fqdn = topo.resolve_host(dr.host, dr.namespace)
        out[fqdn].update(s.name for s in dr.subsets)
    return out


def check_virtual_service_destinations(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0101/IST0112: every destination (and mirror) host exists; every subset is defined in a
    DestinationRule for that host; multi-port destinations name a port."""
    subsets = _subsets(resources, topo)
    hosts = [s.hostname for s in topo.services]
    for vs in _of(resources, VirtualService):
        targets: list[tuple[Path, str, str, int | None]] = []
        for i, http in enumerate(vs.http):
            for j, d in enumerate(http.route):
                port = d.destination.port.number if d.destination.port else None
                targets.append(
                    (("spec", "http", i, "route", j, "destination"), d.destination.host,
                     d.destination.subset, port)
                )  # fmt: skip
            if http.mirror is not None:
                targets.append(
                    (("spec", "http", i, "mirror"), http.mirror.host, http.mirror.subset, None)
                )
            for k, m in enumerate(http.mirrors):
                path: Path = ("spec", "http", i, "mirrors", k, "destination")
                targets.append((path, m.destination.host, m.destination.subset, None))
        for i, tcp in enumerate(vs.tcp):
            for j, rd in enumerate(tcp.route):
                port = rd.destination.port.number if rd.destination.port else None
                targets.append(
                    (("spec", "tcp", i, "route", j, "destination"), rd.destination.host,
                     rd.destination.subset, port)
                )  # fmt: skip
        for path, host, subset, port in targets:
            fqdn = _registry_host(topo, host, vs.namespace)
            if fqdn is None:
                short = [h.split(".")[0] for h in hosts]
                hint = did_you_mean(host.split(".")[0], short) or (
                    "define a Service (or a ServiceEntry for external hosts)"
                )
                yield _diag("IST0101", vs, (*path, "host"),
                            f'referenced host not found: "{host}"', hint)  # fmt: skip
                continue
            if subset and subset not in subsets.get(fqdn, set()):
                known = subsets.get(fqdn, set())
                hint = did_you_mean(subset, known) or (
                    f"subsets defined for {fqdn}: {', '.join(sorted(known))}"
                    if known
                    else f"add a DestinationRule for {host} with a subset named {subset}"
                )
                yield _diag("IST0101", vs, (*path, "subset"),
                            f'referenced host+subset in destinationrule not found: "{host}+{subset}"',
                            hint)  # fmt: skip
            service = topo.service(fqdn)
            if service is not None and port is None and len(service.ports) > 1:
                yield _diag("IST0112", vs, path,
                            f'this VirtualService must specify port for destination host "{host}" '
                            f"(it has {len(service.ports)} ports)",
                            "add destination.port.number")  # fmt: skip


def _gateway_ref(vs: VirtualService, ref: str) -> tuple[str, str]:
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    if "." in ref:  # name.namespace.svc.cluster.local form
        name, _, rest = ref.partition(".")
        return rest.split(".")[0], name
    return vs.namespace, ref


def check_virtual_service_gateways(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0101: referenced gateways exist. IST0132: the VS hosts are admitted by the gateway."""
    del topo
    gateways = {(g.namespace, g.name): g for g in _of(resources, Gateway)}
    for vs in _of(resources, VirtualService):
        for i, ref in enumerate(vs.gateways):
            if ref == "mesh":
                continue
            key = _gateway_ref(vs, ref)
            gw = gateways.get(key)
            if gw is None:
                hint = did_you_mean(key[1], [n for _, n in gateways])
                yield _diag("IST0101", vs, ("spec", "gateways", i),
                            f'referenced gateway not found: "{ref}"', hint)  # fmt: skip
                continue
            admitted = [h.split("/")[-1] for s in gw.servers for h in s.hosts]
            for j, host in enumerate(vs.hosts):
                if not any(_host_matches(host, a) for a in admitted):
                    yield _diag("IST0132", vs, ("spec", "hosts", j),
                                f'one or more host "{host}" defined in VirtualService {vs.namespace}/'
                                f"{vs.name} not found in Gateway {gw.namespace}/{gw.name}",
                                f"gateway hosts: {', '.join(admitted)}")  # fmt: skip


def _host_matches(host: str, pattern: str) -> bool:
    if pattern in ("*", host):
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if host.startswith("*."):
        return pattern.endswith(host[1:])
    return False


def check_conflicting_virtual_services(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0109: several mesh-bound VirtualServices for one host (a sidecar keeps only one)."""
    by_host: dict[str, list[tuple[VirtualService, int]]] = defaultdict(list)
    for vs in _of(resources, VirtualService):
        if vs.gateways and "mesh" not in vs.gateways:
            continue
        for j, host in enumerate(vs.hosts):
            by_host[topo.resolve_host(host, vs.namespace)].append((vs, j))
    for host, users in sorted(by_host.items()):
        if len(users) < 2:
            continue
        names = ", ".join(f"{v.namespace}/{v.name}" for v, _ in users)
        for vs, j in users:
            yield _diag("IST0109", vs, ("spec", "hosts", j),
                        f'the VirtualServices {names} associated with mesh define the same host or '
                        f'wildcard host "{host}"',
                        "merge them into one VirtualService, or use delegation")  # fmt: skip


def check_unreachable_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0130: rules after a rule without match never apply; rules whose every match repeats an
    earlier one are unreachable. IST0131: a single match identical to an earlier one."""
    del topo
    for vs in _of(resources, VirtualService):
        seen: set[HTTPMatchRequest] = set()
        catch_all: int | None = None
        for i, http in enumerate(vs.http):
            label = f'{i} "{http.name}"' if http.name else f"{i}"
            if catch_all is not None:
                yield _diag("IST0130", vs, ("spec", "http", i),
                            f"VirtualService rule #{label} not used (only the last rule can have no "
                            f"matches; rule #{catch_all} matches every request)",
                            "move the catch-all rule last, or give it a match")  # fmt: skip
                continue
            if not http.match:
                catch_all = i
                continue
            repeats = [j for j, m in enumerate(http.match) if m in seen]
            if len(repeats) == len(http.match):
                yield _diag("IST0130", vs, ("spec", "http", i, "match"),
                            f"VirtualService rule #{label} not used (all its matches repeat earlier "
                            "rules' matches)", "remove the rule or change its matches")  # fmt: skip
            else:
                for j in repeats:
                    yield _diag("IST0131", vs, ("spec", "http", i, "match", j),
                                f"VirtualService rule #{label} match #{j} is not used (duplicate of an "
                                "earlier match)")  # fmt: skip
            seen.update(http.match)
        tcp_catch_all: int | None = None
        for i, tcp in enumerate(vs.tcp):
            if tcp_catch_all is not None:
                yield _diag("IST0130", vs, ("spec", "tcp", i),
                            f"VirtualService tcp rule #{i} not used (rule #{tcp_catch_all} has no "
                            "match and takes every connection)")  # fmt: skip
            elif not tcp.match:
                tcp_catch_all = i


def check_route_weights(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3003: a route whose destinations all weigh 0 sends nowhere."""
    del topo
    for vs in _of(resources, VirtualService):
        for i, http in enumerate(vs.http):
            weights = [d.weight for d in http.route]
            if len(weights) > 1 and all((w or 0) == 0 for w in weights):
                yield _diag("MPY3003", vs, ("spec", "http", i, "route"),
                            "every destination of this route has weight 0",
                            "give at least one destination a positive weight")  # fmt: skip


def check_destination_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0174: the DR host is in the registry. IST0173: each subset selects some pods."""
    for dr in _of(resources, DestinationRule):
        fqdn = _registry_host(topo, dr.host, dr.namespace)
        if fqdn is None:
            hint = did_you_mean(dr.host.split(".")[0], [s.name for s in topo.services])
            yield _diag("IST0174", dr, ("spec", "host"),
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
                yield _diag("IST0173", dr, ("spec", "subsets", i),
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
            yield _diag("IST0127", r, ("spec", field),
                        f"no matching workloads for this resource with the following labels: {labels}",
                        "check the labels against the pod template labels of your Deployments")  # fmt: skip
    for gw in _of(resources, Gateway):
        if gw.selector and not topo.select_pods(None, gw.selector):
            labels = ",".join(f"{k}={v}" for k, v in gw.selector.items())
            yield _diag("IST0101", gw, ("spec", "selector"),
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
    pas = _of(resources, PeerAuthentication)
    if not pas:
        return
    for dr in _of(resources, DestinationRule):
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
            yield _diag("MPY3001", dr, ("spec", "trafficPolicy", "tls", "mode"),
                        f"tls mode {tls.mode.value} towards {service.name}, whose pods require mutual "
                        f"TLS (PeerAuthentication STRICT): {', '.join(strict[:3])}; requests fail "
                        "with 503", "use mode ISTIO_MUTUAL, or remove the tls block (auto mTLS)")  # fmt: skip


def check_services(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3002: Services selecting no pods. IST0118: port names without a protocol prefix."""
    for svc in _of(resources, Service):
        if svc.spec.selector and not topo.select_pods(svc.namespace, svc.spec.selector):
            labels = ",".join(f"{k}={v}" for k, v in svc.spec.selector.items())
            yield _diag("MPY3002", svc, ("spec", "selector"),
                        f"selector {labels} matches no pods: requests to {svc.name} get 503 UH",
                        "check the Deployment's pod template labels")  # fmt: skip
        mesh_service = topo.service(f"{svc.name}.{svc.namespace}.{topo.config.domain_suffix}")
        if mesh_service is None:
            continue
        for i, port in enumerate(mesh_service.ports):
            if port.protocol.value == "UNSUPPORTED":
                yield _diag("IST0118", svc, ("spec", "ports", i, "name"),
                            f'port name "{port.name}" (port {port.port}) does not follow the '
                            "protocol-prefix convention; Istio will sniff the protocol",
                            'name it "http", "http-<suffix>", "grpc", "tcp", ... or set appProtocol')  # fmt: skip


def check_service_accounts(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3004: a Deployment runs as a ServiceAccount that no manifest defines."""
    del topo
    accounts = {(a.namespace, a.name) for a in _of(resources, ServiceAccount)}
    for d in _of(resources, Deployment):
        sa = d.spec.template.spec.service_account_name
        if sa and sa != "default" and (d.namespace, sa) not in accounts:
            yield _diag("MPY3004", d, ("spec", "template", "spec", "serviceAccountName"),
                        f'ServiceAccount "{sa}" is not defined in namespace {d.namespace}; its pods '
                        "will not start", "add a ServiceAccount manifest")  # fmt: skip


def check_sidecars(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0110/IST0111: conflicting Sidecar resources."""
    sidecars = _of(resources, Sidecar)
    by_ns: dict[str, list[Sidecar]] = defaultdict(list)
    for s in sidecars:
        if s.workload_selector is None or not s.workload_selector.match_labels:
            by_ns[s.namespace].append(s)
    for ns, items in sorted(by_ns.items()):
        if len(items) > 1:
            for s in items:
                yield _diag("IST0111", s, ("spec",),
                            f"more than one Sidecar without workloadSelector in namespace {ns}")  # fmt: skip
    for pod in topo.pods:
        selecting = [
            s for s in sidecars
            if s.namespace == pod.namespace and s.workload_selector is not None
            and s.workload_selector.match_labels and s.workload_selector.matches(pod.labels)
        ]  # fmt: skip
        if len(selecting) > 1:
            for s in selecting:
                yield _diag("IST0110", s, ("spec", "workloadSelector"),
                            f"the Sidecars {', '.join(x.name for x in selecting)} select the same "
                            f"workload pod {pod.name}")  # fmt: skip


def check_tls_verification(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0128: SIMPLE or MUTUAL client TLS without caCertificates does not verify the server."""
    del topo
    for dr in _of(resources, DestinationRule):
        tls = dr.traffic_policy.tls if dr.traffic_policy is not None else None
        if tls is None or tls.mode not in (TLSMode.SIMPLE, TLSMode.MUTUAL):
            continue
        if not tls.ca_certificates and not tls.credential_name and not tls.insecure_skip_verify:
            yield _diag("IST0128", dr, ("spec", "trafficPolicy", "tls"),
                        f"DestinationRule {dr.namespace}/{dr.name} in namespace {dr.namespace} has "
                        f"TLS mode set to {tls.mode.value} but no caCertificates are set to validate "
                        f"server identity for host: {dr.host}",
                        "set caCertificates (or credentialName), or use ISTIO_MUTUAL inside the mesh")  # fmt: skip


def check_conflicting_gateways(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0145: two Gateways on the same gateway pods declare the same port and host."""
    gateways = _of(resources, Gateway)
    for i, a in enumerate(gateways):
        pods_a = {p.name for p in topo.select_pods(None, a.selector)}
        for b in gateways[i + 1 :]:
            if not pods_a & {p.name for p in topo.select_pods(None, b.selector)}:
                continue
            for sa in a.servers:
                for sb in b.servers:
                    if sa.port.number != sb.port.number or sa.bind != sb.bind:
                        continue
                    shared = sorted(
                        {h.split("/")[-1] for h in sa.hosts} & {h.split("/")[-1] for h in sb.hosts}
                    )
                    if shared:
                        yield _diag("IST0145", b, ("spec", "servers"),
                                    f"conflict with gateways {a.namespace}/{a.name} (workload "
                                    f"selector {','.join(f'{k}={v}' for k, v in b.selector.items())}, "
                                    f"port {sb.port.number}, hosts {', '.join(shared)})",
                                    "merge the servers into one Gateway or use distinct hosts")  # fmt: skip


LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"


def check_envoy_filters(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY2003: only the documented local-rate-limit EnvoyFilter form is modelled."""
    del topo
    for ef in _of(resources, EnvoyFilter):
        for i, patch in enumerate(ef.config_patches):
            value = patch.patch.value if patch.patch is not None else None
            name = value.get("name") if isinstance(value, Mapping) else None
            is_ratelimit = patch.apply_to == "HTTP_FILTER" and name == LOCAL_RATELIMIT
            is_ratelimit_route = patch.apply_to in {"HTTP_ROUTE", "VIRTUAL_HOST"} and (
                LOCAL_RATELIMIT in str(value)
            )
            if not (is_ratelimit or is_ratelimit_route):
                yield _diag("MPY2003", ef, ("spec", "configPatches", i),
                            f"EnvoyFilter patch (applyTo {patch.apply_to}) is not modelled: meshplay "
                            "applies only the local rate limit form; this patch has no effect on "
                            "sim or local", "it is still applied as-is on the kube runner")  # fmt: skip


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
