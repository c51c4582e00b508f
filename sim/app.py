"""The apps: each replica executes the behaviour declaration (``behavior.yaml``).

For a request, a replica applies its lesson knobs first (added latency, then an injected 500, as
the real services' middleware does), finds the declared endpoint (404 otherwise), does its own
work (a lognormal service time) in one of its ``concurrency`` worker slots (requests queue for a
slot), fails with the endpoint's ``errorRate``, then makes its downstream calls in order
(``parallel`` steps concurrently) through its sidecar (``world.hops``, wired by
:mod:`sim.dataplane`). A downstream answer >= 400 ends the request with that status, as the
services pass upstream errors through.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import simpy

from mesh.app import Call, LatencyModel
from mesh.topology import MeshService
from sim.matchers import split_path
from sim.messages import PROPAGATED_HEADERS, Request, Response

if TYPE_CHECKING:
    from sim.world import PodRuntime, World

__all__ = ["serve"]

Proc = Generator[Any, Any, Any]

_SHAPES: dict[int, tuple[float, float, LatencyModel]] = {}


def _shape(model: LatencyModel) -> tuple[float, float]:
    hit = _SHAPES.get(id(model))
    if hit is None or hit[2] is not model:
        hit = _SHAPES[id(model)] = (model.mu, model.sigma, model)
    return hit[0], hit[1]


def serve(world: World, pod: PodRuntime, req: Request) -> Proc:
    """Run the app's handler for ``req``; returns the HTTP status the app answers with."""
    env = world.env
    rng = world.rng
    pod.served += 1
    if pod.latency_s > 0.0:
        yield env.timeout(pod.latency_s)
    if pod.error_rate > 0.0 and rng.random() < pod.error_rate:
        return 500
    path, _ = split_path(req.path)
    ep = pod.endpoint(req.method, path)
    if ep is None:
        return 404
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
        return 500
    if not ep.calls:
        return 200
    params = ep.path_params(path) if "{" in ep.route else {}
    for step in ep.calls:
        if isinstance(step, Call):
            if step.once:
                if step.call in pod.once_done:
                    continue
                pod.once_done.add(step.call)
            plan = _plan(world, pod, step)
            if plan is None:
                return 503
            resp = yield from world.hops.call(
                world, pod, _request(req, plan, step, params), plan.service
            )
            if resp.status >= 400:
                return int(resp.status)
        else:
            results: list[int | simpy.Process] = []
            for c in step.parallel:
                if c.once:
                    if c.call in pod.once_done:
                        continue
                    pod.once_done.add(c.call)
                plan = _plan(world, pod, c)
                if plan is None:
                    results.append(503)
                else:
                    down = _request(req, plan, c, params)
                    results.append(env.process(world.hops.call(world, pod, down, plan.service)))
            procs = [r for r in results if not isinstance(r, int)]
            if procs:
                yield env.all_of(procs)
            for r in results:
                code = r if isinstance(r, int) else cast(Response, r.value).status
                if code >= 400:
                    return code
    return 200


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A declared call resolved once per world (and config push): the Service it goes to and
    the request line the app sends (``service:port`` as the Host header)."""

    service: MeshService
    method: str
    authority: str
    port: int
    path: str
    templated: bool


def _plan(world: World, pod: PodRuntime, call: Call) -> CallPlan | None:
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
        plan = CallPlan(service, call.method, f"{call.service}:{port}", port, path, "{" in path)
    world.call_plans[key] = plan  # ids are stable: the behaviour (owning the call) outlives it
    return plan


def _request(parent: Request, plan: CallPlan, call: Call, params: dict[str, str]) -> Request:
    """The request the app sends for a declared call, carrying the propagated headers."""
    forward = parent.forward
    if forward is None:
        get = parent.headers.get
        forward = parent.forward = {k: v for k in PROPAGATED_HEADERS if (v := get(k)) is not None}
    return Request(
        plan.method,
        call.path_for(params) if plan.templated else plan.path,
        plan.authority,
        plan.port,
        dict(forward),
        parent.request_id,
        parent.trace_id,
        parent.trace,
        address=plan.service.hostname,
    )
