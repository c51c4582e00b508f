"""Gateway servers -> gateway listeners and ``http.<port>`` route configurations.

A Gateway selects gateway pods by labels; each server port (a *Service* port, e.g. 80) becomes a
listener on the pod's target port (``0.0.0.0_8080``). VirtualServices bound to the gateway
(``gateways: [ns/name]`` or the bare name in the VS namespace) whose hosts intersect a server
host are **merged** into one virtual host per host (unlike sidecars), in VS order, with all
catch-all routes moved to the end. A server host no VS serves yields no virtual host; a port with
no virtual hosts gets ``blackhole:<port>`` with no routes (404 NR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.envoy.routes import RouteContext, http_routes
from mesh.envoy.scope import MeshIndex, exported_to
from mesh.envoy_api.names import gateway_blackhole_vhost_name, gateway_route_name, vhost_name
from mesh.model import Gateway, Server
from mesh.topology import Pod, Topology

__all__ = ["GatewayPort", "gateway_ports", "gateway_route_config", "intersect_hosts"]

_HTTP_PROTOCOLS = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}


_TLS_PROTOCOLS = {"HTTPS", "TLS"}


@dataclass(frozen=True, slots=True)
class GatewayPort:
    """One gateway listener: the pod port, the server (service) port and its servers."""

    target_port: int
    server_port: int
    servers: tuple[tuple[Gateway, Server], ...]

    @property
    def tls(self) -> bool:
        """The port's servers are HTTPS/TLS ones (filter chains by SNI), not plain HTTP."""
        return self.servers[0][1].port.protocol.upper() in _TLS_PROTOCOLS


def _kind(server: Server) -> str:
    protocol = server.port.protocol.upper()
    if protocol in _HTTP_PROTOCOLS:
        return "http"
    return "tls" if protocol in _TLS_PROTOCOLS and server.tls is not None else ""


def gateway_ports(pod: Pod, index: MeshIndex, topology: Topology) -> list[GatewayPort]:
    """The listener ports of every Gateway selecting ``pod``, as istiod's gateway merging
    resolves them: a server port that is a port of the gateway pod's Service listens on its
    ``targetPort`` (80 -> 8080); any other server port is bound as it is. One kind of server per
    listener port (plain HTTP, or HTTPS/TLS told apart by SNI): a server of the other kind on a
    port already taken is dropped, as istiod drops it. TCP servers (and TLS ones without ``tls``
    settings) are not translated (MPY2001 from the analyzer)."""
    mapping = {p.port: p.target_port for s in topology.services_of(pod) for p in s.ports}
    grouped: dict[int, list[tuple[Gateway, Server]]] = {}
    server_port: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for gw in index.gateways:
        if any(pod.labels.get(k) != v for k, v in gw.selector.items()):
            continue
        for server in gw.servers:
            kind = _kind(server)
            if not kind:
                continue
            target = mapping.get(server.port.number, server.port.number)
            if kinds.setdefault(target, kind) != kind:
                continue
            grouped.setdefault(target, []).append((gw, server))
            server_port.setdefault(target, server.port.number)
    return [GatewayPort(t, server_port[t], tuple(grouped[t])) for t in sorted(grouped)]


def intersect_hosts(server_host: str, vs_host: str) -> str | None:
    """The more specific of two hosts when they overlap (wildcards on either side), else None."""
    if server_host == vs_host:
        return vs_host
    if server_host == "*":
        return vs_host
    if vs_host == "*":
        return server_host
    if server_host.startswith("*.") and vs_host.endswith(server_host[1:]):
        return vs_host
    if vs_host.startswith("*.") and server_host.endswith(vs_host[1:]):
        return server_host
    return None


def _gateway_ref(name: str, namespace: str) -> str:
    return name if "/" in name else f"{namespace}/{name}"


def gateway_route_config(
    port: GatewayPort,
    index: MeshIndex,
    context: Callable[[str, int], RouteContext],
    *,
    name: str = "",
) -> dict[str, Any]:
    """Route config ``http.<targetPort>`` merging every bound VS per host (``name`` and a
    one-server ``port``: the ``https.<port>...`` route config of one TLS-terminating server).

    A server with ``tls.httpsRedirect`` marks its virtual hosts ``require_tls: ALL`` (Envoy
    answers plaintext requests with a 301 to ``https://``), and gets a virtual host for each of
    its hosts no VirtualService serves, so those are redirected too."""
    vhosts: dict[str, dict[str, Any]] = {}
    redirect_tls: set[str] = set()
    for gw, server in port.servers:
        if server.tls is not None and server.tls.https_redirect:
            for entry in server.hosts:
                host = entry.rpartition("/")[2].lower()
                redirect_tls.add(host)
                vhosts.setdefault(
                    host,
                    {
                        "domains": [host, f"{host}:{server.port.number}"] if host != "*" else ["*"],
                        "name": vhost_name(host, server.port.number),
                        "routes": [],
                        "_vs": [],
                    },
                )
        ref = f"{gw.namespace}/{gw.name}"
        ctx = context(ref, server.port.number)
        for entry in server.hosts:
            ns_part, _, host_part = entry.rpartition("/")
            for vs in index.virtual_services:
                if ref not in {_gateway_ref(g, vs.namespace) for g in vs.gateways} and not any(
                    ref in {_gateway_ref(g, vs.namespace) for g in m.gateways}
                    for r in vs.http
                    for m in r.match
                ):
                    continue
                if ns_part not in {"", "*"} and not (
                    ns_part == vs.namespace or (ns_part == "." and vs.namespace == gw.namespace)
                ):
                    continue
                if not exported_to(vs.export_to, vs.namespace, gw.namespace):
                    continue
                for vs_host in vs.hosts:
                    domain = intersect_hosts(host_part, vs_host)
                    if domain is None:
                        continue
                    vhost = vhosts.setdefault(
                        domain,
                        {
                            "domains": [domain, f"{domain}:{server.port.number}"]
                            if domain != "*"
                            else ["*"],
                            "name": vhost_name(domain, server.port.number),
                            "routes": [],
                            "_vs": [],
                        },
                    )
                    if vs.name + "/" + vs.namespace in vhost["_vs"]:
                        continue
                    vhost["_vs"].append(vs.name + "/" + vs.namespace)
                    vhost["routes"].extend(http_routes(vs, ctx))
                    if server.tls is not None and server.tls.https_redirect:
                        redirect_tls.add(domain)
    out = []
    for domain in sorted(vhosts):
        vhost = vhosts[domain]
        vhost.pop("_vs")
        routes = vhost["routes"]
        catch_all = [r for r in routes if _catch_all(r)]
        vhost["routes"] = [r for r in routes if not _catch_all(r)] + catch_all
        if domain in redirect_tls:
            vhost["require_tls"] = "ALL"
        out.append(dict(sorted(vhost.items())))
    if not out:
        out.append(
            {"domains": ["*"], "name": gateway_blackhole_vhost_name(port.server_port), "routes": []}
        )
    return {
        "ignore_port_in_host_matching": True,
        "name": name or gateway_route_name(port.target_port),
        "validate_clusters": False,
        "virtual_hosts": out,
    }


def _catch_all(route: dict[str, Any]) -> bool:
    match = route.get("match", {})
    return match.get("prefix") == "/" and len(match) == 1
