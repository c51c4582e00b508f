"""Envoy's router filter: upstream attempts, retries, back-off and timeouts.

* The route ``timeout`` (Istio: 0 = off unless the VirtualService sets one) starts when the
  router has the request and covers every attempt, back-off wait and pending-queue wait; on expiry
  the client gets 504 ``UT`` ``upstream request timeout`` and nothing is retried.
* ``per_try_timeout`` ends one attempt with a local timeout; it is retried only when
  ``retry_on`` has ``5xx``, ``gateway-error`` or ``reset``; otherwise 504 ``UT``.
* Retries: up to ``num_retries`` more attempts for outcomes ``retry_on`` names (see
  :class:`sim.xds.RetrySpec`). Before retry k Envoy waits uniform[0, (2^k - 1) x base), base 25 ms,
  capped at ``max_interval`` (10 x base). ``previous_hosts`` re-draws a host already tried (up
  to ``host_selection_retry_max_attempts`` times). A circuit-breaker overflow (``UO``) and a
  missing healthy host (``UH``) are never retried. Exhausted retries on a retriable response return
  that response with ``URX``; exhausted connect failures return 503 ``UF,URX``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Generator, Mapping
from typing import Any

import simpy

from sim.cluster import ClusterRuntime, HostState
from sim.connpool import Connection, ConnPool, Slot
from sim.eastwest import deliver, is_eastwest_gateway
from sim.inbound import inbound
from sim.lb import stable_hash
from sim.matchers import split_path
from sim.messages import (
    BODY_NO_HEALTHY_UPSTREAM,
    BODY_OVERFLOW,
    BODY_TIMEOUT,
    BODY_UC,
    BODY_UF,
    Attempt,
    Request,
    Response,
    TlsHello,
)
from sim.pods import ProxyRuntime
from sim.timeouts import detached, raced
from sim.world import World
from sim.xds import RouteSpec

__all__ = ["hash_key", "route_request"]

Proc = Generator[Any, Any, Any]
INF = math.inf


def hash_key(policies: tuple[Mapping[str, Any], ...], req: Request, source_ip: str) -> int | None:
    """The request's consistent-hash key from the route ``hash_policy`` (None = no key)."""
    for p in policies:
        value: str | None = None
        if "header" in p:
            value = req.headers.get(str(p["header"]["header_name"]).lower())
        elif "cookie" in p:
            name = str(p["cookie"]["name"])
            for part in req.headers.get("cookie", "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    value = v
        elif "query_parameter" in p:
            _, query = split_path(req.path)
            value = (query or {}).get(str(p["query_parameter"]["name"]))
        elif "connection_properties" in p:
            value = source_ip
        if value is not None:
            return stable_hash(value)
    return None


def _finish(
    attempt: Attempt, crt: ClusterRuntime, host: HostState, *, reusable: bool = True
) -> None:
    if attempt.holds_slot and not attempt.done:
        attempt.done = True
        host.active -= 1
        pool = attempt.pool
        assert isinstance(pool, ConnPool)
        conn = attempt.conn
        pool.release(
            host.key, reusable=reusable, conn=conn if isinstance(conn, Connection) else None
        )


def _abandon(attempt: Attempt, crt: ClusterRuntime, host: HostState) -> None:
    """The client stopped waiting (timeout): Envoy resets the upstream stream."""
    attempt.abandoned = True
    if attempt.waiting is not None:
        pool = attempt.pool
        assert isinstance(pool, ConnPool)
        pool.abandon(host.key, attempt.waiting)  # type: ignore[arg-type]
        attempt.waiting = None
    _finish(attempt, crt, host, reusable=False)  # an HTTP/1.1 stream reset closes its connection


def _overflow(at_host: bool, world: World | None, busy_s: float = 0.0) -> Response:
    """503 ``UO``; ``world`` given (a sized pool): it goes back to the app as its
    ``pool_timing`` says (by default one request leg after the handshakes under way)."""
    return_s = world.pool_timing.overflow_return(busy_s, world.rng) if world is not None else None
    return Response(
        503,
        ("UO",),
        "upstream_reset_before_response_started{overflow}",
        BODY_OVERFLOW,
        local_failure="overflow_at_host" if at_host else "overflow",
        return_s=return_s,
    )


def upstream(
    world: World,
    proxy: ProxyRuntime,
    crt: ClusterRuntime,
    host: HostState,
    req: Request,
    *,
    attempt: Attempt,
) -> Proc:
    """One attempt: circuit breaker, connection, the server sidecar, the response."""
    env = world.env
    ep = host.endpoint
    mtls = crt.spec.istio_mtls_to(ep)
    pool = attempt.pool = crt.pool
    sized = pool.connect is not None
    if sized and req.lead:
        # a sized pool decides when the request has reached the sidecar: the app's hop is paid
        # now, as a local leg (what a real sidecar's hot loop shows), instead of folded later
        req.lead = 0.0
        yield env.timeout(world.pool_timing.request_leg.draw(world.rng))
    slot = pool.acquire(host.key, tls=mtls or crt.spec.mtls)
    granted_by: simpy.Event | None = None
    if slot is not Slot.GRANTED:
        if slot is Slot.OVERFLOW:
            return _overflow(False, world if sized else None, pool.busy_s())
        if slot is Slot.OVERFLOW_AT_HOST:
            return _overflow(True, world if sized else None, pool.busy_s())
        attempt.waiting = slot
        got = yield slot
        attempt.waiting = None
        if attempt.abandoned:
            return None
        if got is Slot.OVERFLOW_AT_HOST:
            return _overflow(True, world if sized else None)
        granted_by = slot
    attempt.conn = pool.connection(granted_by)
    attempt.holds_slot = True
    host.active += 1
    host.requests += 1
    target = world.by_address.get(ep.address)
    cni = world.cni
    if (
        cni.enforcing
        and target is not None
        and not cni.connect_allowed(proxy.pod.pod, target.pod, ep.port)
    ):
        # NetworkPolicy: the CNI drops the SYN, nothing answers until connect_timeout
        yield env.timeout(req.lead + crt.spec.connect_timeout)
        req.lead = 0.0
        crt.cx_connect_fail += 1
        _finish(attempt, crt, host, reusable=False)
        return Response(503, (), "connection_failure", local_failure="connect")
    yield env.timeout(req.lead + world.hop())
    req.lead = 0.0
    if target is None:
        # an endpoint outside the simulated mesh (a ServiceEntry host): an external server
        # (sim.outside), whose answer comes back after one network hop
        yield env.timeout(world.hop())
        sni = crt.spec.tls_sni
        answer = world.outside.answer(ep.address, ep.port, tls=sni is not None, sni=sni or "")
        if req.trace:
            said = "plain HTTP" if sni is None else f"TLS this proxy originated, SNI {sni!r}"
            verdict = "refuses the connection" if answer.local_failure else "accepts the connection"
            req.trace.add(env.now, proxy.pod.name, f"the server outside at {ep.address}:"
                          f"{ep.port} {verdict} ({said})")  # fmt: skip
        if answer.local_failure == "connect":
            crt.cx_connect_fail += 1
        _finish(attempt, crt, host, reusable=not answer.local_failure)
        return answer
    if target.proxy is not None and not target.sidecar and not is_eastwest_gateway(target.pod):
        # a gateway pod (an egress gateway): the connection lands on its own listeners, over
        # the TLS the cluster opens (ISTIO_MUTUAL presents the workload certificate)
        hop = copy.copy(req)
        hop.headers = dict(req.headers)  # what the gateway's HCM sets is not the caller's
        hop.address, hop.port = target.pod.address, ep.port
        hop.caller = proxy.pod.pod.address
        hop.tls = None
        if crt.spec.tls_sni is not None or mtls:
            alpn = req.upstream_alpn or crt.spec.alpn  # the filter state's, else the cluster's
            hop.tls = TlsHello(crt.spec.tls_sni or "", alpn, mesh_certificate=bool(mtls))
        relayed: Response = yield from world.hops.relay(world, target, hop)
        yield env.timeout(world.hop())
        _finish(attempt, crt, host, reusable=not relayed.local_failure)
        return relayed
    if target.dead:
        crt.cx_connect_fail += 1
        _finish(attempt, crt, host, reusable=False)
        return Response(503, (), "connection_failure", local_failure="connect")
    resp: Response
    if world.topology.multicluster is not None:
        resp = yield from deliver(
            world, proxy, target, crt, req, attempt=attempt, mtls=mtls, port=ep.port
        )
    else:
        resp = yield from inbound(
            world,
            target,
            req,
            client=proxy.pod,
            service_host=crt.spec.service_host,
            attempt=attempt,
            mtls=mtls,
            port=ep.port,
            alpn=req.upstream_alpn or crt.spec.alpn,
        )
    yield env.timeout(world.hop())
    if resp.local_failure == "connect":  # a sidecar-less app that closed its socket
        crt.cx_connect_fail += 1
    _finish(attempt, crt, host, reusable=not resp.local_failure)
    if sized:
        turnaround = pool.take_answer()
        if turnaround is None:
            turnaround = world.pool_timing.answer.draw(world.rng)
        resp.return_s = turnaround
    return resp


def _fill(resp: Response, crt: ClusterRuntime, host: HostState | None, attempts: int) -> Response:
    resp.upstream_cluster = crt.spec.name
    resp.destination_service = crt.spec.service_host
    resp.attempts = attempts
    if host is not None:
        ep = host.endpoint
        resp.upstream_host = host.key
        if ep.workload or not resp.workload:  # an east-west gateway: the server's own
            resp.workload = ep.workload
            resp.namespace = ep.namespace
            resp.app = ep.app
            resp.version = ep.version
            resp.principal = ep.identity
    return resp


def route_request(
    world: World, proxy: ProxyRuntime, req: Request, route: RouteSpec, crt: ClusterRuntime
) -> Proc:
    """The router: attempts with retries and timeouts; returns the final Response."""
    env = world.env
    rng = world.rng
    trace = req.trace
    where = proxy.pod.name
    retry = route.retry
    deadline = env.now + route.timeout if route.timeout > 0 else INF
    key = None
    if route.hash_policy and crt.spec.lb_policy in ("RING_HASH", "MAGLEV"):
        key = hash_key(route.hash_policy, req, proxy.pod.pod.address)
    tried: set[str] | None = set() if retry is not None and retry.previous_hosts else None
    num_retries = retry.num_retries if retry is not None else 0
    per_try = retry.per_try_timeout if retry is not None else 0.0
    select_attempts = retry.host_selection_max_attempts if retry is not None else 1
    attempts = 0
    if trace:
        policy = (
            f"retries {num_retries} on {','.join(sorted(retry.retry_on))}"
            if retry is not None
            else "no retry policy"
        )
        trace.add(
            env.now,
            where,
            f"router: cluster {crt.spec.name} ({crt.spec.lb_policy}), "
            f"timeout {route.timeout:g}s (0 = none), {policy}",
        )
    while True:
        attempts += 1
        if trace:
            pick = crt.choose(key, tried, select_attempts)
            host = pick.host
        else:
            host = crt.pick_host(key, tried, select_attempts)
        if host is None:
            if trace:
                trace.add(env.now, where, f"no host to pick: {pick.reason}: 503 UH")
            return _fill(
                Response(503, ("UH",), "no_healthy_upstream", BODY_NO_HEALTHY_UPSTREAM),
                crt,
                None,
                attempts,
            )
        if tried is not None:
            tried.add(host.key)
        if trace:
            trace.add(
                env.now,
                where,
                f"attempt {attempts}: endpoint {host.endpoint.host} "
                f"({host.endpoint.pod or host.endpoint.workload or 'a gateway, no pod'}) "
                f"by {pick.reason}",
            )
        now = env.now
        end = deadline if per_try <= 0 else min(deadline, now + per_try)
        attempt = Attempt()
        is_retry = attempts > 1
        if is_retry:
            crt.retries_active += 1
        if end == INF:
            resp: Response | None = yield from upstream(
                world, proxy, crt, host, req, attempt=attempt
            )
        else:
            in_time, out = yield from raced(
                world.deadlines, upstream(world, proxy, crt, host, req, attempt=attempt), end - now
            )
            if in_time:
                resp = out
            else:
                resp = None
                pending = attempt.waiting is not None
                _abandon(attempt, crt, host)
                gen, waiting_on = out
                if pending:
                    gen.close()  # still queued for a connection: nothing left to do
                else:
                    env.process(detached(gen, waiting_on))
        if is_retry:
            crt.retries_active -= 1
        retriable = False
        final: Response
        if resp is None:
            if crt.record_outcome(host, 504, True) and trace:
                trace.add(env.now, where, f"outlier detection ejected {host.endpoint.host}")
            if env.now >= deadline - 1e-12:
                if trace:
                    trace.add(env.now, where, "route timeout expired: 504 UT (never retried)")
                return _fill(
                    Response(504, ("UT",), "upstream_response_timeout", BODY_TIMEOUT),
                    crt,
                    host,
                    attempts,
                )
            final = Response(504, ("UT",), "upstream_per_try_timeout", BODY_TIMEOUT)
            retriable = retry is not None and retry.retries_per_try_timeout()
            if trace:
                trace.add(
                    env.now,
                    where,
                    f"per-try timeout after {per_try:g}s"
                    + ("" if retriable else " (retry_on has no 5xx/gateway-error: not retried)"),
                )
        elif resp.local_failure == "overflow":
            if trace:
                trace.add(
                    env.now,
                    where,
                    "circuit breaker: max_pending_requests reached, no pool took the request: "
                    "503 UO (never retried)",
                )
            return _fill(resp, crt, None, attempts)
        elif resp.local_failure == "overflow_at_host":
            if trace:
                trace.add(
                    env.now,
                    where,
                    f"circuit breaker: max_requests reached when attaching to a connection to "
                    f"{host.endpoint.host}: 503 UO (never retried)",
                )
            return _fill(resp, crt, host, attempts)
        elif resp.local_failure == "connect":
            if crt.record_outcome(host, 503, True) and trace:
                trace.add(env.now, where, f"outlier detection ejected {host.endpoint.host}")
            final = Response(
                503, ("UF",), "upstream_reset_before_response_started{connection_failure}", BODY_UF
            )
            retriable = retry is not None and retry.retries_connect_failure()
            if trace:
                trace.add(env.now, where, "connection failure (UF)")
        elif resp.local_failure == "reset":
            if crt.record_outcome(host, 503, True) and trace:
                trace.add(env.now, where, f"outlier detection ejected {host.endpoint.host}")
            final = Response(
                503,
                ("UC",),
                "upstream_reset_before_response_started{connection_termination}",
                BODY_UC,
            )
            retriable = retry is not None and retry.retries_reset()
            if trace:
                trace.add(
                    env.now,
                    where,
                    "the server sidecar closed the connection: no filter chain takes this "
                    "connection (PeerAuthentication); 503 UC",
                )
        else:
            if crt.record_outcome(host, resp.status, False) and trace:
                trace.add(
                    env.now,
                    where,
                    f"outlier detection ejected {host.endpoint.host} after consecutive errors",
                )
            final = resp
            retriable = retry is not None and retry.retries_status(resp.status)
            if trace:
                trace.add(
                    env.now,
                    where,
                    f"upstream answered {resp.status}" + (" (retriable)" if retriable else ""),
                )
        _fill(final, crt, host, attempts)
        if not retriable:
            return final
        if (req.sent or req).gone_at is not None:
            if trace:
                trace.add(env.now, where, "the app has gone (downstream disconnect): no retry")
            return final
        if attempts > num_retries:
            final.flags = tuple(sorted({*final.flags, "URX"}))
            if trace:
                trace.add(env.now, where, f"retries exhausted after {attempts} attempts: URX")
            return final
        if not crt.retry_allowed():
            if trace:
                trace.add(env.now, where, "max_retries circuit breaker: no retry")
            return final
        assert retry is not None
        upper = min((2**attempts - 1) * retry.base_interval, retry.max_interval)
        wait = rng.random() * upper
        if env.now + wait >= deadline:
            yield env.timeout(max(0.0, deadline - env.now))
            if trace:
                trace.add(env.now, where, "route timeout expired during back-off: 504 UT")
            return _fill(
                Response(504, ("UT",), "upstream_response_timeout", BODY_TIMEOUT),
                crt,
                host,
                attempts,
            )
        if trace:
            trace.add(env.now, where, f"retry {attempts} after back-off {wait * 1000:.1f} ms")
        yield env.timeout(wait)
