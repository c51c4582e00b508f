"""RouteConfigurations: outbound ones named by port, inbound ``inbound|<port>||`` ones.

An outbound route config (``"8080"``) has one virtual host per visible service on that port,
named ``<fqdn>:<port>`` with the domains istiod writes (FQDN, the short name for a service in the
proxy's own namespace, ``name.ns.svc``, ``name.ns``, each also with ``:port``, and the FQDN with
a trailing dot), then the catch-all ``allow_any`` (to PassthroughCluster) or ``block_all``
(direct 502) host. Duplicate domains keep their first virtual host. Envoy routes by the Host /
``:authority`` header, which is also what an absolute-form proxy request (``GET
http://product:8080/x``) turns into, so apps can use their sidecar as a plain HTTP proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mesh.envoy.routes import RouteContext, default_route, http_routes
from mesh.envoy_api.names import (
    ALLOW_ANY_VHOST,
    BLOCK_ALL_VHOST,
    DEFAULT_ROUTE,
    PASSTHROUGH_CLUSTER,
    Direction,
    cluster_name,
    inbound_vhost_name,
    route_config_name,
    sniffed_route_config_name,
    vhost_name,
)
from mesh.model import VirtualService
from mesh.topology import MeshService

__all__ = [
    "catch_all_vhost",
    "inbound_default_route",
    "inbound_route_config",
    "outbound_route_config",
    "service_domains",
    "sniffed_route_config",
]


def service_domains(service: MeshService, port: int, proxy_namespace: str) -> list[str]:
    """The domains of a service's virtual host as seen from ``proxy_namespace``: its names
    (the short name only from its own namespace) and its VIPs, each also with ``:<port>``."""
    fqdn = service.hostname
    if service.from_service_entry:
        names = [fqdn, *service.addresses]
        return [d for name in names for d in (name, f"{name}:{port}")]
    names = [fqdn]
    if service.namespace == proxy_namespace:
        names.append(service.name)
    names += [f"{service.name}.{service.namespace}.svc", f"{service.name}.{service.namespace}"]
    names += service.addresses  # the ClusterIP: a request to http://<VIP>:<port>/ routes too
    out = [d for name in names for d in (name, f"{name}:{port}")]
    out.append(f"{fqdn}.")
    return out


def catch_all_vhost(allow_any: bool) -> dict[str, Any]:
    """``allow_any`` (ALLOW_ANY -> PassthroughCluster, no retries, no timeout) or ``block_all``
    (REGISTRY_ONLY -> 502 from the client sidecar)."""
    if allow_any:
        return {
            "domains": ["*"],
            "name": ALLOW_ANY_VHOST,
            "routes": [
                {
                    "match": {"prefix": "/"},
                    "name": ALLOW_ANY_VHOST,
                    "route": {
                        "cluster": PASSTHROUGH_CLUSTER,
                        "max_grpc_timeout": "0s",
                        "timeout": "0s",
                    },
                }
            ],
        }
    return {
        "domains": ["*"],
        "name": BLOCK_ALL_VHOST,
        "routes": [
            {"direct_response": {"status": 502}, "match": {"prefix": "/"}, "name": BLOCK_ALL_VHOST}
        ],
    }


def _service_routes(
    service: MeshService,
    port: int,
    virtual_service: Callable[[str], VirtualService | None],
    ctx: RouteContext,
) -> list[dict[str, Any]] | None:
    """A service's routes on ``port``: its VirtualService's (None when it yields none) or the
    default route."""
    vs = virtual_service(service.hostname)
    if vs is None:
        return [default_route(service, port, ctx)]
    return http_routes(vs, ctx) or None


def outbound_route_config(
    port: int,
    services: Sequence[MeshService],
    virtual_service: Callable[[str], VirtualService | None],
    ctx: RouteContext,
    allow_any: bool,
) -> dict[str, Any]:
    """Route config ``"<port>"`` for a sidecar: one vhost per service with this HTTP port."""
    vhosts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for service in sorted(services, key=lambda s: s.hostname):
        routes = _service_routes(service, port, virtual_service, ctx)
        if routes is None:
            continue
        domains = [d for d in service_domains(service, port, ctx.proxy_namespace) if d not in seen]
        if not domains:
            continue
        seen.update(domains)
        vhosts.append(
            {"domains": domains, "name": vhost_name(service.hostname, port), "routes": routes}
        )
    vhosts.append(catch_all_vhost(allow_any))
    return {
        "ignore_port_in_host_matching": True,
        "name": route_config_name(port),
        "validate_clusters": False,
        "virtual_hosts": vhosts,
    }


def sniffed_route_config(
    service: MeshService,
    port: int,
    virtual_service: Callable[[str], VirtualService | None],
    ctx: RouteContext,
) -> dict[str, Any]:
    """Route config ``<host>:<port>`` of a sniffed port's own ``<VIP>_<port>`` listener.

    istiod builds the port's virtual hosts and keeps only this service's, with its domains
    replaced by ``*`` (the listener's address already chose the service, so any Host header
    routes here); there is no catch-all virtual host. A VirtualService whose routes all fall
    away leaves no virtual host at all: every request gets 404 NR."""
    routes = _service_routes(service, port, virtual_service, ctx)
    vhosts = []
    if routes is not None:
        vhosts.append(
            {"domains": ["*"], "name": vhost_name(service.hostname, port), "routes": routes}
        )
    return {
        "ignore_port_in_host_matching": True,
        "name": sniffed_route_config_name(service.hostname, port),
        "validate_clusters": False,
        "virtual_hosts": vhosts,
    }


def inbound_default_route(
    cluster: str, operation: str, istio_version: str, *, grpc: bool = False
) -> dict[str, Any]:
    """istiod's default inbound route (``BuildDefaultHTTPInboundRoute``): everything to
    ``cluster``, no timeout; since Istio 1.24 a request reset before reaching the app is
    retried twice (``reset-before-request``), except on gRPC ports (``grpc``), where istiod
    sets no inbound retry policy."""
    action: dict[str, Any] = {
        "cluster": cluster,
        "max_stream_duration": {"grpc_timeout_header_max": "0s", "max_stream_duration": "0s"},
        "timeout": "0s",
    }
    parts = istio_version.split(".")
    if (
        not grpc
        and len(parts) >= 2
        and parts[0].isdigit()
        and parts[1].isdigit()
        and (
            int(parts[0]),
            int(parts[1]),
        )
        >= (1, 24)
    ):
        action["retry_policy"] = {"num_retries": 2, "retry_on": "reset-before-request"}
    return {
        "decorator": {"operation": operation},
        "match": {"prefix": "/"},
        "name": DEFAULT_ROUTE,
        "route": action,
    }


def inbound_route_config(
    target_port: int,
    service_port: int,
    hostname: str,
    istio_version: str,
    per_filter_config: dict[str, Any] | None = None,
    *,
    grpc: bool = False,
) -> dict[str, Any]:
    """``inbound|<targetPort>||``: one ``*`` virtual host with :func:`inbound_default_route` to
    the local app.

    ``per_filter_config`` becomes the vhost's ``typed_per_filter_config`` (filter name -> typed
    config), e.g. the per-route local rate limit an EnvoyFilter ``VIRTUAL_HOST``/``HTTP_ROUTE``
    patch merges into the inbound route (the inbound route configuration has one vhost)."""
    cluster = cluster_name(Direction.INBOUND, target_port)
    vhost: dict[str, Any] = {
        "domains": ["*"],
        "name": inbound_vhost_name(service_port),
        "routes": [
            inbound_default_route(cluster, f"{hostname}:{service_port}/*", istio_version, grpc=grpc)
        ],
    }
    if per_filter_config:
        vhost["typed_per_filter_config"] = dict(sorted(per_filter_config.items()))
    return {"name": cluster, "validate_clusters": False, "virtual_hosts": [vhost]}
