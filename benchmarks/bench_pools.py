"""Connection pools and circuit breakers: the simulator against real Envoy, side by side.

Istio's circuit-breaking task (``maxConnections: 1``, ``http1MaxPendingRequests: 1``,
``maxRequestsPerConnection: 1``; ``fortio load -c 2 -n 20`` then ``-c 3 -n 30``) as a lesson of
many trials (``tests/cluster/local/pools_scenario.py``): api-gateway's sidecar -> product-v1
(one pod, service time ``--latency-ms``). Each trial is one closed-loop burst; the figure is the
share of 503 ``UO`` among its requests. The local runner (real Envoy 1.40 sidecars, real
services) and the sim runner run the same lesson; the sim gets a new seed per trial (a fresh
world per step), the local runner a new trial on the running mesh.

Prints, per client count: each runner's mean (with its standard error), median and quartiles
of the per-trial UO share, and the sim/real ratio of the means. ``--limits`` changes the pool
(``C,P,R``: maxConnections, http1MaxPendingRequests, maxRequestsPerConnection) for both runners.

Run: ``.venv/bin/python benchmarks/bench_pools.py [--trials 40] [--latency-ms 5] [--clients 2,3]
[--limits 1,1,1] [--only sim|local]``
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

from mesh.lesson import load_lesson  # noqa: E402
from mesh.runner import RunOptions  # noqa: E402
from sim import SimRunner  # noqa: E402
from tests.cluster.local.pools_scenario import (  # noqa: E402
    Limits,
    Phase,
    Scenario,
    Summary,
    run_local,
    summarize,
    trial_uo_shares,
    write_lesson,
)


def run(scenario: Scenario, runner: str, seed: int) -> tuple[dict[int, Summary], float]:
    """Per client count, the per-trial UO shares of one runner; and its wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-pools-") as tmp:
        lesson = load_lesson(write_lesson(Path(tmp) / "lesson", scenario))
        began = time.monotonic()
        if runner == "sim":
            result = SimRunner().run(lesson, RunOptions(seed=seed))
        else:
            result = run_local(lesson, Path(tmp), seed)
        shares = trial_uo_shares(result)
        return {c: summarize(s) for c, s in shares.items()}, time.monotonic() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--clients", default="2,3")
    ap.add_argument("--per-client", type=int, default=10, help="requests per client per trial")
    ap.add_argument("--limits", default="1,1,1")
    ap.add_argument("--only", choices=("sim", "local"))
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
    results: dict[str, dict[int, Summary]] = {}
    for runner in [args.only] if args.only else ["local", "sim"]:
        results[runner], wall = run(scenario, runner, args.seed)
        print(f"{runner}: {wall:.1f} s", flush=True)
    for n in clients:
        for runner, by_clients in results.items():
            print(f"-c {n} -n {n * args.per_client}  {runner:5}  {by_clients[n].describe()}")
        if len(results) == 2 and results["local"][n].mean > 0:
            ratio = results["sim"][n].mean / results["local"][n].mean
            med = (results["sim"][n].median, results["local"][n].median)
            print(f"-c {n}  sim/local: mean ratio {ratio:.2f}, medians {med[0]:.3f} / {med[1]:.3f}")


if __name__ == "__main__":
    main()
