"""The local runner's data plane: added latency per sidecar hop, and the 7-service mesh's capacity.

1. **Per-hop latency** (issue 6 target: project sidecar hop <= 1.5x a bare Envoy hop at p50).
   One upstream (an Envoy ``direct_response``), reached three ways in the same run, interleaved:
   directly; through two *bare* Envoys (router only, no logs, static config); through two
   *project* sidecars (the translator's client sidecar -> server sidecar, file xDS, JSON access
   logs, the header filters, the translator's auto mTLS between them). The added latency per hop is ``(p50(path) - p50(direct)) / 2``.
2. **Capacity**: the e-commerce app on LocalMesh (8 replicas + sidecars); open-loop load
   (``cluster.local.traffic``, Poisson arrivals) at rising rates through ``frontend``
   (``GET /api/products``: frontend -> api-gateway -> product); capacity is the highest rate
   served with p99 < 50 ms and no errors, every lower rate too (target >= 300 rps). The sweep
   runs ``--cap-reps`` times on one mesh (the machine is shared: medians, with the 1-minute load
   average), and reports CPU per request from ``/proc/<pid>/stat`` for the apps, the Envoys and
   the generator (this process).

Run: ``.venv/bin/python benchmarks/bench_local.py [--seconds 4] [--reps 3] [--rates 100,200,300,400,500,600]
[--cap-seconds 6] [--cap-reps 3] [--only hops|capacity]``
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

from cluster.local.ca import LocalCA  # noqa: E402
from cluster.local.envoy import EnvoyProxy, envoy_argv  # noqa: E402
from cluster.local.mesh import LocalMesh  # noqa: E402
from cluster.local.ports import free_ports  # noqa: E402
from cluster.local.procs import Supervisor  # noqa: E402
from cluster.local.runner import traffic_targets  # noqa: E402
from cluster.local.traffic import Target, TrafficReport, drive  # noqa: E402
from cluster.local.xds import ProxyResources  # noqa: E402
from mesh.app import load_app  # noqa: E402
from mesh.envoy import PodPorts, PortMap, TranslateOptions, translate  # noqa: E402
from mesh.lesson import RequestSpec, TrafficSpec  # noqa: E402
from mesh.metrics import percentile  # noqa: E402
from mesh.model import FrozenMap  # noqa: E402
from mesh.source import load_text  # noqa: E402
from mesh.topology import build_topology  # noqa: E402

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

PAIR = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: product, namespace: shop}
spec: {selector: {app: product}, ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product, version: v1}}
    spec: {serviceAccountName: product, containers: [{name: app, image: x, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: shop}
spec: {selector: {app: frontend}, ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend, version: v1}}
    spec: {serviceAccountName: frontend, containers: [{name: app, image: x, ports: [{containerPort: 8080}]}]}
"""


def _listener(port: int, route: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"l{port}",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "enable_reuse_port": False,
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
            "typed_config": {"@type": HCM, "stat_prefix": f"l{port}",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, **route}]}]},
                "http_filters": [{"name": "envoy.filters.http.router",
                                  "typed_config": {"@type": ROUTER}}]}}]}],
    }  # fmt: skip


def _static(admin: int, listen: int, upstream: int | None) -> dict[str, Any]:
    if upstream is None:
        route = {"direct_response": {"status": 200, "body": {"inline_string": '{"ok":true}'}}}
        clusters: list[dict[str, Any]] = []
    else:
        route = {"route": {"cluster": "up"}}
        clusters = [{"name": "up", "type": "STATIC", "connect_timeout": "1s",
                     "load_assignment": {"cluster_name": "up", "endpoints": [{"lb_endpoints": [
                         {"endpoint": {"address": {"socket_address": {
                             "address": "127.0.0.1", "port_value": upstream}}}}]}]}}]  # fmt: skip
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [_listener(listen, route)], "clusters": clusters},
    }


def _start_static(sup: Supervisor, work: Path, name: str, config: dict[str, Any]) -> None:
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    sup.start(name, envoy_argv(path), env={"PATH": "/usr/bin:/bin"})


def _wait_port(port: int, deadline: float) -> None:
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} not listening")


def _load(target: Target, seconds: float, rate: float, seed: int) -> TrafficReport:
    spec = TrafficSpec(requests=(RequestSpec(path="/hello"),), rate_rps=rate, duration_s=seconds)
    return drive(spec, target, random.Random(seed))


def _p(report: TrafficReport, q: float) -> float:
    return percentile([o.duration_ms for o in report.outcomes if o.status == 200], q)


def bench_hops(seconds: float, reps: int, rate: float) -> dict[str, Any]:
    """Direct vs two bare Envoys vs two project sidecars, interleaved, medians over reps."""
    work = Path(tempfile.mkdtemp(prefix="bench-local-"))
    with Supervisor(work / "logs") as sup:
        up, up_admin, b1, b1a, b2, b2a = free_ports(6)
        _start_static(sup, work, "upstream", _static(up_admin, up, None))
        _start_static(sup, work, "bare-server", _static(b2a, b2, up))
        _start_static(sup, work, "bare-client", _static(b1a, b1, b2))
        loaded = load_text(PAIR, "pair.yaml")
        topology = build_topology(loaded.resources, include_istio_system=False)
        f_out, f_in, f_app, p_in, f_admin, p_admin = free_ports(6)
        port_map = PortMap.of({
            "frontend-v1-0": PodPorts(listeners=FrozenMap({8080: f_out}),
                                      inbound=FrozenMap({8080: f_in}), app=FrozenMap({8080: f_app})),
            "product-v1-0": PodPorts(inbound=FrozenMap({8080: p_in}), app=FrozenMap({8080: up})),
        })  # fmt: skip
        options = TranslateOptions(port_map=port_map, access_log_path=str(work / "{pod}.log"))
        configs = translate(loaded.resources, topology, options)
        ca = LocalCA(work / "ca")
        proxies = []
        for pod, admin in (("frontend-v1-0", f_admin), ("product-v1-0", p_admin)):
            cfg = configs[pod]
            issued = ca.issue(cfg.pod.namespace, cfg.pod.service_account)
            proxy = EnvoyProxy(name=pod, workdir=work / pod, supervisor=sup, node_id=cfg.node["id"],
                               node_cluster=cfg.node["cluster"], admin_port=admin)  # fmt: skip
            resources = ProxyResources(list(cfg.listeners), list(cfg.routes), list(cfg.clusters),
                                       list(cfg.endpoints),
                                       [*cfg.secrets, *issued.secrets().values()])  # fmt: skip
            proxy.start(resources)
            proxies.append(proxy)
        deadline = time.monotonic() + 15
        for port in (up, b1, b2):
            _wait_port(port, deadline)
        for proxy in proxies:
            proxy.wait_ready()
        paths = {
            "direct": Target("127.0.0.1", up, "product:8080"),
            "bare x2": Target("127.0.0.1", b1, "product:8080"),
            "project x2": Target("127.0.0.1", f_out, "product:8080", via_proxy=True),
        }
        for target in paths.values():  # warm connections and caches
            _load(target, 0.5, rate, 0)
        samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in paths}
        for rep in range(reps):
            for name, target in paths.items():
                r = _load(target, seconds, rate, rep + 1)
                samples[name].append((_p(r, 50), _p(r, 99), r.sent / r.wall_s))
    med = {
        k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in samples.items()
    }
    direct = med["direct"][0]
    bare_hop = (med["bare x2"][0] - direct) / 2
    project_hop = (med["project x2"][0] - direct) / 2
    return {
        "rate_rps": rate,
        "seconds": seconds,
        "reps": reps,
        "paths": {k: {"p50_ms": v[0], "p99_ms": v[1], "rps": v[2]} for k, v in med.items()},
        "bare_hop_p50_ms": bare_hop,
        "project_hop_p50_ms": project_hop,
        "ratio": project_hop / bare_hop if bare_hop > 0 else float("inf"),
    }


def _cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / 100.0


def _cpu_by_kind(mesh: LocalMesh) -> dict[str, float]:
    out = {"envoy": 0.0, "app": 0.0}
    for proc in mesh.supervisor.procs.values():
        out["envoy" if proc.name.startswith("envoy-") else "app"] += _cpu_s(proc.pid)
    return out


def _generator_cpu_s() -> float:
    """CPU seconds of this process (the load generator runs in it while ``drive`` runs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sweep(mesh: LocalMesh, targets: list[Target], seconds: float, rates: list[float],
           seed: int) -> list[dict[str, Any]]:  # fmt: skip
    spec0 = TrafficSpec(to="frontend", requests=(RequestSpec(path="/api/products"),))
    rows = []
    for i, rate in enumerate(rates):
        spec = TrafficSpec(to="frontend", requests=spec0.requests, rate_rps=rate,
                           duration_s=seconds, timeout_s=5.0)  # fmt: skip
        before, gen0 = _cpu_by_kind(mesh), _generator_cpu_s()
        r = drive(spec, targets, random.Random(seed * 100 + i))
        after, gen1 = _cpu_by_kind(mesh), _generator_cpu_s()
        ok = [o.duration_ms for o in r.outcomes if o.status == 200]
        sent = max(r.sent, 1)
        cpu = {k: (after[k] - before[k]) * 1000 / sent for k in after}
        cpu["generator"] = (gen1 - gen0) * 1000 / sent
        rows.append({
            "offered_rps": rate, "achieved_rps": len(ok) / r.wall_s,
            "errors": r.sent - len(ok), "dropped": r.dropped,
            "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
            "cpu_ms_per_request": cpu, "load_avg_1m": os.getloadavg()[0],
        })  # fmt: skip
    return rows


def _capacity(rows: list[dict[str, Any]]) -> float:
    """The achieved rate of the highest offered rate that, like every lower one, was served with
    p99 < 50 ms and no errors (a pass above a failure does not count)."""
    best = 0.0
    for row in sorted(rows, key=lambda r: float(r["offered_rps"])):
        if row["p99_ms"] >= 50 or row["errors"] != 0:
            break
        best = float(row["achieved_rps"])
    return best


def bench_capacity(seconds: float, rates: list[float], reps: int) -> dict[str, Any]:
    """Open-loop load at rising rates through the frontend of the full app, ``reps`` sweeps on
    one mesh; per rate the medians over the sweeps, and the median of the sweeps' capacities."""
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    sweeps: list[dict[str, Any]] = []
    with LocalMesh(Path(tempfile.mkdtemp(prefix="bench-mesh-")), seed=1) as mesh:
        mesh.start(app.resources)
        started = mesh.started_s
        spec0 = TrafficSpec(to="frontend", requests=(RequestSpec(path="/api/products"),))
        targets = traffic_targets(mesh, spec0)
        drive(TrafficSpec(to="frontend", requests=spec0.requests, rate_rps=50, duration_s=1.0),
              targets, random.Random(0))  # fmt: skip
        for rep in range(reps):
            sweeps.append({"load_avg_1m_before": os.getloadavg()[0],
                           "rows": _sweep(mesh, targets, seconds, rates, rep + 1)})  # fmt: skip
            sweeps[-1]["capacity_rps"] = _capacity(sweeps[-1]["rows"])
    rows = []
    for i, rate in enumerate(rates):
        per = [sweep["rows"][i] for sweep in sweeps]
        rows.append({
            "offered_rps": rate,
            **{k: statistics.median(p[k] for p in per)
               for k in ("achieved_rps", "p50_ms", "p99_ms", "load_avg_1m")},
            "errors": sum(p["errors"] for p in per), "dropped": sum(p["dropped"] for p in per),
            "cpu_ms_per_request": {k: statistics.median(p["cpu_ms_per_request"][k] for p in per)
                                   for k in per[0]["cpu_ms_per_request"]},
        })  # fmt: skip
    return {
        "startup_s": started,
        "seconds": seconds,
        "reps": reps,
        "generator": "cluster.local.traffic (Python, open loop, Poisson arrivals)",
        "sweeps": sweeps,
        "rows": rows,
        "capacity_rps_per_sweep": [sweep["capacity_rps"] for sweep in sweeps],
        "capacity_rps": statistics.median(sweep["capacity_rps"] for sweep in sweeps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hop-rate", type=float, default=500.0)
    parser.add_argument("--rates", default="100,200,300,400,500,600")
    parser.add_argument("--cap-seconds", type=float, default=6.0, help="seconds per capacity rate")
    parser.add_argument("--cap-reps", type=int, default=3, help="capacity sweeps (medians)")
    parser.add_argument("--only", choices=["hops", "capacity"], help="run one part")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.only != "capacity":
        hops = results["hops"] = bench_hops(args.seconds, args.reps, args.hop_rate)
        print(
            f"per-hop latency at {hops['rate_rps']:g} rps ({hops['reps']} reps x {hops['seconds']:g}s, medians):"
        )
        for name, v in hops["paths"].items():
            print(
                f"  {name:<11} p50 {v['p50_ms']:.3f} ms  p99 {v['p99_ms']:.3f} ms  {v['rps']:.0f} rps"
            )
        verdict = "ok" if hops["ratio"] <= 1.5 else "ABOVE TARGET"
        print(f"  added per hop p50: bare {hops['bare_hop_p50_ms']:.3f} ms, project "
              f"{hops['project_hop_p50_ms']:.3f} ms -> {hops['ratio']:.2f}x bare (target <= 1.5x) {verdict}")  # fmt: skip
    if args.only != "hops":
        rates = [float(x) for x in args.rates.split(",")]
        cap = results["capacity"] = bench_capacity(args.cap_seconds, rates, args.cap_reps)
        print(f"\n7-service mesh: ready in {cap['startup_s']:.2f}s (target < 5 s)")
        print(f"capacity, GET /api/products via frontend, {cap['reps']} sweeps x {cap['seconds']:g}s "
              f"per rate, medians; load: {cap['generator']}")  # fmt: skip
        for row in cap["rows"]:
            cpu = row["cpu_ms_per_request"]
            print(f"  offered {row['offered_rps']:>5.0f} rps: achieved {row['achieved_rps']:>6.1f}  "
                  f"p50 {row['p50_ms']:>6.1f} ms  p99 {row['p99_ms']:>6.1f} ms  errors {row['errors']}  "
                  f"CPU/request: apps {cpu['app']:.2f} ms, envoys {cpu['envoy']:.2f} ms, "
                  f"generator {cpu['generator']:.2f} ms  (load avg {row['load_avg_1m']:.1f})")  # fmt: skip
        per_sweep = ", ".join(f"{c:.0f}" for c in cap["capacity_rps_per_sweep"])
        target = "ok" if cap["capacity_rps"] >= 300 else "BELOW TARGET"
        print(f"  capacity (p99 < 50 ms, no errors, at every rate up to it): {cap['capacity_rps']:.0f} rps median "
              f"(sweeps: {per_sweep}; target >= 300) {target}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
