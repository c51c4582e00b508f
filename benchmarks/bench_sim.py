"""Simulator speed: the engine against a plain simpy model of the same call graph, in one run.

The plain model is the floor: the e-commerce behaviour declaration executed with nothing but
simpy timeouts (client sidecar hop, network hop to the server sidecar, the app's worker slot and
service time, downstream calls, the hops back), no routing, no records. The engine runs the
same traffic through the translated Envoy config with every feature on: a VirtualService per
service (route timeout, explicit retries with a per-try timeout), a DestinationRule per service
(connection-pool limits, outlier detection), LEAST_REQUEST, records from both reporters.

Targets (issue 4): engine >= 0.5x the plain model's simulated requests per wall-second (stretch
1x), and a default lesson (up to 1,000 requests) simulated in under 300 ms.

Medians of interleaved runs (plain, engine, plain, engine, ...): the machine may be shared.

Run: ``.venv/bin/python benchmarks/bench_sim.py [--seconds 20] [--rate 200] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

from mesh.app import AppBehavior, Call, load_app
from mesh.lesson import RequestSpec, TrafficSpec, load_lesson
from mesh.runner import RunOptions
from mesh.source.load import load_text
from mesh.state import MeshState
from sim import SimRunner
from sim.runner import configure
from sim.traffic import TrafficDriver, run_until_quiet
from sim.world import World

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "lessons" / "apps" / "ecommerce"
MIX = (("POST", "/api/orders"), ("GET", "/api/me"), ("GET", "/api/products"))
SERVICES = ("frontend", "api-gateway", "user", "product", "order", "payment", "notification")


def every_feature_on() -> str:
    """A VirtualService and a DestinationRule per service, with every resilience knob set."""
    template = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {s}, namespace: shop}}
spec:
  hosts: [{s}]
  http:
    - name: main
      timeout: 10s
      retries: {{attempts: 2, perTryTimeout: 5s, retryOn: "5xx,connect-failure"}}
      route: [{{destination: {{host: {s}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {s}, namespace: shop}}
spec:
  host: {s}
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: 1000}}
      http: {{http1MaxPendingRequests: 1000, http2MaxRequests: 1000}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
"""
    docs = [template.replace("{{", "{").replace("}}", "}").replace("{s}", s) for s in SERVICES]
    return "\n---\n".join(docs)


# -- the plain model ----------------------------------------------------------------------


class Plain:
    """The call graph in bare simpy: one worker Resource per service, hops as timeouts."""

    def __init__(self, behavior: AppBehavior, seed: int) -> None:
        self.env = simpy.Environment()
        self.rng = random.Random(seed)
        self.behavior = behavior
        hop = behavior.network.hop_latency
        self.hop_mu, self.hop_sigma = hop.mu, hop.sigma
        self.workers = {
            name: simpy.Resource(self.env, capacity=s.concurrency)
            for name, s in behavior.services.items()
        }
        self.once: set[tuple[str, str]] = set()
        self.completed = 0

    def hop(self) -> float:
        return self.rng.lognormvariate(self.hop_mu, self.hop_sigma)

    def call(self, service: str, method: str, path: str) -> Generator[Any, Any, int]:
        env = self.env
        yield env.timeout(self.hop())  # app -> client sidecar
        yield env.timeout(self.hop())  # client sidecar -> server sidecar
        status = yield from self.serve(service, method, path)
        yield env.timeout(self.hop())  # back to the client sidecar
        yield env.timeout(self.hop())  # back to the app
        return int(status)

    def serve(self, service: str, method: str, path: str) -> Generator[Any, Any, int]:
        env = self.env
        behavior = self.behavior.service(service)
        ep = behavior.endpoint(method, path) if behavior is not None else None
        if ep is None:
            return 404
        if ep.service_time is not None:
            with self.workers[service].request() as slot:
                yield slot
                st = ep.service_time
                yield env.timeout(self.rng.lognormvariate(st.mu, st.sigma))
        for step in ep.calls:
            calls = (step,) if isinstance(step, Call) else step.parallel
            todo = []
            for c in calls:
                if c.once:
                    if (service, c.call) in self.once:
                        continue
                    self.once.add((service, c.call))
                todo.append(c)
            if len(todo) == 1:
                status = yield from self.call(todo[0].service, todo[0].method, todo[0].path)
                if status >= 400:
                    return status
            elif todo:
                procs = [self.env.process(self.call(c.service, c.method, c.path)) for c in todo]
                yield self.env.all_of(procs)
        return 200

    def client(self, rate: float, seconds: float) -> Generator[Any, Any, None]:
        i = 0
        while True:
            yield self.env.timeout(self.rng.expovariate(rate))
            if self.env.now >= seconds:
                return
            method, path = MIX[i % len(MIX)]
            i += 1
            self.env.process(self._one(method, path))

    def _one(self, method: str, path: str) -> Generator[Any, Any, None]:
        yield from self.call("frontend", method, path)
        self.completed += 1


def run_plain(seconds: float, rate: float, seed: int) -> tuple[int, float]:
    app = load_app(APP)
    plain = Plain(app.behavior, seed)
    started = time.perf_counter()
    plain.env.process(plain.client(rate, seconds))
    plain.env.run()
    return plain.completed, time.perf_counter() - started


def run_engine(seconds: float, rate: float, seed: int) -> tuple[int, int, float]:
    app = load_app(APP)
    extra = load_text(every_feature_on(), default_namespace="shop").resources
    topology, envoy = configure(MeshState((*app.resources, *extra)))
    started = time.perf_counter()
    world = World(topology, app.behavior, envoy, seed=seed)
    spec = TrafficSpec(
        from_="outside",
        to="frontend",
        requests=tuple(RequestSpec(method=m, path=p) for m, p in MIX),
        rate_rps=rate,
        duration_s=seconds,
    )
    driver = TrafficDriver(world, spec)
    driver.start()
    run_until_quiet(world.env, driver, seconds + 60)
    return driver.completed, len(world.records), time.perf_counter() - started


def lesson_time(name: str) -> tuple[int, float]:
    lesson = load_lesson(ROOT / "lessons" / name)
    started = time.perf_counter()
    run = SimRunner().run(lesson, RunOptions(seed=1))
    requests = sum(1 for r in run.records if r.reporter.value == "destination")
    return requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="median of N, interleaved")
    args = parser.parse_args()
    plain_times: list[float] = []
    engine_times: list[float] = []
    n_plain = n_engine = n_records = 0
    run_plain(1.0, args.rate, args.seed)  # warm up imports and caches
    run_engine(1.0, args.rate, args.seed)
    for _ in range(args.repeat):  # interleaved: the machine may be shared and noisy
        n_plain, t = run_plain(args.seconds, args.rate, args.seed)
        plain_times.append(t)
        n_engine, n_records, t = run_engine(args.seconds, args.rate, args.seed)
        engine_times.append(t)
    t_plain = statistics.median(plain_times)
    t_engine = statistics.median(engine_times)
    plain_rate = n_plain / t_plain
    engine_rate = n_engine / t_engine
    print(
        f"plain simpy model : {n_plain} requests in {t_plain:.3f} s (median of {args.repeat}) "
        f"= {plain_rate:,.0f} req/wall-s"
    )
    print(
        f"engine, all on    : {n_engine} requests ({n_records} records) in {t_engine:.3f} s "
        f"(median of {args.repeat}) = {engine_rate:,.0f} req/wall-s"
    )
    ratio = engine_rate / plain_rate
    verdict = "stretch met" if ratio >= 1 else "target met" if ratio >= 0.5 else "BELOW TARGET"
    print(f"ratio engine/plain: {ratio:.2f}x (target >= 0.5x, stretch 1x): {verdict}")
    for name in ("01-request-routing", "02-traffic-shifting"):
        runs = [lesson_time(name) for _ in range(args.repeat)]
        served = runs[0][0]
        seconds = statistics.median(t for _, t in runs)
        per_step = seconds / len(load_lesson(ROOT / "lessons" / name).steps)
        print(
            f"lesson {name}: {served} server-side requests, {seconds * 1000:.0f} ms "
            f"({per_step * 1000:.0f} ms per step; target < 300 ms for up to 1,000 requests)"
        )


if __name__ == "__main__":
    main()
