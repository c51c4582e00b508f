"""A client sidecar (or gateway) handling one outbound request, the way Envoy's HCM does.

Listener by destination port -> route configuration -> virtual host by ``:authority`` -> first
matching route -> the route's action: ``redirect`` / ``direct_response`` answer locally; a
``route`` picks a cluster (``weighted_clusters``: uniform draw over the weight sum), runs the
fault filter (delay, then abort: ``DI``/``FI``, never retried, no upstream host), sends mirror
copies (fire and forget), and hands over to the router (:mod:`sim.router`): retries, timeouts,
circuit breakers and load balancing. Every request ends with one ``reporter=source`` record.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from typing import Any

from mesh.envoy.names import parse_cluster_name
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.topology import MeshService
from sim.inbound import inbound
from sim.matchers import split_path
from sim.messages import BODY_FAULT_ABORT, Request, Response
from sim.records import make_record
from sim.router import route_request
from sim.world import PodRuntime, ProxyRuntime, World
from sim.xds import RouteSpec, VirtualHostSpec, redirect_status

__all__ = ["direct", "outbound", "outside"]

UNKNOWN = RequestRecord.UNKNOWN

Proc = Generator[Any, Any, Any]


def _pick_cluster(route: RouteSpec, world: World, req: Request) -> str:
    clusters = route.clusters
    if route.cluster_header:
        return req.headers.get(route.cluster_header, "")
    if len(clusters) == 1:
        return clusters[0][0]
    if route.total_weight <= 0:
        return clusters[0][0] if clusters else ""
    r = world.rng.random() * route.total_weight
    for name, weight in clusters:
        if r < weight:
            return name
        r -= weight
    return clusters[-1][0]


def _upstream_request(route: RouteSpec, req: Request) -> Request:
    """Apply rewrites and header operations (a copy: the original is what gets logged)."""
    path = req.path
    if route.prefix_rewrite is not None:
        base, sep, query = path.partition("?")
        if route.path.kind == "path":
            base = route.prefix_rewrite
        elif route.path.kind in ("prefix", "separated"):
            base = route.prefix_rewrite + base[len(route.path.value) :]
        path = base + sep + query
    elif route.regex_rewrite is not None:
        base, sep, query = path.partition("?")
        pattern, substitution = route.regex_rewrite
        path = pattern.sub(substitution.replace("\\", "\\\\"), base) + sep + query
    headers = req.headers
    if route.request_headers_to_add or route.request_headers_to_remove:
        headers = _header_ops(
            headers, route.request_headers_to_remove, route.request_headers_to_add
        )
    authority = route.host_rewrite or req.authority
    if path is req.path and headers is req.headers and authority is req.authority:
        return req
    return Request(
        req.method, path, authority, req.port, headers, req.request_id, req.trace_id, req.trace
    )


def _header_ops(
    headers: Mapping[str, str],
    remove: tuple[str, ...],
    add: tuple[tuple[str, str, bool], ...],
) -> dict[str, str]:
    """Envoy's header evaluation for a route (a copy): removals first, then additions; an
    appended value joins the existing one with a comma (the same header as a list)."""
    out = dict(headers)
    for name in remove:
        out.pop(name, None)
    for name, value, append in add:
        if append and name in out:
            out[name] = out[name] + "," + value
        else:
            out[name] = value
    return out


def _match(vh: VirtualHostSpec, req: Request) -> RouteSpec | None:
    base, query = split_path(req.path)
    headers = req.headers
    if vh.pseudo_headers:
        headers = {
            **headers,
            ":method": req.method,
            ":authority": req.authority,
            ":path": req.path,
            ":scheme": "http",
        }
    return vh.match(base, query, headers)


def _show(headers: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(headers.items())) or "no headers"


def _local(status: int, flags: tuple[str, ...], details: str, body: str = "") -> Response:
    return Response(status, flags, details, body)


def outbound(world: World, proxy: ProxyRuntime, req: Request) -> Proc:
    """Handle ``req`` sent by the proxy's app (or by a client of a gateway); returns a Response."""
    env = world.env
    start = env.now
    trace = req.trace
    client = proxy.pod
    req.lead = world.hop()
    table = proxy.tables.route_table(req.port)
    route: RouteSpec | None = None
    vh: VirtualHostSpec | None = None
    service_host = req.authority.rsplit(":", 1)[0]
    if table is None:
        resp = _local(404, ("NR",), "route_not_found")
        if trace:
            trace.add(env.now, client.name, f"no listener for port {req.port}: 404 NR")
    else:
        vh = table.vhost(req.authority)
        if vh is None:
            resp = _local(404, ("NR",), "route_not_found")
            if trace:
                trace.add(
                    env.now,
                    client.name,
                    f"route config {table.name!r}: no virtual host for {req.authority!r}: 404 NR",
                )
        else:
            if vh.service_host:
                service_host = vh.service_host
            route = _match(vh, req)
            if trace:
                trace.add(
                    env.now,
                    client.name,
                    f"listener {proxy.tables.listener_of_port.get(req.port, req.port)!s} -> "
                    f"route config {table.name!r} -> virtual host {vh.name!r}",
                )
            if route is None:
                resp = _local(404, ("NR",), "route_not_found")
                if trace:
                    trace.add(env.now, client.name, "no route of the virtual host matches: 404 NR")
            else:
                act = _act(world, proxy, req, route, trace)
                if isinstance(act, Response):
                    resp = act
                else:
                    resp = yield from act
                    resp.route_name = route.name
                if route.response_headers_to_add or route.response_headers_to_remove:
                    resp.headers = _header_ops(
                        resp.headers or {},
                        route.response_headers_to_remove,
                        route.response_headers_to_add,
                    )
                    if trace:
                        trace.add(
                            env.now,
                            client.name,
                            f"route response headers: the app gets {_show(resp.headers)}",
                        )
    yield env.timeout(req.lead + world.hop())
    req.lead = 0.0
    if not resp.destination_service:
        resp.destination_service = service_host
    world.record(_source_record(client, req, resp, route, start=start, end=env.now))
    return resp


def _act(
    world: World, proxy: ProxyRuntime, req: Request, route: RouteSpec, trace: Any
) -> Response | Proc:
    """The matched route's action: a local answer now, or the generator that forwards the
    request (run by the caller with ``yield from``: one generator level less per event)."""
    env = world.env
    where = proxy.pod.name
    if trace:
        trace.add(
            env.now,
            where,
            f"matched route {route.name or '#' + str(route.index)}"
            f" ({_describe_match(route)})" + _source(route),
        )
    if route.action == "redirect":
        status = redirect_status(route.redirect)
        if trace:
            trace.add(env.now, where, f"redirect: {status} generated by the client proxy")
        return _local(status, (), "via_route_redirect")
    if route.action == "direct_response":
        resp = _local(route.direct_status, (), "direct_response", route.direct_body)
        if route.name == "block_all":  # REGISTRY_ONLY's catch-all: Istio labels it BlackHole
            resp.destination_service = "BlackHoleCluster"
        return resp
    if route.action != "route":
        return _local(404, ("NR",), "route_not_found")
    cluster = _pick_cluster(route, world, req)
    if trace and len(route.clusters) > 1:
        weights = ", ".join(f"{n} ({w})" for n, w in route.clusters)
        trace.add(env.now, where, f"weighted clusters {weights}: picked {cluster}")
    if route.fault is not None:
        return _faulted(world, proxy, req, route, cluster, trace=trace)
    return _forward(world, proxy, req, route, cluster, flags=(), trace=trace)


def _faulted(
    world: World, proxy: ProxyRuntime, req: Request, route: RouteSpec, cluster: str, *, trace: Any
) -> Proc:
    """The fault filter (delay, then abort) before the router."""
    env = world.env
    where = proxy.pod.name
    flags: tuple[str, ...] = ()
    fault = route.fault
    assert fault is not None
    if fault.delay_fraction > 0 and world.rng.random() < fault.delay_fraction:
        flags = ("DI",)
        if trace:
            trace.add(env.now, where, f"fault filter: delay {fault.delay_s:g}s injected (DI)")
        yield env.timeout(fault.delay_s)
    if fault.abort_fraction > 0 and world.rng.random() < fault.abort_fraction:
        if trace:
            trace.add(
                env.now,
                where,
                f"fault filter: abort with {fault.abort_status} (FI); "
                "never retried, no upstream host chosen",
            )
        resp = _local(fault.abort_status, (*flags, "FI"), "fault_filter_abort", BODY_FAULT_ABORT)
        resp.upstream_cluster = cluster
        resp.destination_service = _cluster_host(cluster)
        return resp
    act = _forward(world, proxy, req, route, cluster, flags=flags, trace=trace)
    if isinstance(act, Response):
        return act
    resp = yield from act
    return resp


def _forward(
    world: World,
    proxy: ProxyRuntime,
    req: Request,
    route: RouteSpec,
    cluster: str,
    *,
    flags: tuple[str, ...],
    trace: Any,
) -> Response | Proc:
    """Cluster lookup, rewrites, mirrors, then the router (or the passthrough cluster)."""
    env = world.env
    where = proxy.pod.name
    crt = proxy.cluster(cluster, world)
    if crt is None:
        if trace:
            trace.add(env.now, where, f"cluster {cluster!r} does not exist: 503 NC")
        resp = _local(503, (*flags, "NC"), "cluster_not_found")
        resp.upstream_cluster = cluster
        resp.destination_service = _cluster_host(cluster)
        resp.route_name = route.name
        return resp
    upstream = _upstream_request(route, req)
    if crt.spec.type == "ORIGINAL_DST" and not crt.spec.endpoints:
        return _passthrough(world, proxy, upstream, crt.spec.name, flags)
    for m in route.mirrors:
        if m.fraction >= 1.0 or world.rng.random() < m.fraction:
            env.process(_mirror(world, proxy, upstream, m.cluster))
            if trace:
                trace.add(env.now, where, f"mirror: a copy sent to {m.cluster} (response ignored)")
    if flags:
        return _flagged(route_request(world, proxy, upstream, route, crt), flags)
    return route_request(world, proxy, upstream, route, crt)


def _flagged(router: Proc, flags: tuple[str, ...]) -> Proc:
    """The router's answer with the fault filter's flags added."""
    resp: Response = yield from router
    resp.flags = tuple(sorted({*flags, *resp.flags}))
    return resp


def _passthrough(
    world: World, proxy: ProxyRuntime, req: Request, cluster: str, flags: tuple[str, ...]
) -> Proc:
    """ORIGINAL_DST (``PassthroughCluster``): forwarded as is to the address the app dialled,
    without retries or timeouts. Outside the simulated mesh that is an external server, which
    answers 200 after one network hop each way."""
    env = world.env
    host = req.authority.rsplit(":", 1)[0]
    target = world.by_address.get(host)
    yield env.timeout(world.hop())
    if target is not None and not target.dead:
        resp: Response = yield from inbound(
            world,
            target,
            req,
            client=None,
            service_host=target.service_host,
            attempt=None,
            mtls=False,
        )
    else:
        resp = Response(200)
    yield env.timeout(world.hop())
    resp.upstream_cluster = cluster
    resp.destination_service = cluster
    resp.upstream_host = req.authority
    resp.flags = tuple(sorted({*flags, *resp.flags}))
    return resp


def _describe_match(route: RouteSpec) -> str:
    parts = [route.path.describe()]
    parts += [h.describe() for h in route.headers]
    parts += [f"?{q.name}" for q in route.query]
    return ", ".join(parts)


def _source(route: RouteSpec) -> str:
    if route.config_source:
        return f" from {route.config_source}"
    if route.name == "default":
        return " (istiod's default route: no VirtualService for this host)"
    if route.decorator:
        return f" (decorator {route.decorator})"
    return ""


def _cluster_host(cluster: str) -> str:
    parsed = parse_cluster_name(cluster)  # only on local replies (FI, NC): off the hot path
    return parsed.host if parsed is not None else cluster


def _mirror(world: World, proxy: ProxyRuntime, req: Request, cluster: str) -> Proc:
    """A shadow copy: sent to one host of the mirror cluster; nobody waits for the answer."""
    crt = proxy.cluster(cluster, world)
    if crt is None:
        return
    pick = crt.choose(None, None, 1)
    if pick.host is None:
        return
    target = world.by_address.get(pick.host.endpoint.address)
    yield world.env.timeout(world.hop())
    if target is None or target.dead or target.refuse:
        return
    copy = Request(
        req.method,
        req.path,
        req.authority,
        req.port,
        dict(req.headers),
        req.request_id,
        req.trace_id,
        None,
    )
    yield from inbound(
        world,
        target,
        copy,
        client=proxy.pod,
        service_host=crt.spec.service_host,
        attempt=None,
        mtls=crt.spec.istio_mtls_to(pick.host.endpoint),
    )


def _source_record(
    client: PodRuntime,
    req: Request,
    resp: Response,
    route: RouteSpec | None,
    *,
    start: float,
    end: float,
) -> RequestRecord:
    pod = client.pod
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.SOURCE,
        pod.workload,
        pod.namespace,
        client.identity,
        resp.destination_service,
        resp.workload or UNKNOWN,
        resp.namespace or _namespace_of(resp.destination_service),
        resp.version or UNKNOWN,
        client.app,
        client.version,
        resp.app or UNKNOWN,
        resp.principal,
        resp.route_name or (route.name if route is not None else ""),
        resp.upstream_cluster,
        resp.upstream_host,
        req.method,
        req.path,
        req.authority,
        resp.status,
        resp.flags,
        resp.attempts,
        0,
        0,
        req.request_id,
        req.trace_id,
        ConnectionSecurityPolicy.UNKNOWN,
        resp.details,
    )


def _namespace_of(host: str) -> str:
    parts = host.split(".")
    return parts[1] if len(parts) > 2 else RequestRecord.UNKNOWN


def direct(world: World, client: PodRuntime | None, req: Request, service: MeshService) -> Proc:
    """A call without a client proxy: kube-proxy picks a random pod of the Service."""
    env = world.env
    pods = world.pods_of_service.get(service.hostname) or []
    yield env.timeout(world.hop())
    if not pods:
        return Response(503, (), "no_endpoints", local_failure="connect")
    target = pods[world.rng.randrange(len(pods))] if len(pods) > 1 else pods[0]
    security = world.security
    if security.network is not None and not security.connect_allowed(
        client.pod if client is not None else None, target.pod, target.target_port
    ):
        # NetworkPolicy drops the SYN: a client without a sidecar waits for its connect timeout
        yield env.timeout(world.topology.config.connect_timeout_s)
        return Response(0, (), "connection_timeout", local_failure="connect")
    if target.dead or (target.refuse and not target.sidecar):
        yield env.timeout(world.hop())
        return Response(503, (), "connection_refused", local_failure="connect")
    resp: Response = yield from inbound(
        world, target, req, client=client, service_host=service.hostname, attempt=None, mtls=False
    )
    yield env.timeout(world.hop())
    return resp


def outside(world: World, req: Request, service: MeshService) -> Proc:
    """A request from a load generator outside the mesh straight to a Service."""
    resp: Response = yield from direct(world, None, req, service)
    return resp


INF = math.inf
