"""A client sidecar (or gateway) handling one outbound HTTP request, the way Envoy does.

The app connects to the address it dialled (a Service name resolves to its VIP:
:meth:`sim.world.World.dial`); the connection lands on a listener and a filter chain
(:meth:`sim.xds.tables.ProxyTables.outbound`: ``virtualOutbound`` hands it to ``<VIP>_<port>`` or
``0.0.0.0_<port>``, else keeps it; the chain by FilterChainMatch, an HTTP/1.1 request offering
``http/1.1`` only where ``http_inspector`` runs). Then, as the chain's network filter says:

* an HTTP connection manager: its route configuration -> virtual host by ``:authority`` ->
  first matching route -> the route's action (:mod:`sim.route_action`). Every request ends with
  one ``reporter=source`` HTTP record; no route (or no virtual host) is 404 ``NR``.
* ``tcp_proxy`` (a TCP service port, ``PassthroughCluster``/``BlackHoleCluster`` on
  ``virtualOutbound``'s catch-all): the request's bytes go through as a TCP connection
  (:func:`sim.tcp.http_over_tcp`), logged as one; the app's HTTP exchange still happens end to end.
* no listener or chain: the connection is refused or closed, nothing is logged.

A gateway's listeners are bound to its own ports: ``ingress`` traffic arrives at the gateway
pod's target port of the gateway Service port it was sent to.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Generator, Mapping
from typing import Any

from mesh.records import RequestRecord
from mesh.security.credentials import certificate_names, host_matches, issued_by
from mesh.topology import ProxyKind
from sim.accesslog import http_source
from sim.matchers import split_path
from sim.messages import Request, Response, TlsHello
from sim.pods import ProxyRuntime
from sim.route_action import act, header_ops
from sim.tcp import http_over_tcp
from sim.world import World
from sim.xds import FilterChainSpec, Landing, RouteSpec, VirtualHostSpec

__all__ = ["outbound"]

Proc = Generator[Any, Any, Any]


def _match(world: World, vh: VirtualHostSpec, req: Request) -> RouteSpec | None:
    catch_all = vh.catch_all
    if catch_all is not None and req.path[:1] == "/":
        return catch_all
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
    # runtime_fraction routes need the request's random value (drawn only for them)
    random_value = world.rng.getrandbits(32) if vh.has_runtime else 0
    return vh.match(base, query, headers, random_value)


def _tls_redirect(vh: VirtualHostSpec, req: Request) -> Response:
    """``require_tls``: a plaintext request is answered 301 to the same URL with ``https``."""
    return Response(
        301,
        (),
        "via_route_redirect",
        headers={"location": f"https://{req.authority}{req.path}"},
    )


def _show(headers: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(headers.items())) or "no headers"


def _new_request_id(world: World, name: str, req: Request) -> None:
    """An edge HCM's caller is external (no ``internal_address_config`` names it: istiod sets
    none on gateways without meshNetworks), so Envoy replaces its ``x-request-id`` with a new
    one: this hop's record, and every hop after it, carry the new id, not the caller's. The
    trace context (``x-b3-*``) goes on unchanged."""
    old = req.request_id
    req.request_id = world.new_ids()[0]
    req.headers["x-request-id"] = req.request_id
    if req.trace:
        req.trace.add(
            world.env.now,
            name,
            f"the gateway's HCM treats its caller as external: x-request-id {old} is replaced "
            f"by {req.request_id}",
        )


def dialled(world: World, proxy: ProxyRuntime, req: Request) -> str:
    """The address the request's connection goes to: what the app dialled, resolved."""
    address = req.address
    if not address:  # no explicit target: the host of the authority, as the app resolves it
        host = req.authority.rsplit(":", 1)[0] if ":" in req.authority else req.authority
        service = world.service_by_name(host, proxy.pod.pod.namespace)
        address = req.address = service.hostname if service is not None else host
    return world.dial(address)


def outbound(world: World, proxy: ProxyRuntime, req: Request) -> Proc:
    """Handle ``req`` sent by the proxy's app (or by a client of a gateway); returns a Response."""
    env = world.env
    start = env.now
    trace = req.trace
    client = proxy.pod
    req.lead = world.hop()
    address = world.dialled.get(req.address) or dialled(world, proxy, req)
    hello = req.tls
    landing: Landing | None = None
    if hello is not None:
        landing = proxy.tables.outbound_tls(address, req.port, hello.sni, hello.alpn)
    else:
        by_port = proxy.tables.http_out.get(address)
        landing = by_port.get(req.port) if by_port is not None else None
    if landing is None:
        landing = proxy.tables.outbound(address, req.port, http=True)
    chain = landing.chain
    if chain is None or (chain.hcm is None and not chain.clusters):
        resp = yield from _refused(world, proxy, req, landing, address)
        return resp
    failed = handshake_failure(chain, hello, proxy.tables.secrets)
    if failed:
        resp = yield from _reset(world, proxy, req, landing, failed)
        return resp
    if chain.hcm is not None and chain.hcm.edge:
        # an edge HCM (use_remote_address) sets x-forwarded-proto from the connection
        req.headers["x-forwarded-proto"] = "https" if hello is not None else "http"
        if chain.hcm.regenerates_request_id(req.caller):
            _new_request_id(world, client.name, req)
    if chain.hcm is None:
        if trace:
            trace.add(
                env.now,
                client.name,
                f"{req.method} {req.path} to {address}:{req.port}: the connection lands on a "
                "tcp_proxy chain: the request goes through as TCP bytes",
            )
        lead, req.lead = req.lead, 0.0
        yield env.timeout(lead)
        resp = yield from http_over_tcp(world, proxy, landing, req, address)
        yield env.timeout(world.hop())
        return resp
    route: RouteSpec | None = None
    table = landing.routes
    if table is None:
        resp = Response(404, ("NR",), "route_not_found")
        if trace:
            trace.add(
                env.now,
                client.name,
                f"{landing.describe()}: no route configuration {chain.hcm.route_config!r}: 404 NR",
            )
    else:
        vh = table.vhost(req.authority)
        if vh is None:
            resp = Response(404, ("NR",), "route_not_found")
            if trace:
                trace.add(
                    env.now,
                    client.name,
                    f"{landing.describe()} -> route config {table.name!r}: "
                    f"no virtual host for {req.authority!r}: 404 NR",
                )
        else:
            internal = req.headers.get("x-envoy-internal") == "true"
            # Envoy reads x-forwarded-proto, which the HCM sets to https on a TLS connection
            https = chain.terminates_tls or req.headers.get("x-forwarded-proto") == "https"
            route = None if vh.tls_redirect(https, internal) else _match(world, vh, req)
            if trace:
                trace.add(
                    env.now,
                    client.name,
                    f"{landing.describe()} -> route config {table.name!r} -> "
                    f"virtual host {vh.name!r}",
                )
            if route is None and vh.tls_redirect(https, internal):
                resp = _tls_redirect(vh, req)
                if trace:
                    trace.add(
                        env.now,
                        client.name,
                        f"virtual host {vh.name!r} has require_tls {vh.require_tls}: "
                        "a plaintext request gets 301 to https",
                    )
            elif route is None:
                resp = Response(404, ("NR",), "route_not_found")
                if trace:
                    trace.add(env.now, client.name, "no route of the virtual host matches: 404 NR")
            else:
                action = act(world, proxy, req, route, chain.hcm, address, trace)
                if isinstance(action, Response):
                    resp = action
                else:
                    resp = yield from action
                    resp.route_name = route.name
                if route.response_levels:  # route, virtual host, route configuration
                    headers = resp.headers or {}
                    for remove, add in route.response_levels:
                        headers = header_ops(headers, remove, add)
                    resp.headers = headers
                    if trace:
                        trace.add(
                            env.now,
                            client.name,
                            f"route response headers: the app gets {_show(resp.headers)}",
                        )
    back = resp.return_s if resp.return_s is not None else world.hop()
    yield env.timeout(req.lead + back)
    req.lead = 0.0
    if not resp.destination_service:
        # no upstream cluster: a sidecar's stats fall back to the Host header, as sent (port
        # included); Istio's gateways do not (istiod sets disable_host_header_fallback for
        # them and for inbound listeners): the service is unknown
        gateway = client.pod.proxy is ProxyKind.ROUTER
        resp.destination_service = RequestRecord.UNKNOWN if gateway else req.authority
    end = env.now
    if req.gone_at is not None:  # the app stopped waiting: Envoy logs its downstream's disconnect
        resp = copy.copy(resp)
        resp.status, resp.flags, resp.details = 0, ("DC",), "downstream_remote_disconnect"
        end = req.gone_at
    world.record(
        http_source(
            client, req, resp, route.name if route is not None else "", start=start, end=end
        )
    )
    return resp


def handshake_failure(
    chain: FilterChainSpec, hello: TlsHello | None, secrets: Mapping[str, Any] | None = None
) -> str:
    """Why the connection dies before any HTTP exchange on ``chain`` ("" when it does not):
    plaintext bytes to a chain that terminates TLS, a TLS ClientHello to a plaintext HTTP
    connection manager (its codec cannot parse it), or a TLS handshake that fails
    (:func:`tls_failure`). A ``tcp_proxy`` chain passes TLS through untouched."""
    if chain.terminates_tls:
        if hello is None:
            return "a plaintext client on a chain that terminates TLS: the handshake fails"
        return tls_failure(chain, hello, secrets if secrets is not None else {})
    if hello is not None and chain.hcm is not None:
        return "a TLS ClientHello to a plaintext HTTP connection manager: codec error"
    return ""


_MESH_SECRETS = frozenset({"default", "ROOTCA"})
"""The workload certificate and root every proxy gets from istio-agent (the mesh CA)."""


def _pem(secret: Mapping[str, Any], *path: str) -> bytes | None:
    node: Any = secret
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return None
    if "inline_bytes" in node:
        return base64.b64decode(str(node["inline_bytes"]))
    if "inline_string" in node:
        return str(node["inline_string"]).encode()
    return None


def tls_failure(chain: FilterChainSpec, hello: TlsHello, secrets: Mapping[str, Any]) -> str:
    """Why a TLS handshake on a terminating chain fails, as Envoy and a verifying client
    (curl, Python's ssl) decide it: the chain's SDS certificate was never supplied (its
    Secret is missing or unusable: the chain is not ready), the client does not trust the
    certificate's issuer, the certificate does not name the host (SNI), a MUTUAL chain gets
    no client certificate, or a MUTUAL or OPTIONAL_MUTUAL chain one its CA did not sign."""
    name = chain.certificate_secret
    if name and name not in _MESH_SECRETS:
        secret = secrets.get(name)
        cert = _pem(secret, "tls_certificate", "certificate_chain") if secret else None
        if cert is None:
            return f"SDS secret {name} was never supplied: the chain is not ready"
        if hello.trusted_ca is None or not issued_by(cert, hello.trusted_ca):
            return f"the client does not trust the issuer of {name}'s certificate"
        names = certificate_names(cert)
        if not host_matches(names, hello.sni):
            return (
                f"{name}'s certificate names {', '.join(names) or 'no DNS name'}, "
                f"not {hello.sni}: the client refuses it"
            )
    elif name and hello.trusted_ca is not None:
        return "the gateway presents the mesh certificate, which the client does not trust"
    ca_name = chain.validation_secret
    if chain.requires_client_certificate and not hello.client_certificate:
        return "the chain requires a client certificate and the client has none"
    if ca_name and ca_name not in _MESH_SECRETS:
        ca_secret = secrets.get(ca_name)
        ca = _pem(ca_secret, "validation_context", "trusted_ca") if ca_secret else None
        if ca is None:
            return f"SDS secret {ca_name} was never supplied: the chain is not ready"
        # MUTUAL, and OPTIONAL_MUTUAL when the client presents a certificate: Envoy checks it
        if hello.client_certificate and (
            hello.client_cert is None or not issued_by(hello.client_cert, ca)
        ):
            return f"the client certificate is not signed by the CA of {ca_name}"
    elif ca_name and chain.requires_client_certificate and not hello.mesh_certificate:
        return "the chain wants a mesh certificate (ISTIO_MUTUAL); the client has another"
    return ""


def _reset(world: World, proxy: ProxyRuntime, req: Request, landing: Landing, why: str) -> Proc:
    """The connection is accepted and closed during the TLS handshake: the client sees a
    transport error, no request reaches the HCM, nothing is logged."""
    env = world.env
    if req.trace:
        req.trace.add(env.now, proxy.pod.name, f"{landing.describe()}: {why}: connection closed")
    yield env.timeout(req.lead + world.hop())
    req.lead = 0.0
    return Response(503, (), "connection_termination", local_failure="reset")


def _refused(
    world: World, proxy: ProxyRuntime, req: Request, landing: Landing, address: str
) -> Proc:
    """No listener or no filter chain takes the connection: refused (or closed at once),
    before any HTTP exchange; the app's HTTP client sees a transport error."""
    env = world.env
    if req.trace:
        req.trace.add(
            env.now,
            proxy.pod.name,
            f"{address}:{req.port}: {landing.describe()}: the connection is refused, "
            "nothing is logged",
        )
    yield env.timeout(req.lead + world.hop())
    req.lead = 0.0
    return Response(503, (), "connection_refused", local_failure="connect")
