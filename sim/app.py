"""The apps: each replica executes the behaviour declaration (``behavior.yaml``).

For a request, a replica applies its lesson knobs first (added latency, then an injected 500, as
the real services' middleware does), finds the declared endpoint (404 otherwise), does its own
work (a lognormal service time) in one of its ``concurrency`` worker slots (requests queue for a
slot), fails with the endpoint's ``errorRate``, then makes its downstream calls in order
(``parallel`` steps concurrently) through its sidecar (``world.hops``, wired by
:mod:`sim.dataplane`), and answers the endpoint's declared ``response`` (status, size).

How a call is made is the app's own (see :class:`mesh.app.Call`): its timeout (the app stops
waiting; its sidecar then logs the exchange ``0 DC``), its retries (after a 5xx, no connection
or its own timeout), the headers it copies from the request (trace headers unless it does not
propagate them: then its sidecar starts a new trace, and the trace breaks), headers derived from
a session cookie, and what a failed call does to the answer: ``propagate`` ends the request with
the error, ``degrade`` answers 200 with the section left out (``degradeSize``) and the
service's ``degradedHeader`` naming the services that failed.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mesh.app import TRACE_HEADERS, Call, EndpointBehavior, LatencyModel, OnError, ServiceBehavior
from mesh.topology import MeshService
from sim.matchers import split_path
from sim.messages import Request, Response

if TYPE_CHECKING:
    from sim.pods import PodRuntime
    from sim.world import World

__all__ = ["AppAnswer", "serve"]

Proc = Generator[Any, Any, Any]

_SHAPES: dict[int, tuple[float, float, LatencyModel]] = {}

NO_ANSWER = 0
"""The status a call ends with when the app's own timeout fired first."""


@dataclass(frozen=True, slots=True)
class AppAnswer:
    """What the app answers: status, body size in bytes, response headers it sets (None)."""

    status: int
    size: int = 0
    headers: dict[str, str] | None = None


_PLAIN: dict[int, AppAnswer] = {}


def _plain(status: int) -> AppAnswer:
    """A bodiless answer (one shared value per status)."""
    hit = _PLAIN.get(status)
    if hit is None:
        hit = _PLAIN[status] = AppAnswer(status)
    return hit


def _shape(model: LatencyModel) -> tuple[float, float]:
    hit = _SHAPES.get(id(model))
    if hit is None or hit[2] is not model:
        hit = _SHAPES[id(model)] = (model.mu, model.sigma, model)
    return hit[0], hit[1]


def serve(world: World, pod: PodRuntime, req: Request) -> Generator[Any, Any, AppAnswer]:
    """Run the app's handler for ``req``; returns the :class:`AppAnswer`."""
    env = world.env
    rng = world.rng
    pod.served += 1
    if pod.latency_s > 0.0:
        yield env.timeout(pod.latency_s)
    if pod.error_rate > 0.0 and rng.random() < pod.error_rate:
        return _plain(500)
    path, _ = split_path(req.path)
    ep = pod.endpoint(req.method, path)
    if ep is None:
        return _plain(404)
    model = ep.service_time
    workers = pod.workers
    if model is not None and workers is not None:
        mu, sigma = _shape(model)
        queued = workers.acquire()
        if queued is not None:
            yield queued
        yield env.timeout(rng.lognormvariate(mu, sigma) if sigma > 0 else model.median.seconds)
        workers.release()
    if ep.error_rate > 0.0 and rng.random() < ep.error_rate:
        return _plain(500)
    if not ep.calls:
        return _ok(ep)
    svc = pod.service
    assert svc is not None  # an endpoint was found in it
    params = ep.path_params(path) if "{" in ep.route else {}
    failed: list[Call] = []
    for step in ep.calls:
        calls = (step,) if isinstance(step, Call) else step.parallel
        todo = [c for c in calls if _due(pod, c)]
        if len(todo) == 1:
            codes = [(yield from _call(world, pod, svc, req, todo[0], params=params))]
        else:
            procs = [env.process(_call(world, pod, svc, req, c, params=params)) for c in todo]
            if procs:
                yield env.all_of(procs)
            codes = [cast(int, p.value) for p in procs]
        for c, code in zip(todo, codes, strict=True):
            if code != NO_ANSWER and code < 400:
                continue
            if c.on_error is OnError.DEGRADE:
                failed.append(c)
                continue
            if c.error_status is not None:
                return _plain(c.error_status)
            return _plain(504 if code == NO_ANSWER else code)
    if not failed:
        return _ok(ep)
    size = max(0, (ep.response.size or 0) + sum(c.degrade_size for c in failed))
    marker = ",".join(dict.fromkeys(c.service for c in failed))
    return AppAnswer(200, size, {svc.degraded_header: marker})


def _ok(ep: EndpointBehavior) -> AppAnswer:
    response = ep.response
    if response.size is None:
        return _plain(response.status)
    return AppAnswer(response.status, response.size)


def _due(pod: PodRuntime, call: Call) -> bool:
    """Whether ``call`` is made now (a ``once`` call only on a replica's first request)."""
    if not call.once:
        return True
    if call.call in pod.once_done:
        return False
    pod.once_done.add(call.call)
    return True


def _call(
    world: World,
    pod: PodRuntime,
    svc: ServiceBehavior,
    parent: Request,
    call: Call,
    *,
    params: dict[str, str],
) -> Proc:
    """Make one declared call with the app's own timeout and retries; returns the status the
    app got (``NO_ANSWER`` when its own timeout fired)."""
    env = world.env
    code = 503
    for _ in range(1 + call.retries):
        plan = _plan(world, pod, svc, call)
        if plan is None:
            code = 503  # the name does not resolve: the app's client cannot connect
            continue
        down = _request(
            world,
            svc,
            parent,
            plan,
            call,
            params=params,
            traced=plan.traced and not pod.drop_trace_headers,
        )
        if call.timeout is None:
            resp = yield from world.hops.call(world, pod, down, plan.service)
            code = int(resp.status)
        else:
            proc = env.process(world.hops.call(world, pod, down, plan.service))
            yield proc | env.timeout(call.timeout.seconds)
            if proc.triggered:
                code = cast(Response, proc.value).status
            else:
                down.gone_at = env.now  # the app closed its connection; the exchange runs on
                code = NO_ANSWER
                if down.trace:
                    down.trace.add(env.now, pod.name, f"the app's own {call.timeout} timeout fired")
        if code != NO_ANSWER and code < 500:
            return code
    return code


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A declared call resolved once per world (and config push): the Service it goes to, the
    request line the app sends (``service:port`` as the Host header) and the request headers
    it copies."""

    service: MeshService
    method: str
    authority: str
    port: int
    path: str
    templated: bool
    forwarded: tuple[str, ...]
    traced: bool


def _plan(world: World, pod: PodRuntime, svc: ServiceBehavior, call: Call) -> CallPlan | None:
    namespace = pod.pod.namespace
    key = (id(call), namespace)
    try:
        return world.call_plans[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    plan: CallPlan | None = None
    service = world.service_by_name(call.service, namespace)
    if service is not None:
        behavior = world.behavior.service(call.service)
        port = behavior.port if behavior is not None else service.ports[0].port
        path = call.path
        forwarded = svc.forwarded(call)
        plan = CallPlan(
            service,
            call.method,
            f"{call.service}:{port}",
            port,
            path,
            "{" in path,
            forwarded,
            "x-request-id" in forwarded,
        )
    world.call_plans[key] = plan  # ids are stable: the behaviour (owning the call) outlives it
    return plan


def _request(
    world: World,
    svc: ServiceBehavior,
    parent: Request,
    plan: CallPlan,
    call: Call,
    *,
    params: dict[str, str],
    traced: bool,
) -> Request:
    """The request the app sends for a declared call, carrying the headers it copies."""
    forward = parent.forward
    if forward is None or parent.forward_names is not plan.forwarded:
        get = parent.headers.get
        forward = {k: v for k in plan.forwarded if (v := get(k)) is not None}
        if svc.sessions:
            forward.update(_session_headers(svc, parent))
        parent.forward, parent.forward_names = forward, plan.forwarded
    headers = dict(forward)
    request_id, trace_id = parent.request_id, parent.trace_id
    if not traced:
        # no trace context: the caller's sidecar starts a new trace with a new x-request-id
        request_id, trace_id = world.new_ids()
        for name in TRACE_HEADERS:
            headers.pop(name, None)
        headers["x-request-id"] = request_id
    return Request(
        plan.method,
        call.path_for(params) if plan.templated else plan.path,
        plan.authority,
        plan.port,
        headers,
        request_id,
        trace_id,
        parent.trace,
        address=plan.service.hostname,
    )


def _session_headers(svc: ServiceBehavior, req: Request) -> dict[str, str]:
    """Headers derived from the request's session cookies (``session=jason`` ->
    ``end-user: jason``)."""
    cookies: dict[str, str] = {}
    for part in req.headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies.setdefault(name, value)
    return {s.header.lower(): cookies[s.cookie] for s in svc.sessions if s.cookie in cookies}
