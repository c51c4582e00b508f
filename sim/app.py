"""The apps: each replica executes the behaviour declaration (``behavior.yaml``).

For a request, a replica applies its lesson knobs first (added latency, then an injected 500, as
the real services' middleware does), finds the declared endpoint (404 otherwise), does its own
work (a lognormal service time) in one of its ``concurrency`` worker slots (requests queue for a
slot), fails with the endpoint's ``errorRate``, then makes its downstream calls in order
(``parallel`` steps concurrently) through its sidecar. A downstream answer >= 400 ends the
request with that status, as the services pass upstream errors through.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from mesh.app import Call, LatencyModel
from sim.matchers import split_path
from sim.messages import Request

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
    params = ep.path_params(path) if "{" in ep.path_template else {}
    for step in ep.calls:
        if isinstance(step, Call):
            if step.once:
                if step.call in pod.once_done:
                    continue
                pod.once_done.add(step.call)
            status = yield from _call(world, pod, req, step, params)
            if status >= 400:
                return status
        else:
            procs = []
            for c in step.parallel:
                if c.once:
                    if c.call in pod.once_done:
                        continue
                    pod.once_done.add(c.call)
                procs.append(env.process(_call(world, pod, req, c, params)))
            if procs:
                yield env.all_of(procs)
                for p in procs:
                    code = int(p.value or 0)
                    if code >= 400:
                        return code
    return 200


def _call(world: World, pod: PodRuntime, req: Request, call: Call, params: dict[str, str]) -> Proc:
    service = world.service_by_name(call.service, pod.pod.namespace)
    if service is None:
        return 503
    behavior = world.behavior.service(call.service)
    port = behavior.port if behavior is not None else service.ports[0].port
    down = world.downstream_request(req, call.method, call.service, port, call.path_for(params))
    resp = yield from world.call(pod, down, service)
    return int(resp.status)
