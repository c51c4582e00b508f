"""The server sidecar: ``virtualInbound`` -> filter chain -> HTTP connection manager (HTTP filters,
the ``inbound|<port>||`` route) -> the app, all from the pod's translated inbound listener.

A connection to the pod's ``ip:port`` lands on ``virtualInbound`` and takes the filter chain
Envoy's FilterChainMatch selects for its destination port, transport (``tls`` for Istio mTLS,
seen by ``tls_inspector``) and ALPN (what the client's mTLS socket offers). That *is*
PeerAuthentication, executed from the chains istiod built for the port's mode: no chain for the
connection (plaintext to STRICT, mTLS to DISABLE) and Envoy closes it before any HTTP exchange:
the server logs nothing, the caller sees a reset (``local_failure="reset"``: a client sidecar
answers 503 UC). A chain ending in ``tcp_proxy`` carries the request as bytes
(:mod:`sim.inbound_tcp`).

On an HTTP connection manager chain, the route of its route configuration is matched first (its
per-filter config and retry policy apply), then the HCM's HTTP filters run in order
(:mod:`sim.httpfilters`: jwt_authn, RBAC, local rate limit; each may answer the request), then
the router hands the request to the app.

Every request that gets through a chain yields one ``reporter=destination`` record (see
:mod:`sim.accesslog`). When the client side gave up on the attempt (timeout), the record shows
code 0 with flag ``DC`` (downstream disconnected), as the server's Envoy logs it, while the app
still did the work.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from mesh.envoy_api.names import DEFAULT_ROUTE, VIRTUAL_INBOUND
from sim.accesslog import http_destination
from sim.app import AppAnswer, serve
from sim.httpfilters import run_http_filters
from sim.inbound_tcp import serve_http_over_tcp, tls_not_terminated
from sim.matchers import split_path
from sim.messages import BODY_UC, BODY_UF, Attempt, Request, Response
from sim.xds import Landing, RouteSpec

if TYPE_CHECKING:
    from sim.pods import PodRuntime
    from sim.world import World

__all__ = ["inbound"]

_NOTHING = AppAnswer(0)

Proc = Generator[Any, Any, Any]


def _closed(world: World, pod: PodRuntime, req: Request, port: int, mtls: bool) -> Response:
    """No filter chain takes the connection: Envoy closes it, nothing is logged."""
    if req.trace:
        req.trace.add(
            world.env.now,
            pod.name,
            f"{VIRTUAL_INBOUND}: no filter chain takes a {'mTLS' if mtls else 'plaintext'} "
            f"connection to port {port} (PeerAuthentication): closed before any HTTP exchange",
        )
    return Response(0, (), "connection_termination", local_failure="reset")


def inbound(
    world: World,
    pod: PodRuntime,
    req: Request,
    *,
    client: PodRuntime | None,
    service_host: str,
    attempt: Attempt | None,
    mtls: bool,
    port: int = 0,
    alpn: tuple[str, ...] = (),
) -> Proc:
    """Serve ``req`` arriving at ``pod``'s ``port`` (0: its app's port), over Istio mTLS
    offering ``alpn`` when ``mtls``; returns the Response its sidecar (or app) sends back."""
    env = world.env
    start = env.now
    port = port or pod.target_port
    proxy = pod.proxy
    if not pod.sidecar or proxy is None:
        return (yield from _app_only(world, pod, req))
    by_alpn = proxy.tables.http_in.get(port)
    landing = by_alpn.get(alpn if mtls else None) if by_alpn is not None else None
    if landing is None:
        landing = proxy.tables.inbound(pod.pod.address, port, tls=mtls, alpn=alpn, http=True)
    chain = landing.chain
    if chain is None:
        return _closed(world, pod, req, port, mtls)
    if mtls and not chain.terminates_tls:
        tls_not_terminated(world, pod, chain, port, client, req.trace)
        return Response(503, (), "connection_failure", local_failure="connect")
    hcm = chain.hcm
    if hcm is None:
        resp: Response = yield from serve_http_over_tcp(
            world, pod, chain, port, req, client=client, mtls=mtls
        )
        return resp
    route = landing.route
    if route is None or req.path[:1] != "/":
        route = _route(landing, req)
    if req.trace:
        req.trace.add(
            start,
            pod.name,
            f"{landing.describe()} -> route config {hcm.route_config!r}"
            + (f" -> route {route.name!r}" if route is not None else ": no route (404 NR)"),
        )
    status = 0
    flags: tuple[str, ...] = ()
    details = "via_upstream"
    body = ""
    reply: Response | None = None
    answer: AppAnswer | None = None
    if route is None:
        reply = Response(404, ("NR",), "route_not_found")
    elif hcm.executed:
        req = copy.copy(req)  # filters may rewrite headers for the app, never the client's
        answered = run_http_filters(world, pod, hcm, route, req, client, mtls, port)
        if answered is not None:
            reply = answered.response
            if req.trace:
                req.trace.add(
                    env.now,
                    pod.name,
                    f"HTTP filter {answered.filter} answered {reply.status}"
                    f" ({answered.decision}): {reply.details}",
                )
        elif req.trace:
            names = ", ".join(f.name for f in hcm.executed)
            req.trace.add(env.now, pod.name, f"HTTP filters {names}: the request goes on")
    if reply is not None:
        status, flags, details, body = reply.status, reply.flags, reply.details, reply.body
    elif pod.refuse:
        # the app closed its socket: the server sidecar cannot connect to it
        status, body = 503, BODY_UF
        flags = ("UF",)
        details = "upstream_reset_before_response_started{connection_failure}"
    elif pod.resets_before_read and (
        reset := (yield from _resets_before_read(world, pod, req, route))
    ):
        status, flags, details, body = reset.status, reset.flags, reset.details, reset.body
    else:
        if req.trace:
            headers = ", ".join(f"{k}: {v}" for k, v in sorted(req.headers.items()))
            req.trace.add(
                env.now, pod.name, f"the app receives {req.method} {req.path} ({headers})"
            )
        # the server sidecar's own cost: its leg to the app over the pod's loopback and back, and
        # Envoy's work on both (one hop of the app's network model; lesson 27 measures it)
        yield env.timeout(world.hop())
        answer = yield from serve(world, pod, req)
        status = answer.status
    logged_flags: tuple[str, ...]
    if attempt is not None and attempt.abandoned:
        logged_status, logged_flags = 0, ("DC",)
        details = "downstream_remote_disconnect"
    else:
        logged_status, logged_flags = status, flags
    if chain.logs:
        if route is not None:
            route_name, cluster = route.name, route.cluster or pod.inbound_cluster
        else:
            route_name, cluster = DEFAULT_ROUTE, pod.inbound_cluster
        world.record(
            http_destination(
                pod,
                req,
                client,
                service_host,
                mtls,
                start,
                env.now,
                logged_status,
                logged_flags,
                details,
                route_name,
                cluster,
                landing.host,
                answer.size if answer is not None else 0,
            )
        )
    if reply is None and not pod.refuse:
        got = answer or _NOTHING
        if got.size or got.headers or pod.response_headers:
            return Response(status, flags, details, body, size=got.size, headers=_headers(pod, got))
    if reply is not None and reply.headers:
        return Response(status, flags, details, body, headers=reply.headers)
    return Response(status, flags, details, body)


def _route(landing: Landing, req: Request) -> RouteSpec | None:
    """The route of the landing's route configuration for ``req`` (None: 404 NR)."""
    routes = landing.routes
    vh = routes.vhost(req.authority) if routes is not None else None
    if vh is None:
        return None
    if vh.catch_all is not None and req.path[:1] == "/":
        return vh.catch_all
    base, query = split_path(req.path)
    return vh.match(base, query, req.headers)


def _app_only(world: World, pod: PodRuntime, req: Request) -> Proc:
    """A pod without a sidecar: the connection goes straight to the app."""
    if pod.refuse:
        return Response(503, (), "connection_failure", local_failure="connect")
    if pod.resets_before_read > 0:
        pod.resets_before_read -= 1
        if req.trace:
            req.trace.add(world.env.now, pod.name, "the app reset the request before reading it")
        return Response(0, (), "connection_termination", local_failure="reset")
    if req.trace:
        headers = ", ".join(f"{k}: {v}" for k, v in sorted(req.headers.items()))
        req.trace.add(
            world.env.now, pod.name, f"the app receives {req.method} {req.path} ({headers})"
        )
    answer = yield from serve(world, pod, req)
    if answer.size or answer.headers or pod.response_headers:
        return Response(answer.status, size=answer.size, headers=_headers(pod, answer))
    return Response(answer.status)


def _headers(pod: PodRuntime, answer: AppAnswer) -> dict[str, str] | None:
    """The app's response headers: the pod's own, then those of this answer."""
    if not pod.response_headers and not answer.headers:
        return None
    return {**(pod.response_headers or {}), **(answer.headers or {})}


def _resets_before_read(
    world: World, pod: PodRuntime, req: Request, route: RouteSpec | None
) -> Proc:
    """The app resets the request before reading it: the server sidecar's inbound route retries
    it under ``reset-before-request`` (Istio >= 1.24: twice, with the router's jittered 25 ms
    back-off); returns the 503 ``UC`` it answers once the retries are used up (``URX`` after
    retries; no retry policy: plain ``UC``), or None when an attempt finally reaches the app."""
    env = world.env
    retry = route.retry if route is not None else None
    allowed = retry.num_retries if retry and "reset-before-request" in retry.retry_on else 0
    retries = 0
    while pod.resets_before_read > 0:
        pod.resets_before_read -= 1
        if req.trace:
            req.trace.add(env.now, pod.name, "the app reset the request before reading it")
        if retries >= allowed:
            flags = ("UC", "URX") if retries else ("UC",)
            return Response(
                503,
                flags,
                "upstream_reset_before_response_started{connection_termination}",
                BODY_UC,
            )
        retries += 1
        assert retry is not None
        upper = min((2**retries - 1) * retry.base_interval, retry.max_interval)
        if req.trace:
            req.trace.add(env.now, pod.name, f"inbound retry {retries} (reset-before-request)")
        yield env.timeout(world.rng.random() * upper)
    return None
