"""The server sidecar: inbound listener -> (security filters) -> ``inbound|<port>||`` -> the app.

Every request that reaches a pod with a sidecar yields one ``reporter=destination`` record. Its
``source_*`` labels come from the peer's mTLS identity: a caller with a sidecar (auto mTLS) is
known, anything else is ``unknown`` with ``connection_security_policy=none``. When the client side
gave up on the attempt (timeout), the record shows code 0 with flag ``DC`` (downstream
disconnected), as the server's Envoy logs it, while the app still did the work.

``INBOUND_FILTERS`` is the hook where PeerAuthentication, jwt_authn, RBAC and local rate limit
plug in (issue 7): each filter may answer the request before the app sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from sim.app import serve
from sim.messages import BODY_UF, Attempt, Request, Response
from sim.records import make_record

if TYPE_CHECKING:
    from sim.world import PodRuntime, World

__all__ = ["INBOUND_FILTERS", "InboundFilter", "inbound"]

Proc = Generator[Any, Any, Any]

InboundFilter = Callable[
    ["World", "PodRuntime", Request, "PodRuntime | None", bool], Response | None
]
"""(world, server pod, request, client pod or None, mTLS?) -> a local reply, or None to continue."""

INBOUND_FILTERS: list[InboundFilter] = []

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
    else:
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
    return Response(status, flags, details, body)


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
    if client is not None and mtls:
        cp = client.pod
        source = (cp.workload, cp.namespace, client.identity, client.app, client.version)
        policy = ConnectionSecurityPolicy.MUTUAL_TLS
    else:
        source = _UNKNOWN_SOURCE
        policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
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
