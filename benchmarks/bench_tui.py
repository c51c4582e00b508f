"""Key-press latency of the TUI during a 6,000-request simulation (target: at most 100 ms).

Runs lesson 01 with its traffic raised to 200 requests/s (3 steps x 10 s = 6,000 requests) on
the real simulator inside the headless Textual app, and while the run is in progress sends keys
the way the terminal driver does: step navigation (``[``/``]``) and view switches (``2``/``3``/
``5``, which redraw a whole view). The latency of a key is the time from putting it in the app's
input queue until the app has finished handling it (the view switched and refreshed, or the
step moved and every visible table redrawn). Several runs are measured; the
report gives p50/p95/max per kind of key.

    .venv/bin/python benchmarks/bench_tui.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim import SimRunner  # noqa: E402
from tests.tui.pilot_helpers import key_latency, wait_run  # noqa: E402
from tui.app import MeshplayApp  # noqa: E402

TARGET_MS = 100.0


def lesson_root(tmp: Path, rate_rps: int = 200) -> Path:
    """Lesson 01 and its app, with the traffic rate raised."""
    root = tmp / "lessons"
    shutil.copytree(REPO / "lessons" / "apps", root / "apps")
    shutil.copytree(REPO / "lessons" / "01-request-routing", root / "01-request-routing")
    spec = root / "01-request-routing" / "lesson.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("rate_rps: 40\n", f"rate_rps: {rate_rps}\n"), encoding="utf-8")
    return root


def handled_once_more(app: MeshplayApp) -> Callable[[], bool]:
    """Holds once the app completed one more view switch or step move than now."""
    done = app.handled + 1
    return lambda: app.handled >= done


async def measure(
    runs: int, gap_s: float, walls: list[float] | None = None
) -> dict[str, list[float]]:
    """Latencies (seconds) per key kind, over ``runs`` runs (each run's wall time to ``walls``)."""
    out: dict[str, list[float]] = {"step [ ]": [], "view 2/3/5": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = lesson_root(Path(tmp))
        app = MeshplayApp(root, {"sim": SimRunner}, Path(tmp) / "data")
        async with app.run_test(size=(120, 40)) as pilot:
            while not app.session.loaded:  # the app paints first and reads lessons in a thread
                await pilot.pause(0.05)
            await pilot.press("enter")
            for _ in range(runs):
                await key_latency(app, "2", lambda: app.active_tab == "run")
                await pilot.pause(0.2)
                started = time.perf_counter()
                await key_latency(app, "r", lambda: app.run_pane.running)
                await key_latency(app, "left_square_bracket", lambda: not app.run_pane.follow)
                views = ["3", "5", "2"]
                i = 0
                while app.run_pane.running:
                    before = app.session.step
                    key = "right_square_bracket" if before == 0 else "left_square_bracket"
                    target = 1 if before == 0 else 0
                    latency = await key_latency(app, key, handled_once_more(app))
                    assert app.session.step == target
                    if app.run_pane.running:
                        out["step [ ]"].append(latency)
                    await asyncio.sleep(gap_s)
                    name = views[i % 3]
                    tab = {"2": "run", "3": "topology", "5": "traces"}[name]
                    latency = await key_latency(app, name, handled_once_more(app))
                    assert app.active_tab == tab
                    if app.run_pane.running:
                        out["view 2/3/5"].append(latency)
                    i += 1
                    await asyncio.sleep(gap_s)
                if walls is not None:
                    walls.append(time.perf_counter() - started)
                await wait_run(pilot)
            turn = getattr(app.session, "turn", None)
            out["paused"] = [turn.waited_s if turn is not None else 0.0]
    return out


def pct(values: list[float], q: float) -> float:
    """q-th percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--gap-ms", type=float, default=100.0, help="pause between keys (fast typing: 100)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    walls: list[float] = []
    results = asyncio.run(measure(args.runs, args.gap_ms / 1000, walls))
    load_after = os.getloadavg()[0]
    paused = results.pop("paused", [0.0])[0]
    summary = {
        kind: {
            "keys": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 1) if values else None,
            "p95_ms": round(pct(values, 95), 1) if values else None,
            "max_ms": round(max(values) * 1000, 1) if values else None,
        }
        for kind, values in results.items()
    }
    machine = {
        "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
        "cpus": os.cpu_count(),
        "run_wall_s": [round(w, 2) for w in walls],
        "runner_paused_s": round(paused, 2),
    }
    if args.json:
        print(json.dumps({"target_ms": TARGET_MS, "latency": summary, **machine}, indent=2))
        return 0
    print(f"TUI key-press latency during a 6,000-request simulation ({args.runs} runs, "
          f"{time.perf_counter() - started:.1f} s)")  # fmt: skip
    print(
        f"load average (1 min) {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} CPUs; "
        f"runs took {', '.join(f'{w:.1f}' for w in walls)} s; "
        f"the runner paused {paused:.2f} s in all for the keys"
    )
    print(
        f"{'KEYS':<12} {'N':>4} {'P50 ms':>8} {'P95 ms':>8} {'MAX ms':>8}  target <= {TARGET_MS:g} ms"
    )
    for kind, s in summary.items():
        print(f"{kind:<12} {s['keys']:>4} {s['p50_ms']!s:>8} {s['p95_ms']!s:>8} {s['max_ms']!s:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
