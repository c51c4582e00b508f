"""A deterministic runner for the TUI tests: the lesson engine on a scripted executor.

The script is test data: per request, the records the real runners emit for ``outside ->
api-gateway -> product`` in lesson 01 (the gateway's server-side record, and the client- and
server-side records of the call to product). Product versions follow lesson 01's steps:
alternate v1/v2 without rules, all v1 once pinned, item pages on v2 once routed by URI;
``latency_ms`` and ``fail_every`` make runners differ so compare views have something to show.
The engine grades, selects steps and handles cancel exactly as for the real runners.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesh.engine import LessonRunner
from mesh.lesson import Lesson
from mesh.observe.spans import Span, span_from_json
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.runner import LessonRun, RunEvent, RunOptions, StepPlan
from tests.fakes import ScriptedExecutor

NS = "shop"
PATHS = ("/api/products", "/api/products/grinder")
PODS = {"v1": "127.10.0.21:8080", "v2": "127.10.0.22:8080"}


def _version(step: int, index: int, path: str) -> str:
    if step == 0:
        return "v1" if index % 2 == 0 else "v2"
    if step == 1:
        return "v1"
    return "v2" if path.startswith("/products/") else "v1"


@dataclass(frozen=True)
class Lesson01Records:
    """What a mesh did in lesson 01's steps, as test data: per request, the gateway's server
    record and the client/server records of its call to product (none server-side when it
    failed with 503 UO every ``fail_every``-th request)."""

    requests_per_step: int = 40
    rate_rps: float = 40.0
    latency_ms: float = 3.0
    fail_every: int = 0

    def __call__(self, plan: StepPlan, rng: random.Random) -> list[RequestRecord]:
        return [r for i in range(self.requests_per_step) for r in self.request(plan.index, i, rng)]

    def request(self, step: int, i: int, rng: random.Random) -> list[RequestRecord]:
        outer = PATHS[i % 2]
        inner = outer.removeprefix("/api")
        version = _version(step, i, inner)
        t = i / self.rate_rps
        inner_ms = round(self.latency_ms * (0.5 + rng.random()), 3)
        outer_ms = round(inner_ms + 1.5 + rng.random(), 3)
        failed = self.fail_every > 0 and i % self.fail_every == self.fail_every - 1
        code = 503 if failed else 200
        flags = ("UO",) if failed else ()
        rid = f"{step:02d}-{i:05d}"
        trace = f"{step:04x}{i:012x}"
        product = "product.shop.svc.cluster.local"
        gateway = "api-gateway.shop.svc.cluster.local"
        common = {"request_id": rid, "trace_id": trace, "method": "GET"}
        return [
            RequestRecord(
                start_time=t,
                duration_ms=outer_ms,
                reporter=Reporter.DESTINATION,
                source_workload="unknown",
                source_namespace="unknown",
                source_principal="unknown",
                destination_service=gateway,
                destination_workload="api-gateway",
                destination_namespace=NS,
                destination_version="v1",
                destination_app="api-gateway",
                route_name="default",
                upstream_cluster="inbound|8080||",
                upstream_host="127.10.0.11:8080",
                path=outer,
                authority="api-gateway",
                response_code=code,
                connection_security_policy=ConnectionSecurityPolicy.NONE,
                **common,
            ),
            RequestRecord(
                start_time=t + 0.0005,
                duration_ms=inner_ms,
                reporter=Reporter.SOURCE,
                source_workload="api-gateway",
                source_namespace=NS,
                source_principal="spiffe://cluster.local/ns/shop/sa/api-gateway",
                source_app="api-gateway",
                destination_service=product,
                destination_workload=f"product-{version}",
                destination_namespace=NS,
                destination_version=version,
                destination_app="product",
                route_name="product.shop.svc.cluster.local:8080",
                upstream_cluster=f"outbound|8080|{version if step else ''}|{product}",
                upstream_host="" if failed else PODS[version],
                path=inner,
                authority="product:8080",
                response_code=code,
                response_flags=flags,
                **common,
            ),
            *(
                []
                if failed
                else [
                    RequestRecord(
                        start_time=t + 0.0007,
                        duration_ms=round(inner_ms - 0.4, 3),
                        reporter=Reporter.DESTINATION,
                        source_workload="api-gateway",
                        source_namespace=NS,
                        source_principal="spiffe://cluster.local/ns/shop/sa/api-gateway",
                        source_app="api-gateway",
                        destination_service=product,
                        destination_workload=f"product-{version}",
                        destination_namespace=NS,
                        destination_version=version,
                        destination_app="product",
                        route_name="default",
                        upstream_cluster="inbound|8080||",
                        upstream_host=PODS[version],
                        path=inner,
                        authority="product:8080",
                        response_code=200,
                        connection_security_policy=ConnectionSecurityPolicy.MUTUAL_TLS,
                        **common,
                    )
                ]
            ),
        ]


class FakeRunner(LessonRunner):
    """The lesson engine on a :class:`~tests.fakes.ScriptedExecutor` replaying
    :class:`Lesson01Records` in batches of ``batch`` (``delay_s`` apart), so the screen sees a
    live run; ``runs`` lists the seed of every run."""

    def __init__(
        self,
        name: str = "fake",
        *,
        requests_per_step: int = 40,
        batch: int = 10,
        delay_s: float = 0.0,
        rate_rps: float = 40.0,
        latency_ms: float = 3.0,
        fail_every: int = 0,
        events: Callable[[StepPlan], Sequence[RunEvent]] | None = None,
    ) -> None:
        self.runs: list[int] = []
        script = Lesson01Records(requests_per_step, rate_rps, latency_ms, fail_every)
        super().__init__(
            name,
            lambda: ScriptedExecutor(
                name,
                script=script,
                duration_s=requests_per_step / rate_rps,
                batch=batch,
                delay_s=delay_s,
                events=events,
            ),
        )
        self.script = script
        self.batch = batch
        self.delay_s = delay_s

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run through the engine, remembering the seed."""
        self.runs.append(options.seed)
        return super().run(lesson, options)


class BrokenRunner:
    """A runner whose backend is missing: run() raises, as a real runner does."""

    name = "broken"

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Always fails."""
        from mesh.runner import RunnerError

        raise RunnerError("envoy binary not found")


ENVOY_SPANS = Path(__file__).parent / "testdata" / "envoy-spans-01.json"
"""Spans real Envoy 1.40 sidecars reported to meshplay's collector on the local runner: lesson
01's first step (``meshplay traces lessons/01-request-routing --step 1 --runner local
--sampling 100 --export zipkin FILE``), the first 20 traces kept."""


def recorded_envoy_spans() -> list[Span]:
    """The spans of :data:`ENVOY_SPANS`."""
    return [span_from_json(s) for s in json.loads(ENVOY_SPANS.read_text(encoding="utf-8"))]


@dataclass
class TracingExecutor(ScriptedExecutor):
    """A scripted executor whose proxies traced (a :class:`~mesh.observe.spans.SpanExecutor`):
    after step index 0 it hands over :func:`recorded_envoy_spans`, after later steps none."""

    def step_spans(self, index: int) -> Sequence[Span]:
        """The recorded spans for the first step."""
        self.calls.append(("step_spans", index))
        return recorded_envoy_spans() if index == 0 else []


class TracingFakeRunner(LessonRunner):
    """:class:`FakeRunner`'s records, plus the spans Envoy reported for the first step."""

    def __init__(self, name: str = "local") -> None:
        script = Lesson01Records()
        super().__init__(
            name,
            lambda: TracingExecutor(name, script=script, duration_s=1.0, batch=10),
        )
