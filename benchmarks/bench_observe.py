"""Observability costs (issue 16's speed targets; a benchmark, not a timed test).

1. **PromQL over a simulated run** (target: < 2 s): for each lesson, its sim run's records are
   laid out, written as OpenMetrics, turned into a TSDB by ``promtool`` and served by a fresh
   Prometheus, and one query is answered (``cluster.tsdb.RecordsTSDB``); the sim run itself is
   timed apart. Three ways: every metric family imported (as before the import was narrowed),
   only what a counter query reads (``istio_requests_total``, what ``meshplay query`` and a
   lesson's ``promql:`` import for such a query), and only what a latency-quantile query reads
   (the duration histogram).
2. **Monitoring's CPU on a local run at 300 rps** (target: < 10 %): the e-commerce app on real
   Envoys, open-loop ``GET /api/products`` through frontend (frontend -> api-gateway -> product)
   for ``--seconds``, once with monitoring (the exporter, Prometheus scraping every proxy every
   second and every Envoy every 5 s, the trace collector with 100 % sampling) and once without.
   Reported: the CPU seconds of the monitoring processes as a share of the rest of the run's
   (Envoys, apps, load generator) in the same window, and the run's total CPU with vs without
   (which includes the Envoys' own tracing work).

Run: ``.venv/bin/python benchmarks/bench_observe.py [--only tsdb|cpu] [--seconds 10] [--rate 300]``
Every process is started through the supervisor and stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.local.mesh import LocalMesh  # noqa: E402
from cluster.local.monitoring import Monitoring  # noqa: E402
from cluster.local.runner import traffic_targets  # noqa: E402
from cluster.local.traffic import drive  # noqa: E402
from cluster.tsdb import RecordsTSDB, step_data  # noqa: E402
from mesh.app import load_app  # noqa: E402
from mesh.lesson import RequestSpec, TrafficSpec, find_lessons, load_lesson  # noqa: E402
from mesh.observe.openmetrics import StepData  # noqa: E402
from mesh.observe.query import families_read  # noqa: E402
from mesh.runner import RunOptions  # noqa: E402
from sim import SimRunner  # noqa: E402

QUERY = 'sum by (destination_version) (increase(istio_requests_total{reporter="source"}[$__range]))'
P90 = (
    "histogram_quantile(0.9, sum by (le) (rate("
    'istio_request_duration_milliseconds_bucket{reporter="destination"}[$__range])))'
)
MONITORING = {"prometheus", "exporter", "collector"}


def bench_tsdb() -> dict[str, Any]:
    """Per lesson: sim run time, then TSDB build + Prometheus start + one query."""
    rows = []
    for folder in find_lessons(ROOT / "lessons"):
        lesson = load_lesson(folder)
        if "sim" not in lesson.spec.runners:
            continue
        started = time.perf_counter()
        run = SimRunner().run(lesson, RunOptions(seed=1))
        sim_s = time.perf_counter() - started
        steps = [
            step_data(s.index, (*s.warmup_records, *s.records), 0.0, s.duration_s)
            for s in run.steps
            if not s.skipped
        ]
        timed = {
            name: _import_and_query(steps, expr, families)
            for name, expr, families in (
                ("all_families", QUERY, None),
                ("counter", QUERY, families_read(QUERY)),
                ("histogram", P90, families_read(P90)),
            )
        }
        rows.append(
            {
                "lesson": lesson.id,
                "records": sum(len(s.records) for s in steps),
                "sim_run_s": round(sim_s, 3),
                **{f"{name}_s": round(t, 3) for name, (t, _) in timed.items()},
                "series_answered": timed["counter"][1],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    summary: dict[str, Any] = {"lessons": rows}
    for name in ("all_families", "counter", "histogram"):
        times = [r[f"{name}_s"] for r in rows]
        summary[f"{name}_s"] = {"median": statistics.median(times), "max": max(times)}
    return summary


def _import_and_query(
    steps: list[StepData], expr: str, families: frozenset[str] | None
) -> tuple[float, int]:
    """Seconds to build a TSDB of ``families`` (all when None), start Prometheus and answer
    ``expr`` at the end of the last step; and how many series answered."""
    tsdb = RecordsTSDB()
    try:
        started = time.perf_counter()
        windows = tsdb.build(steps, families)
        assert tsdb.client is not None
        window = windows[-1]
        answer = tsdb.client.query(expr.replace("$__range", f"{window.range_s:g}s"), window.end)
        return time.perf_counter() - started, len(answer.samples)
    finally:
        tsdb.close()


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(mesh: LocalMesh) -> dict[str, float]:
    out = {"envoy": 0.0, "app": 0.0, "monitoring": 0.0}
    for proc in mesh.supervisor.procs.values():
        kind = (
            "monitoring"
            if proc.name in MONITORING
            else "envoy"
            if proc.name.startswith("envoy-")
            else "app"
        )
        out[kind] += _cpu_s(proc.pid)
        if proc.name in MONITORING:
            out[proc.name] = _cpu_s(proc.pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["generator"] = usage.ru_utime + usage.ru_stime
    return out


def _load(monitored: bool, seconds: float, rate: float) -> dict[str, Any]:
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    with LocalMesh(Path(tempfile.mkdtemp(prefix="bench-observe-")), seed=1) as mesh:
        monitoring = Monitoring(mesh, tracing=100.0) if monitored else None
        if monitoring is not None:
            monitoring.prepare()
        mesh.start(app.resources)
        if monitoring is not None:
            monitoring.start()
        spec = TrafficSpec(to="frontend", requests=(RequestSpec(path="/api/products"),))
        targets = traffic_targets(mesh, spec)
        warm = TrafficSpec(to="frontend", requests=spec.requests, rate_rps=50, duration_s=1.0)
        drive(warm, targets, random.Random(0))
        time.sleep(2.0)
        before, began = _cpu(mesh), time.monotonic()
        load = TrafficSpec(to="frontend", requests=spec.requests, rate_rps=rate, duration_s=seconds)
        report = drive(load, targets, random.Random(1))
        if monitoring is not None:
            monitoring.settle(time.time())  # the scrapes that read this load
            spans = monitoring.flush_spans()
        else:
            time.sleep(2.0)
            spans = 0
        after, wall = _cpu(mesh), time.monotonic() - began
    used = {k: round(after[k] - before[k], 3) for k in after}
    rest = used["envoy"] + used["app"] + used["generator"]
    return {
        "monitored": monitored,
        "wall_s": round(wall, 2),
        "sent": report.sent,
        "errors": sum(1 for o in report.outcomes if not 0 < o.status < 500),
        "cpu_s": used,
        "cpu_s_total": round(rest + used["monitoring"], 3),
        "monitoring_share_of_rest": round(used["monitoring"] / rest, 4) if rest else None,
        "spans": spans,
        "load_avg_1m": os.getloadavg()[0],
    }


def bench_cpu(seconds: float, rate: float) -> dict[str, Any]:
    """The same load with and without monitoring."""
    with_monitoring = _load(True, seconds, rate)
    print(json.dumps(with_monitoring), file=sys.stderr)
    without = _load(False, seconds, rate)
    print(json.dumps(without), file=sys.stderr)
    return {
        "rate_rps": rate,
        "seconds": seconds,
        "with": with_monitoring,
        "without": without,
        "total_cpu_ratio": round(with_monitoring["cpu_s_total"] / without["cpu_s_total"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("tsdb", "cpu"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.only in (None, "tsdb"):
        out["tsdb"] = bench_tsdb()
    if args.only in (None, "cpu"):
        out["cpu"] = bench_cpu(args.seconds, args.rate)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
