"""Overload on the local mesh: twice its capacity for a minute, answered rather than suffered.

The e-commerce app on LocalMesh (every replica and its sidecar, the kubelet watching them) takes
open-loop Poisson load through the frontend (``GET /api/products``: frontend -> api-gateway ->
product) at ``--rate`` (default 1000 rps: twice the ~500 rps capacity docs/local-runner.md quotes
from ``bench_local.py --only capacity``) for ``--seconds`` (60). Reported:

* **crashes**: pod-died events from the kubelet, and processes not running at the end;
* **answers**: the generator's outcomes by status (0: no answer within the 5 s timeout, i.e.
  a hang), the latency of the failures (an overload answer is fast), requests the generator had
  to drop (more than 256 in flight), and the response flags every Envoy logged (``UO``: a
  circuit breaker's overflow answer);
* **memory**: RSS of every process once a second; the largest growth over the last 30 s;
* **recovery**: after the load stops, 20 rps for 10 s: when the last failure was.

Without limits (``--limits none``) the mesh has Istio's defaults, which are effectively
unlimited (every circuit breaker at 2^32-1), so nothing answers overload: requests queue in
the apps and the sockets until the generator's timeout. ``--limits istio`` (the default) adds
DestinationRules with ``connectionPool`` limits for api-gateway and product (maxConnections 32,
http1MaxPendingRequests 32): the callers' sidecars answer what exceeds them at once with
``503 UO``.

Run: ``.venv/bin/python benchmarks/bench_overload.py [--rate 1000] [--seconds 60]
[--limits istio|none] [--out result.json]``. Only 127.0.0.1; bounded in time; every process is
stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.accesslog import AccessLogTail  # noqa: E402
from cluster.local.mesh import LocalMesh  # noqa: E402
from cluster.local.runner import traffic_targets  # noqa: E402
from cluster.local.traffic import drive  # noqa: E402
from mesh.app import load_app  # noqa: E402
from mesh.lesson import RequestSpec, TrafficSpec  # noqa: E402
from mesh.metrics import percentile  # noqa: E402
from mesh.source import load_text  # noqa: E402

LIMITS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-gateway-limits, namespace: shop}
spec:
  host: api-gateway
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 32}
      http: {http1MaxPendingRequests: 32}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product-limits, namespace: shop}
spec:
  host: product
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 32}
      http: {http1MaxPendingRequests: 32}
"""

PATH = "/api/products"


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _RssSampler:
    """RSS of every supervised process once a second, in the background."""

    def __init__(self, mesh: LocalMesh) -> None:
        self.mesh = mesh
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.t0
            procs = list(self.mesh.supervisor.procs.values())
            self.samples.append((now, {p.name: _rss_kb(p.pid) for p in procs if p.running()}))
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def growth_last(self, window_s: float, end_s: float) -> dict[str, float]:
        """Per process: RSS at the end of the load over RSS ``window_s`` before it, minus 1."""
        first = min(self.samples, key=lambda s: abs(s[0] - (end_s - window_s)))[1]
        last = min(self.samples, key=lambda s: abs(s[0] - end_s))[1]
        return {n: last[n] / first[n] - 1 for n in last if first.get(n)}


def run(rate: float, seconds: float, limits: str, seed: int) -> dict[str, Any]:
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    events: list[tuple[str, str, str]] = []
    with LocalMesh(Path(tempfile.mkdtemp(prefix="bench-overload-")), seed=seed) as mesh:
        mesh.start(app.resources)
        mesh.watch(lambda kind, pod, detail: events.append((kind, pod, detail)))
        if limits == "istio":
            extra = load_text(LIMITS, "limits.yaml", default_namespace="shop").resources
            mesh.apply((*app.resources, *extra))
        spec0 = TrafficSpec(to="frontend", requests=(RequestSpec(path=PATH),))
        targets = traffic_targets(mesh, spec0)
        warm = TrafficSpec(to="frontend", requests=spec0.requests, rate_rps=50, duration_s=1.0)
        drive(warm, targets, random.Random(0))
        tails = [AccessLogTail(p) for p in mesh.access_logs()]
        for tail in tails:
            tail.skip_to_end()
        sampler = _RssSampler(mesh)
        sampler.start()
        load = TrafficSpec(
            to="frontend", requests=spec0.requests, rate_rps=rate, duration_s=seconds,
            timeout_s=5.0,
        )  # fmt: skip
        report = drive(load, targets, random.Random(seed))
        load_end = time.monotonic() - sampler.t0
        load_stopped = time.monotonic()
        calm = TrafficSpec(to="frontend", requests=spec0.requests, rate_rps=20, duration_s=10.0)
        after_began = time.monotonic()
        after = drive(calm, targets, random.Random(seed + 1))
        sampler.stop()
        flags: Counter[str] = Counter()
        codes: Counter[int] = Counter()
        for tail in tails:
            for rec in tail.read():
                codes[rec.response_code] += 1
                for flag in rec.response_flags:
                    flags[flag] += 1
        not_running = [p.name for p in mesh.supervisor.procs.values() if not p.running()]
        growth = sampler.growth_last(30.0, load_end)
        rss_end = sampler.samples[-1][1]
    by_status = Counter(o.status for o in report.outcomes)
    failed = [o.duration_ms for o in report.outcomes if o.status != 200]
    ok = [o.duration_ms for o in report.outcomes if o.status == 200]
    after_fail = [o.start for o in after.outcomes if o.status != 200]
    # the calm traffic starts right after the load ends: its last failure is the recovery time
    recovery_s = max(after_fail) + (after_began - load_stopped) if after_fail else 0.0
    worst = max(growth.items(), key=lambda kv: kv[1]) if growth else ("", 0.0)
    return {
        "limits": limits,
        "offered_rps": rate,
        "seconds": seconds,
        "load_avg_1m": os.getloadavg()[0],
        "sent": report.sent,
        "dropped_by_generator": report.dropped,
        "by_status": {str(k): v for k, v in sorted(by_status.items())},
        "ok_rps": len(ok) / report.wall_s,
        "ok_p50_ms": percentile(ok, 50) if ok else None,
        "ok_p99_ms": percentile(ok, 99) if ok else None,
        "failed_p50_ms": percentile(failed, 50) if failed else None,
        "failed_p99_ms": percentile(failed, 99) if failed else None,
        "no_answer": by_status.get(0, 0),
        "envoy_response_flags": dict(flags.most_common()),
        "envoy_response_codes": {str(k): v for k, v in sorted(codes.items())},
        "pod_events": events,
        "processes_not_running": not_running,
        "rss_growth_last_30s_max": {"process": worst[0], "growth": round(worst[1], 4)},
        "rss_mb_end": {k: round(v / 1024, 1) for k, v in sorted(rss_end.items())},
        "rss_mb_total_end": round(sum(rss_end.values()) / 1024, 1),
        "after_load": {
            "sent": after.sent,
            "failed": len(after_fail),
            "p50_ms": statistics.median([o.duration_ms for o in after.outcomes] or [0.0]),
        },
        "recovery_s": round(recovery_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--limits", choices=["istio", "none"], default="istio")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.rate <= 5000:
        parser.error("--seconds in (0, 600], --rate in (0, 5000]")
    result = run(args.rate, args.seconds, args.limits, args.seed)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
