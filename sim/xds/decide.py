"""One request through a route configuration, without the simulator: which virtual host and
route take it and what the route makes of it (Envoy's ``RouteMatcher::route`` followed by the
route's ``finalizeRequestHeaders``/``finalizeResponseHeaders``, or the direct response).

This is what ``meshplay route-check`` runs for each test; the simulator's proxy uses the same
pieces (:class:`~sim.xds.vhosts.RouteTable`, :class:`~sim.xds.routes.RouteSpec`,
:mod:`sim.xds.rewrite`, :mod:`sim.xds.formatters`), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sim.matchers import header_list, split_path
from sim.xds.formatters import FormatContext, apply_header_ops
from sim.xds.rewrite import (
    redirect_uri,
    rewritten_host,
    rewritten_path,
    weighted_pick,
)
from sim.xds.routes import RouteSpec, redirect_status
from sim.xds.vhosts import RouteTable, VirtualHostSpec

__all__ = ["RouteDecision", "RouteInput", "decide"]


@dataclass(frozen=True, slots=True)
class RouteInput:
    """A request as ``router_check_tool`` builds it: pseudo headers, ``ssl`` (sets
    ``x-forwarded-proto`` and ``:scheme``), ``internal`` (``x-envoy-internal: true``), extra
    headers (a repeated name joins with a comma) and the random value for weighted clusters and
    ``runtime_fraction``."""

    authority: str
    path: str
    method: str = "GET"
    headers: Sequence[tuple[str, str]] = ()
    ssl: bool = False
    internal: bool = False
    random_value: int = 0
    remote: str = "127.0.0.1:0"

    def request_headers(self) -> dict[str, str]:
        """The request's header map (lower-case names, pseudo headers included)."""
        scheme = "https" if self.ssl else "http"
        out: dict[str, str] = {
            ":authority": self.authority,
            ":path": self.path,
            ":method": self.method,
            "x-forwarded-proto": scheme,
            ":scheme": scheme,
        }
        if self.internal:
            out["x-envoy-internal"] = "true"
        repeated: dict[str, tuple[str, ...]] = {}
        for name, value in self.headers:
            key = name.lower()
            repeated[key] = (*repeated.get(key, ()), value)
        for key, values in repeated.items():
            out[key] = header_list((out[key], *values) if key in out else values)
        return out


@dataclass(slots=True)
class RouteDecision:
    """What the route configuration does with one request.

    ``kind``: ``route`` (forwarded to ``cluster``), ``redirect``, ``direct_response``,
    ``tls_redirect`` (``require_tls``), ``no_vhost`` or ``no_route`` (Envoy's 404 ``NR``).
    """

    kind: str
    vhost: VirtualHostSpec | None = None
    route: RouteSpec | None = None
    cluster: str = ""
    virtual_cluster: str = ""
    code: int = 0
    location: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def route_entry(self) -> bool:
        """Envoy's ``routeEntry()``: the route forwards (clusters, rewrites, virtual host)."""
        return self.kind == "route"

    @property
    def direct(self) -> bool:
        """Envoy's ``directResponseEntry()``: answered by the proxy itself."""
        return self.kind in ("redirect", "direct_response", "tls_redirect")


def _cluster(route: RouteSpec, headers: Mapping[str, str], random_value: int) -> str:
    if route.cluster_header:
        return headers.get(route.cluster_header, "")
    if len(route.clusters) > 1 or route.weight_header:
        value = headers.get(route.weight_header, "") if route.weight_header else ""
        return weighted_pick(route, int(value) if value.isdigit() else random_value)
    return route.cluster


def _response_headers(
    route: RouteSpec, start: dict[str, str], ctx: FormatContext
) -> dict[str, str]:
    out = start
    for remove, add in route.response_levels:
        out = apply_header_ops(out, remove, add, ctx)
    return out


def _local_reply(status: int, body: str) -> dict[str, str]:
    headers = {":status": str(status), "content-length": str(len(body.encode()))}
    if body:
        headers["content-type"] = "text/plain"
    return headers


def decide(table: RouteTable, request: RouteInput) -> RouteDecision:
    """Route ``request`` through ``table`` the way Envoy does."""
    headers = request.request_headers()
    vh = table.vhost(request.authority)
    if vh is None:
        return RouteDecision("no_vhost", request_headers=headers)
    forwarded_proto = headers.get("x-forwarded-proto", "http")
    internal = headers.get("x-envoy-internal") == "true"
    if vh.tls_redirect(forwarded_proto == "https", internal):
        location = f"https://{request.authority}{request.path}"
        response = {**_local_reply(301, ""), "location": location}
        return RouteDecision("tls_redirect", vh, None, code=301, location=location,
                             request_headers=headers, response_headers=response)  # fmt: skip
    base, query = split_path(request.path)
    route = vh.match(base, query, headers, request.random_value)
    if route is None:
        return RouteDecision("no_route", vh, request_headers=headers)
    ctx = FormatContext(headers, remote=request.remote)
    if route.action in ("redirect", "direct_response"):
        scheme = headers.get(":scheme", "http")
        if route.action == "redirect":
            path = rewritten_path(route, request.path) if route.redirect else request.path
            location = redirect_uri(route, request.authority, request.path, scheme, forwarded_proto)
            code = redirect_status(route.redirect)
            reply = {**_local_reply(code, ""), "location": location}
            headers = {**headers, ":path": path}
        else:
            location = f"{scheme}://{request.authority}{request.path}"
            code = route.direct_status
            reply = _local_reply(code, route.direct_body)
        response = _response_headers(route, reply, ctx)
        return RouteDecision(route.action, vh, route, code=code, location=location,
                             request_headers=headers, response_headers=response)  # fmt: skip
    if route.action != "route":
        return RouteDecision("no_route", vh, route, request_headers=headers)
    cluster = _cluster(route, headers, request.random_value)
    finalized = dict(headers)
    for remove, add in route.request_levels:
        finalized = apply_header_ops(finalized, remove, add, ctx)
    host = rewritten_host(route, request.authority, finalized, request.path)
    new_path = rewritten_path(route, request.path)
    if new_path != request.path:
        finalized["x-envoy-original-path"] = request.path
    finalized[":path"] = new_path
    finalized[":authority"] = host
    response = _response_headers(route, {}, ctx)
    return RouteDecision(
        "route",
        vh,
        route,
        cluster=cluster,
        virtual_cluster=vh.virtual_cluster(headers),
        request_headers=finalized,
        response_headers=response,
    )
