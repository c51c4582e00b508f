"""Service and Deployment checks (istioctl's ``service.*``, ``deployment.*`` and
``injection.ImageAutoAnalyzer``, and meshplay's own).

* IST0118: a Service port whose protocol Istio cannot tell from its name or appProtocol (it
  sniffs the protocol instead); IST0150 for the same on an ``ExternalName`` Service (or a port
  named just ``tcp`` there), where sniffing cannot happen.
* IST0116: a sidecar workload behind several Services that give one port different transport
  protocols. IST0137: several Services sending different ports to the same targetPort of it.
* IST0146: a Deployment with an ``istio-proxy`` container of ``image: auto`` that no injection
  applies to: the pod starts with a container image that does not exist.
* MPY3002: a Service whose selector matches no pod. MPY3004: a Deployment running as a
  ServiceAccount no manifest defines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from mesh.analyze.common import (
    diag,
    go_list,
    go_quote,
    is_istio_control_plane,
    labels_match,
    of_kind,
)
from mesh.diagnostics import Diagnostic
from mesh.model import Deployment, Resource, Service, ServiceAccount
from mesh.topology import Protocol, ProxyKind, Topology, port_protocol

__all__ = [
    "check_deployment_services",
    "check_image_auto",
    "check_service_accounts",
    "check_services",
]

MANAGED_GATEWAY = "gateway.istio.io/managed"
MANAGED_BY_ISTIO = {
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
}


def check_services(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """MPY3002: Services selecting no pods. IST0118 / IST0150: port names Istio cannot read."""
    for svc in of_kind(resources, Service):
        spec = svc.spec
        if spec.selector and not topo.select_pods(svc.namespace, spec.selector):
            labels = ",".join(f"{k}={v}" for k, v in spec.selector.items())
            yield diag("MPY3002", svc, ("spec", "selector"),
                       f"selector {labels} matches no pods: requests to {svc.name} get 503 UH",
                       "check the Deployment's pod template labels")  # fmt: skip
        if (
            is_istio_control_plane(svc)
            or svc.metadata.labels.get(MANAGED_GATEWAY) in MANAGED_BY_ISTIO
        ):
            continue
        external = spec.type == "ExternalName"
        if external:
            yield diag("MPY2001", svc, ("spec", "externalName" if spec.external_name else "type"),
                       f"ExternalName Service {svc.name} is not modelled: istiod makes it an "
                       f"alias of {spec.external_name or 'its externalName'} (its names join "
                       "the target's virtual host; no listener or cluster of its own); sim and "
                       "local leave it out, so requests for it match no service",
                       "call the target host directly, or describe it with a ServiceEntry")  # fmt: skip
        for i, port in enumerate(spec.ports):
            protocol = port_protocol(port.name, port.app_protocol, port.protocol, port.port)
            if protocol is not Protocol.UNSUPPORTED and not (external and port.name == "tcp"):
                continue
            if external:
                yield diag("IST0150", svc, ("spec", "ports", i),
                           "Port name for ExternalName service is invalid. Proxy may prevent tcp "
                           "named ports and unmatched traffic for ports serving TCP protocol from "
                           "being forwarded correctly",
                           'name it with its protocol ("http", "https-x", "tls-x", ...)')  # fmt: skip
                continue
            target = port.target_port if port.target_port is not None else port.port
            field = "appProtocol" if port.app_protocol else "name" if port.name else "port"
            hint = (
                f'appProtocol "{port.app_protocol}" replaces the name and Istio does not know it: '
                'use "http", "grpc", "tcp", ..., "kubernetes.io/h2c", or remove it'
                if port.app_protocol
                else 'name it "http", "http-<suffix>", "grpc", "tcp", ... or set appProtocol'
            )
            yield diag("IST0118", svc, ("spec", "ports", i, field),
                       f"Port name {port.name} (port: {port.port}, targetPort: {target}) doesn't "
                       "follow the naming convention of Istio port.", hint)  # fmt: skip


def _in_mesh(d: Deployment, topo: Topology) -> bool:
    workload = topo.workload(d.name, d.namespace)
    return workload is not None and workload.proxy is ProxyKind.SIDECAR


def check_deployment_services(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0116 one port, several transport protocols; IST0137 one targetPort, several ports."""
    services = [s for s in of_kind(resources, Service) if s.spec.selector]
    for d in of_kind(resources, Deployment):
        if not _in_mesh(d, topo):
            continue
        labels = d.spec.template.metadata.labels
        matching = [
            s
            for s in services
            if s.namespace == d.namespace and labels_match(s.spec.selector, labels)
        ]
        protocols: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        targets: dict[str, dict[int, str]] = defaultdict(dict)
        for s in matching:
            full = f"{s.namespace}/{s.name}"
            for p in s.spec.ports:
                protocols[p.port][p.protocol or "TCP"].append(full)
                target = str(p.target_port) if p.target_port not in (None, 0, "") else str(p.port)
                targets[target][p.port] = full
        for port, by_protocol in sorted(protocols.items()):
            if len(by_protocol) > 1:
                names = sorted(n for group in by_protocol.values() for n in group)
                yield diag("IST0116", d, ("metadata", "name"),
                           f"This deployment {d.name} is associated with multiple services using "
                           f"port {port} but different protocols: {go_list(names)}",
                           "use one protocol per port across the Services of a workload")  # fmt: skip
        for target, by_port in sorted(targets.items()):
            if len(by_port) > 1:
                yield diag("IST0137", d, ("metadata", "name"),
                           f"This deployment {d.name} is associated with multiple services "
                           f"{go_list(sorted(by_port.values()))} using targetPort {go_quote(target)} "
                           f"but different ports: {go_list(sorted(by_port))}.",
                           "give the Services the same port for this targetPort")  # fmt: skip


def check_image_auto(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0146: ``image: auto`` on the istio-proxy container of a pod nothing injects."""
    for d in of_kind(resources, Deployment):
        for i, c in enumerate(d.spec.template.spec.containers):
            if c.name != "istio-proxy" or c.image != "auto":
                continue
            workload = topo.workload(d.name, d.namespace)
            if workload is not None and workload.proxy is ProxyKind.NONE:
                yield diag("IST0146", d, ("spec", "template", "spec", "containers", i, "image"),
                           f"Deployment {d.name} contains `image: auto` but does not match any Istio "
                           "injection webhook selectors.",
                           "label the namespace istio-injection=enabled (or the pod "
                           "sidecar.istio.io/inject=true)")  # fmt: skip


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
