"""Gateway checks, as istioctl's ``gateway.*`` analyzers make them.

* IST0101: the Gateway's ``selector`` matches no pod, so no proxy serves it.
* IST0162: a server port that no Service of the gateway pods exposes (neither as ``port`` nor as
  ``targetPort``): the listener exists on the pod but clients cannot reach it through the Service.
* IST0145: Gateways on the same gateway pods (same selector, or selectors that both match a pod)
  with servers on the same port sharing a host (same ``bind``): the proxy keeps one of them.
* IST0138: Gateways on the same pods serving the same certificate (``credentialName``, or
  ``serverCertificate`` + ``privateKey``): HTTP/2 clients reuse the connection across hosts and
  get 404s.

* MPY2001: a server shape sim and local do not translate (TCP servers, TLS termination in
  front of ``tcp`` routes, OPTIONAL_MUTUAL on a TLS server).

The ``credentialName`` Secret checks (IST0101 for a missing Secret, IST0161) are in
:mod:`mesh.analyze.credentials`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mesh.analyze.common import diag, go_list, go_quote, labels_match, of_kind, selector_string
from mesh.diagnostics import Diagnostic
from mesh.model import Gateway, Resource
from mesh.model.gateway import ServerTLSSettings
from mesh.topology import Pod, Protocol, Topology

__all__ = [
    "check_conflicting_gateways",
    "check_duplicate_certificates",
    "check_gateway_servers_modelled",
    "check_gateway_workloads",
]


def _exposed_ports(pods: Sequence[Pod], topo: Topology) -> set[int]:
    """Service ports and target ports (TCP) of the Services selecting any of ``pods``."""
    ports: set[int] = set()
    for pod in pods:
        for svc in topo.services:
            if svc.from_service_entry or svc.namespace != pod.namespace:
                continue
            if not labels_match(svc.selector, pod.labels):
                continue
            for p in svc.ports:
                if p.protocol is not Protocol.UDP:
                    ports.update((p.port, p.target_port))
    return ports


def check_gateway_workloads(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0101: the selector matches no pod. IST0162: a server port no Service exposes."""
    for gw in of_kind(resources, Gateway):
        selector = selector_string(gw.selector)
        pods = topo.select_pods(None, gw.selector)
        if not pods:
            first = sorted(gw.selector)[0] if gw.selector else None
            yield diag("IST0101", gw, ("spec", "selector", first) if first else ("spec", "selector"),
                       f"Referenced selector not found: {go_quote(selector)}",
                       'the ingress gateway pods carry "istio: ingressgateway"')  # fmt: skip
            continue
        exposed = _exposed_ports(pods, topo)
        for i, server in enumerate(gw.servers):
            if server.port.number not in exposed:
                known = ", ".join(str(p) for p in sorted(exposed)) or "none"
                yield diag("IST0162", gw, ("spec", "servers", i, "port", "number"),
                           f"The gateway is listening on a target port (port {server.port.number}) "
                           "that is not defined in the Service associated with its workload "
                           f"instances (Pod selector {selector}). If you need to access the gateway "
                           "port through the gateway Service, it will not be available.",
                           f"the gateway Service exposes ports and target ports {known}")  # fmt: skip


def _same_pods(a: Gateway, b: Gateway, topo: Topology) -> bool:
    """istioctl's test: equal selectors, or one selector text inside the other and a pod that
    both select."""
    sa, sb = selector_string(a.selector), selector_string(b.selector)
    if sa == sb:
        return True
    if sa not in sb and sb not in sa:
        return False
    return any(labels_match(b.selector, p.labels) for p in topo.select_pods(None, a.selector))


def check_conflicting_gateways(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0145: a server whose port and one of whose hosts (with the same bind) another Gateway on
    the same pods also declares."""
    gateways = of_kind(resources, Gateway)
    for gw in gateways:
        peers = [g for g in gateways if g is not gw and _same_pods(gw, g, topo)]
        for i, server in enumerate(gw.servers):
            hosts = set(server.hosts)
            clashing = sorted(
                f"{g.namespace}/{g.name}"
                for g in peers
                if any(
                    s.port.number == server.port.number and s.bind == server.bind
                    and hosts & set(s.hosts)
                    for s in g.servers
                )
            )  # fmt: skip
            if clashing:
                yield diag("IST0145", gw, ("spec", "servers", i),
                           f"Conflict with gateways {','.join(clashing)} (workload selector "
                           f"{selector_string(gw.selector)}, port {server.port.number}, hosts "
                           f"{','.join(server.hosts)}).",
                           "merge the servers into one Gateway, or give them distinct hosts")  # fmt: skip


def _same_certificate(a: ServerTLSSettings, b: ServerTLSSettings) -> bool:
    if a.credential_name and b.credential_name:
        return a.credential_name == b.credential_name
    if a.credential_name or b.credential_name:
        return False
    return bool(
        a.server_certificate and a.server_certificate == b.server_certificate
        and a.private_key and a.private_key == b.private_key
    )  # fmt: skip


def check_duplicate_certificates(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """IST0138: another Gateway whose selector includes this one's serves the same certificate."""
    del topo
    gateways = of_kind(resources, Gateway)
    for gw in gateways:
        for other in gateways:
            if other is gw or not labels_match(gw.selector, other.selector):
                continue
            for i, server in enumerate(gw.servers):
                if server.tls is None:
                    continue
                if any(
                    s.tls is not None and _same_certificate(server.tls, s.tls)
                    for s in other.servers
                ):
                    names = [f"{gw.namespace}/{gw.name}", f"{other.namespace}/{other.name}"]
                    yield diag("IST0138", gw, ("spec", "servers", i, "tls"),
                               f"Duplicate certificate in multiple gateways {go_list(names)} may "
                               "cause 404s if clients re-use HTTP2 connections.",
                               "use one Gateway (one server per certificate) for these hosts")  # fmt: skip


_HTTP = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}
_TERMINATING = {"SIMPLE", "MUTUAL", "ISTIO_MUTUAL"}


def _unmodelled_server(protocol: str, tls: ServerTLSSettings | None) -> tuple[str, str] | None:
    """(field, why) when meshplay translates no listener for a server of this shape."""
    mode = tls.mode.upper() if tls is not None else ""
    if protocol in _HTTP:
        return None
    if protocol == "HTTPS":
        if tls is None:
            return "port", "an HTTPS server without tls settings gets no listener"
        return None
    if protocol == "TLS":
        if tls is None:
            return "port", "a TLS server without tls settings gets no listener"
        if mode in _TERMINATING or mode == "OPTIONAL_MUTUAL":
            return "tls", (
                f"a TLS server with mode {mode} (TLS terminated in front of VirtualService tcp "
                "routes) is not modelled: the server gets no listener"
            )
        return None
    return "port", f"{protocol or 'a'} gateway servers (tcp routes) are not modelled: no listener"


def check_gateway_servers_modelled(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """MPY2001: a server shape meshplay does not translate (TCP and other non-HTTP protocols,
    TLS termination in front of ``tcp`` routes, OPTIONAL_MUTUAL on a TLS server). HTTP servers,
    HTTPS with OPTIONAL_MUTUAL and
    SIMPLE / MUTUAL / ISTIO_MUTUAL and PASSTHROUGH / AUTO_PASSTHROUGH servers are modelled."""
    del topo
    for gw in of_kind(resources, Gateway):
        for i, server in enumerate(gw.servers):
            found = _unmodelled_server(server.port.protocol.upper(), server.tls)
            if found is not None:
                field, why = found
                path = ("spec", "servers", i, "port", "protocol") if field == "port" else (
                    "spec", "servers", i, "tls", "mode")  # fmt: skip
                yield diag("MPY2001", gw, path, f"{why}; sim and local ignore it",
                           "use an HTTP, HTTPS or PASSTHROUGH server")  # fmt: skip
