"""Monitoring a local mesh (issue 16's acceptance): Prometheus scrapes every proxy's Istio
metrics while real traffic runs, and a PromQL query by destination version agrees with the run's
records, exactly; the same query over the simulator's run of the lesson agrees within the
lesson's tolerance; real Envoy's spans of one request reach the collector linked across every
hop; and no Prometheus, exporter or collector outlives the mesh."""

from __future__ import annotations

import json
import math
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from cluster.local.collector import read_spans_file
from cluster.local.monitored import MonitoredLocalExecutor
from cluster.local.procs import pid_alive
from cluster.tsdb import RecordedMetricsExecutor
from mesh.engine import run_lesson
from mesh.lesson import load_lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import LessonRun, RunOptions
from sim.runner import SimExecutor

pytestmark = [pytest.mark.envoy, pytest.mark.prometheus, pytest.mark.slow]

BY_VERSION = (
    "sum by (destination_version) (increase(istio_requests_total"
    '{reporter="source", destination_service_name="product"}[$__range]))'
)
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LESSON = Path(__file__).resolve().parents[3] / "lessons" / "01-request-routing"


class Probe(MonitoredLocalExecutor):
    """Asks its questions while the mesh still runs (the engine closes the executor)."""

    answers: dict[str, float]
    spans: list[dict[str, Any]]
    pids: dict[str, tuple[int, int | None]]
    flush_ms: dict[str, str]

    def close(self) -> None:
        metrics = self.step_metrics(0, 0.0, 0.0, 0.0)
        assert metrics is not None and self.monitoring is not None and self.mesh is not None
        self.answers = metrics.query(BY_VERSION).by("destination_version")
        self.monitoring.flush_spans()
        self.spans = read_spans_file(self.monitoring.spans_file)
        self.flush_ms = {}
        for name, pp in self.mesh.pods.items():
            if pp.proxy is not None and not pp.skipped:
                with OPENER.open(f"http://127.0.0.1:{pp.admin_port}/runtime") as r:
                    entries = json.loads(r.read())["entries"]
                self.flush_ms[name] = entries["tracing.zipkin.flush_interval_ms"]["final_value"]
        self.pids = {
            name: (p.pid, p.start_ticks)
            for name, p in self.mesh.supervisor.procs.items()
            if name in {"prometheus", "exporter", "collector"}
        }
        super().close()


def by_version(records: tuple[RequestRecord, ...]) -> Counter[str]:
    return Counter(
        r.destination_version
        for r in records
        if r.reporter is Reporter.SOURCE and r.destination_service_name == "product"
    )


def test_prometheus_and_the_collector_see_what_the_proxies_did(tmp_path: Path) -> None:
    lesson = load_lesson(LESSON)
    probe = Probe(tmp_path, time_scale=0.6, monitoring=True, tracing=100.0)
    run: LessonRun = run_lesson(probe, lesson, RunOptions(seed=1, until_step=1))
    local = by_version(run.steps[0].records)

    # 1. PromQL on the live Prometheus agrees with the records, request for request
    assert {v: n for v, n in probe.answers.items() if n} == {v: float(n) for v, n in local.items()}

    # 2. the same query over the simulated run agrees within the lesson's tolerance
    sim = RecordedMetricsExecutor(SimExecutor())
    sim_run = run_lesson(sim, lesson, RunOptions(seed=1, until_step=1))
    try:
        simulated = sim.metrics_of(0).query(BY_VERSION).by("destination_version")
    finally:
        sim.close()
    assert simulated == {v: float(n) for v, n in by_version(sim_run.steps[0].records).items()}
    n_local, n_sim = sum(local.values()), sum(simulated.values())
    for version in ("v1", "v2"):
        p_local, p_sim = local[version] / n_local, simulated[version] / n_sim
        p = (local[version] + simulated[version]) / (n_local + n_sim)
        tolerance = max(0.05, 3 * math.sqrt(p * (1 - p) * (1 / n_local + 1 / n_sim)))
        assert abs(p_local - p_sim) <= tolerance, (version, p_local, p_sim)

    # 3. every request's spans form one tree across every hop
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in probe.spans:
        traces[span["traceId"]].append(span)
    hops = Counter(r.request_id for r in run.steps[0].records)
    assert len(traces) == len(hops) > 0
    for spans in traces.values():
        ids = {s["id"] for s in spans}
        roots = [s for s in spans if not s.get("parentId")]
        assert len(roots) == 1 and roots[0]["kind"] == "SERVER"
        assert all(s["parentId"] in ids for s in spans if s.get("parentId"))
        kinds = sorted((s["kind"], s["localEndpoint"]["serviceName"]) for s in spans)
        assert kinds == [
            ("CLIENT", "api-gateway-v1.shop"),
            ("SERVER", "api-gateway-v1.shop"),
            ("SERVER", kinds[2][1]),
        ]
        assert kinds[2][1].startswith("product-v")
    assert sorted(len(s) for s in traces.values()) == sorted(hops.values())

    # 4. every local Envoy flushes its spans every 250 ms (its bootstrap's runtime layer), not
    # Envoy's default 5 s, and the spans above were all in after flush_spans' shorter wait
    assert probe.flush_ms and set(probe.flush_ms.values()) == {"250"}

    # 5. nothing the monitoring started outlives the mesh
    assert set(probe.pids) == {"prometheus", "exporter", "collector"}
    assert not [n for n, (pid, ticks) in probe.pids.items() if pid_alive(pid, ticks)]
