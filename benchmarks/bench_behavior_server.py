"""The behaviour server's own cost: start time, and requests per second of one replica.

One process per replica of a declared app runs on the local runner, so it must start quickly and
add little to a request. Measured here, directly (no Envoy): the time from spawn to ``/readyz``;
then closed-loop load (``--concurrency`` keep-alive connections, ``--seconds`` per point) on
an endpoint with no service time and no calls (the server's own overhead), on one with a call to
a second behaviour server (the cost of a call), beside the project's real ``product`` service
(``GET /products``, SQLite) for scale. Reports requests/s, p50/p99 latency and CPU ms per request
of the server process (``/proc/<pid>/stat``), with the machine's load average.

Run: ``.venv/bin/python benchmarks/bench_behavior_server.py [--seconds 5] [--concurrency 8]``
Every process is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.common.http1 import HttpClient  # noqa: E402
from tests.services.stack import clean_env, free_port  # noqa: E402

DECL = {
    "leaf": {
        "service": "leaf",
        "concurrency": 16,
        "sessions": [],
        "endpoints": [{"route": "GET /x", "size": 1000, "steps": []}],
    },
    "caller": {
        "service": "caller",
        "concurrency": 16,
        "sessions": [],
        "endpoints": [
            {
                "route": "GET /page",
                "size": 5000,
                "steps": [
                    [{"method": "GET", "service": "leaf", "port": 0, "path": "/x",
                      "forward": ["x-request-id"]}]
                ],
            }
        ],
    },
}  # fmt: skip


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _start(
    argv: list[str], env: dict[str, str], port: int
) -> tuple[subprocess.Popen[bytes], float]:
    started = time.monotonic()
    popen = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return popen, time.monotonic() - started
        except OSError:
            pass
        if popen.poll() is not None or time.monotonic() - started > 30:
            raise RuntimeError(f"{argv} did not start")
        time.sleep(0.01)


async def _load(url: str, seconds: float, concurrency: int) -> list[float]:
    client = HttpClient(trust_env=False)
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < end:
            t = time.perf_counter()
            r = await client.request("GET", url, {})
            assert r.status == 200, r.status
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.aclose()
    return latencies


def _point(name: str, url: str, pid: int, seconds: float, concurrency: int) -> dict[str, float]:
    asyncio.run(_load(url, 0.5, concurrency))  # warm-up
    cpu = _cpu_ms(pid)
    lat = asyncio.run(_load(url, seconds, concurrency))
    cpu = _cpu_ms(pid) - cpu
    lat.sort()
    out = {
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
        "cpu_ms_per_req": round(cpu / len(lat), 3),
    }
    print(f"{name:<28} {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-behavior-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = {name: free_port() for name in ("leaf", "caller", "product")}
        DECL["caller"]["endpoints"][0]["steps"][0][0]["port"] = ports["leaf"]  # type: ignore[index]
        starts = {}
        for name in ("leaf", "caller"):
            file = work / f"{name}.json"
            file.write_text(json.dumps(DECL[name]))
            env = clean_env()
            env.update(HOST="127.0.0.1", PORT=str(ports[name]), SERVICE_NAME=name,
                       BEHAVIOR_FILE=str(file), SEED="1")  # fmt: skip
            if name == "caller":  # "leaf:PORT" must reach 127.0.0.1: a tiny hosts-free route
                env["HTTP_PROXY"] = f"http://127.0.0.1:{ports['leaf']}"
            popen, took = _start(
                [sys.executable, "-m", "services.behavior_server"], env, ports[name]
            )
            procs.append(popen)
            starts[name] = took
        env = clean_env()
        env.update(
            HOST="127.0.0.1", PORT=str(ports["product"]), DATA_DIR=str(work / "product"), SEED="1"
        )
        popen, took = _start([sys.executable, "-m", "services.product"], env, ports["product"])
        procs.append(popen)
        starts["product"] = took
        print(f"load average {os.getloadavg()[0]:.1f}; start to ready (s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in starts.items()))  # fmt: skip
        base = "http://127.0.0.1:{}"
        _point("behaviour server, leaf", base.format(ports["leaf"]) + "/x", procs[0].pid,
               args.seconds, args.concurrency)  # fmt: skip
        _point("behaviour server, 1 call", base.format(ports["caller"]) + "/page", procs[1].pid,
               args.seconds, args.concurrency)  # fmt: skip
        _point("real product GET /products", base.format(ports["product"]) + "/products",
               procs[2].pid, args.seconds, args.concurrency)  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
