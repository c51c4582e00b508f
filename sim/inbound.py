"""The server sidecar: inbound listener -> security filters -> ``inbound|<port>||`` -> the app.

First the connection must match a filter chain of ``virtualInbound``: PeerAuthentication decides
whether this port takes mTLS, plaintext or both (:meth:`sim.security.SimSecurity.admits`); a
refused connection is closed before any HTTP exchange, so the server logs nothing and the caller
sees a reset (``local_failure="reset"``: a client sidecar answers 503 UC).

Every request that gets in yields one ``reporter=destination`` record. Its ``source_*`` labels
come from the caller's proxy (the peer-metadata headers every client sidecar or gateway adds);
``source_principal`` and ``connection_security_policy=mutual_tls`` only from an mTLS peer
certificate. A caller without a proxy is ``unknown`` with ``connection_security_policy=none``.
When the client side gave up on the attempt (timeout), the record shows code 0 with flag ``DC``
(downstream disconnected), as the server's Envoy logs it, while the app still did the work.

``INBOUND_FILTERS`` are the HTTP filters in front of the router, in istiod's order: jwt_authn
and RBAC (:func:`authn_authz`), then the local rate limit (:func:`local_rate_limit`); each may
answer the request before the app sees it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from sim.app import serve
from sim.messages import BODY_UC, BODY_UF, Attempt, Request, Response
from sim.records import make_record
from sim.security import InboundVerdict

if TYPE_CHECKING:
    from sim.world import PodRuntime, World

__all__ = ["INBOUND_FILTERS", "InboundFilter", "authn_authz", "inbound", "local_rate_limit"]

Proc = Generator[Any, Any, Any]

InboundFilter = Callable[
    ["World", "PodRuntime", Request, "PodRuntime | None", bool], Response | None
]
"""(world, server pod, request, client pod or None, mTLS?) -> a local reply, or None to continue."""


def _reply(verdict: InboundVerdict) -> Response:
    return Response(verdict.status, verdict.flags, verdict.details, verdict.body)


def authn_authz(
    world: World, pod: PodRuntime, req: Request, client: PodRuntime | None, mtls: bool
) -> Response | None:
    """``envoy.filters.http.jwt_authn`` then ``envoy.filters.http.rbac``: 401 with Envoy's
    body for a bad token, 403 ``RBAC: access denied``; a verified token's header mutations
    (token stripped unless ``forwardOriginalToken``) apply to what the app receives."""
    verdict, outcome = world.security.check(
        pod.pod,
        method=req.method,
        path=req.path,
        authority=req.authority,
        headers=req.headers,
        port=pod.target_port,
        source=client.pod if client is not None else None,
        mtls=mtls,
        now=world.env.now,
    )
    if verdict is not None:
        return _reply(verdict)
    if outcome is not None and (outcome.remove_headers or outcome.set_headers):
        headers = {k: v for k, v in req.headers.items() if k not in outcome.remove_headers}
        headers.update(outcome.set_headers)
        req.headers = headers  # req is the server's own copy (see inbound)
        req.forward = None
    return None


def local_rate_limit(
    world: World, pod: PodRuntime, req: Request, client: PodRuntime | None, mtls: bool
) -> Response | None:
    """``envoy.filters.http.local_ratelimit``: 429 ``local_rate_limited``, flag RL."""
    verdict = world.security.rate_limit(pod.pod, pod.target_port, world.env.now, world.rng)
    return _reply(verdict) if verdict is not None else None


INBOUND_FILTERS: list[InboundFilter] = [authn_authz, local_rate_limit]

UNKNOWN = RequestRecord.UNKNOWN
_UNKNOWN_SOURCE = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def inbound(
    world: World,
    pod: PodRuntime,
    req: Request,
    *,
    client: PodRuntime | None,
    service_host: str,
    attempt: Attempt | None,
    mtls: bool,
) -> Proc:
    """Serve ``req`` at ``pod``; returns the Response its sidecar sends back."""
    env = world.env
    start = env.now
    status = 0
    flags: tuple[str, ...] = ()
    details = "via_upstream"
    body = ""
    reply: Response | None = None
    if pod.sidecar:
        security = world.security
        if not security.admits(pod.pod, pod.target_port, mtls):
            # PeerAuthentication: no filter chain matches; Envoy closes the connection unlogged
            if req.trace:
                req.trace.add(
                    start,
                    pod.name,
                    f"port {pod.target_port} takes no {'mTLS' if mtls else 'plaintext'} "
                    "connection (PeerAuthentication): closed before any HTTP exchange",
                )
            return Response(0, (), "connection_termination", local_failure="reset")
        if security.http_policies:
            req = copy.copy(req)  # filters may rewrite headers for the app, never the client's
            for f in INBOUND_FILTERS:
                reply = f(world, pod, req, client, mtls)
                if reply is not None:
                    break
    if reply is not None:
        status, flags, details, body = reply.status, reply.flags, reply.details, reply.body
    elif pod.refuse:
        # the app closed its socket: the server sidecar cannot connect to it
        status, body = 503, BODY_UF
        flags = ("UF",)
        details = "upstream_reset_before_response_started{connection_failure}"
    elif pod.resets_before_read and (reset := (yield from _resets_before_read(world, pod, req))):
        if reset.local_failure:  # no sidecar: the caller's connection is reset
            return reset
        status, flags, details, body = reset.status, reset.flags, reset.details, reset.body
    else:
        if req.trace:
            headers = ", ".join(f"{k}: {v}" for k, v in sorted(req.headers.items()))
            req.trace.add(
                env.now, pod.name, f"the app receives {req.method} {req.path} ({headers})"
            )
        status = yield from serve(world, pod, req)
    if pod.sidecar:
        logged_flags: tuple[str, ...]
        if attempt is not None and attempt.abandoned:
            logged_status, logged_flags = 0, ("DC",)
            details = "downstream_remote_disconnect"
        else:
            logged_status, logged_flags = status, flags
        world.record(
            _destination_record(
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
            )
        )
    elif pod.refuse:
        return Response(503, (), "connection_failure", local_failure="connect")
    if reply is None and pod.response_headers and not pod.refuse:
        return Response(status, flags, details, body, headers=dict(pod.response_headers))
    return Response(status, flags, details, body)


def _resets_before_read(world: World, pod: PodRuntime, req: Request) -> Proc:
    """The app resets the request before reading it: the server sidecar's inbound route
    (``inbound|<port>||``) retries it under ``reset-before-request`` (Istio >= 1.24: twice, with
    the router's jittered 25 ms back-off); returns the 503 ``UC`` it answers once the retries
    are used up (``URX`` after retries; no retry policy: plain ``UC``), or None when an attempt
    finally reaches the app. Without a sidecar the caller's connection is reset instead."""
    env = world.env
    retry = None
    if pod.proxy is not None:
        table = pod.proxy.tables.route_configs.get(pod.inbound_cluster)
        vh = table.vhost(req.authority) if table is not None else None
        if vh is not None and vh.routes:
            retry = vh.routes[0].retry
    allowed = retry.num_retries if retry and "reset-before-request" in retry.retry_on else 0
    retries = 0
    while pod.resets_before_read > 0:
        pod.resets_before_read -= 1
        if req.trace:
            req.trace.add(env.now, pod.name, "the app reset the request before reading it")
        if not pod.sidecar:
            return Response(0, (), "connection_termination", local_failure="reset")
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


def _destination_record(  # noqa: PLR0917 - positional on the hot path
    pod: PodRuntime,
    req: Request,
    client: PodRuntime | None,
    service_host: str,
    mtls: bool,
    start: float,
    end: float,
    status: int,
    flags: tuple[str, ...],
    details: str,
) -> RequestRecord:
    p = pod.pod
    policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
    if client is not None and (mtls or client.proxy is not None):
        cp = client.pod
        principal = client.identity if mtls else UNKNOWN
        source = (cp.workload, cp.namespace, principal, client.app, client.version)
    else:
        source = _UNKNOWN_SOURCE
    return make_record(
        start,
        (end - start) * 1000.0,
        Reporter.DESTINATION,
        source[0],
        source[1],
        source[2],
        service_host or pod.service_host,
        p.workload,
        p.namespace,
        pod.version or UNKNOWN,
        source[3],
        source[4],
        pod.app,
        pod.identity,
        "default",
        pod.inbound_cluster,
        pod.inbound_host,
        req.method,
        req.path,
        req.authority,
        status,
        flags,
        1,
        0,
        0,
        req.request_id,
        req.trace_id,
        policy,
        details,
    )
