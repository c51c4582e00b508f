"""Connection pools and circuit breakers: the simulator against real Envoy, side by side.

Istio's circuit-breaking task (``maxConnections: 1``, ``http1MaxPendingRequests: 1``,
``maxRequestsPerConnection: 1``; ``fortio load -c 2 -n 20`` then ``-c 3 -n 30``) as a lesson of
many trials (``tests/cluster/local/pools_scenario.py``): api-gateway's sidecar -> product-v1
(one pod, service time ``--latency-ms``). Each trial is one closed-loop burst; the figure is the
share of 503 ``UO`` among its requests. The local runner (real Envoy 1.40 sidecars, real
services) and the sim runner run the same lesson; the sim gets a new seed per trial (a fresh
world per step), the local runner a new trial on the running mesh.

The UO share is decided by a race whose delays move with the machine's load (docs/simulator.md),
so the sim runs twice: with its fixed default timing, and *calibrated* - given the race's delays
measured on this local run (``cluster.pool_calibration``: reconnects paired with
the turnarounds they raced, ``UO`` turnarounds in and out of a handshake), cross-fitted: the
odd trials' delays predict the even trials and the other way round, per client count.

Prints the measured delays, then per client count: each runner's mean (with its standard error),
median and quartiles of the per-trial UO share, and the two-proportion z of each sim against
real Envoy (``pools_scenario.overflow_z``; |z| <= 3 agrees). ``--limits`` changes the pool
(``C,P,R``: maxConnections, http1MaxPendingRequests, maxRequestsPerConnection) for all runners.

Run: ``.venv/bin/python benchmarks/bench_pools.py [--trials 40] [--latency-ms 5] [--clients 2,3]
[--limits 1,1,1] [--only sim]``
Every process the local runner starts is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.pool_calibration import client_log  # noqa: E402
from mesh.lesson import load_lesson  # noqa: E402
from mesh.runner import LessonRun, RunOptions  # noqa: E402
from playground.pool_calibration import cross_fit  # noqa: E402
from sim import SimRunner  # noqa: E402
from sim.pool_timing import DEFAULT_POOL_TIMING, PoolTiming  # noqa: E402
from tests.cluster.local.pools_scenario import (  # noqa: E402
    Limits,
    Phase,
    Scenario,
    Summary,
    overflow_z,
    run_local,
    summarize,
    trial_uo_shares,
    write_lesson,
)

Timings = dict[int, list[PoolTiming]]
"""Per client count, the timings its simulated trials are split between."""


def sim(scenario: Scenario, timings: Timings | None, seed: int) -> dict[int, Summary]:
    """Per client count, the sim's per-trial UO shares, an equal number of trials per timing of
    that client count (``None``: the default timing)."""
    pooled: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pools-") as tmp:
        for phase in scenario.phases:
            alone = Scenario((phase,), scenario.latency_ms, scenario.limits)
            folder = Path(tmp) / f"c{phase.clients}"
            lesson = load_lesson(write_lesson(folder, alone))
            chosen = timings[phase.clients] if timings else [DEFAULT_POOL_TIMING]
            for i, timing in enumerate(chosen):
                result = SimRunner(timing).run(lesson, RunOptions(seed=seed + i))
                for c, s in trial_uo_shares(result).items():
                    pooled.setdefault(c, []).extend(s)
    return {c: summarize(s) for c, s in pooled.items()}


def local(scenario: Scenario, seed: int) -> tuple[dict[int, Summary], Timings]:
    """The real run's per-trial UO shares and, per client count, the delays measured on its odd
    and its even trials (``pool_calibration.cross_fit``)."""
    with tempfile.TemporaryDirectory(prefix="bench-pools-") as tmp:
        lesson = load_lesson(write_lesson(Path(tmp) / "lesson", scenario))
        began = time.monotonic()
        result: LessonRun = run_local(lesson, Path(tmp), seed)
        print(f"local: {time.monotonic() - began:.1f} s", flush=True)
        log = client_log(Path(tmp))
        every = range(len(result.steps))
        timings: Timings = {}
        first = 0
        for phase in scenario.phases:
            steps = range(first, first + phase.trials)
            first += phase.trials
            timings[phase.clients] = list(cross_fit(result, log, steps, every))
            print(f"-c {phase.clients}, odd trials: {timings[phase.clients][0].describe()}")
        shares = {c: summarize(s) for c, s in trial_uo_shares(result).items()}
        return shares, timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--clients", default="2,3")
    ap.add_argument("--per-client", type=int, default=10, help="requests per client per trial")
    ap.add_argument("--limits", default="1,1,1")
    ap.add_argument("--only", choices=("sim",), help="the default-timed sim alone")
    ap.add_argument("--sim-trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    c, p, r = (int(x) for x in args.limits.split(","))
    clients = [int(x) for x in args.clients.split(",")]
    scenario = Scenario(
        tuple(Phase(n, n * args.per_client, args.trials) for n in clients),
        args.latency_ms,
        Limits(c, p, r),
    )
    print(
        f"limits maxConnections={c} http1MaxPendingRequests={p} maxRequestsPerConnection={r}; "
        f"product-v1 latency {args.latency_ms} ms; {args.trials} trials per client count"
    )
    sim_scenario = Scenario(
        tuple(Phase(n, n * args.per_client, args.sim_trials) for n in clients),
        args.latency_ms,
        Limits(c, p, r),
    )
    results: dict[str, dict[int, Summary]] = {}
    if args.only != "sim":
        results["local"], timings = local(scenario, args.seed)
        half = replace_trials(sim_scenario, args.sim_trials // 2)
        results["calibrated"] = sim(half, timings, args.seed)
    results["sim"] = sim(sim_scenario, None, args.seed)
    for n in clients:
        for runner, by_clients in results.items():
            line = f"-c {n} -n {n * args.per_client}  {runner:10}  {by_clients[n].describe()}"
            if runner != "local" and "local" in results:
                line += f"; z {overflow_z(by_clients[n], results['local'][n], n * args.per_client):+.2f}"
            print(line)


def replace_trials(scenario: Scenario, trials: int) -> Scenario:
    """The same phases with ``trials`` trials each."""
    phases = tuple(Phase(p.clients, p.count, trials) for p in scenario.phases)
    return Scenario(phases, scenario.latency_ms, scenario.limits)


if __name__ == "__main__":
    main()
