"""Fit the simulator's proxy memory model on real Envoy 1.40 (``mesh.envoy.memory``).

Each configuration is one proxy's, as meshplay's translator builds it for an app plus N other
Services (``tests/mesh/envoy/memory_probe.py``): loaded into a real Envoy (static bootstrap,
``--concurrency 1``), its admin ``/memory`` ``allocated`` and VmRSS read once ready. Then a least
squares fit of ``allocated MiB = a + b x clusters + c x virtual hosts`` and each point's error,
beside the model meshplay ships. One Envoy at a time, each stopped by its PID.

Run: ``.venv/bin/python benchmarks/bench_proxy_memory.py``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mesh.envoy.memory import HEAP_MODEL, virtual_hosts  # noqa: E402
from tests.mesh.envoy.memory_probe import Measured, config_for, measure  # noqa: E402

CASES: list[tuple[str, str, int, bool]] = [
    *[("benchmark", "fortioclient-0", n, False) for n in (0, 10, 25, 100, 400)],
    ("benchmark", "fortioclient-0", 30, True),
    ("benchmark", "fortioclient-0", 100, True),
    *[("ecommerce", "frontend-v1-0", n, False) for n in (0, 50, 150)],
    ("ecommerce", "frontend-v1-0", 50, True),
    *[("ecommerce", "api-gateway-v1-0", n, False) for n in (0, 100)],
    *[("bookinfo", "productpage-v1-0", n, False) for n in (0, 60)],
]
"""(app, pod, other Services, with subsets): the 15 configurations the shipped model was
fitted on."""


def solve(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares by the normal equations (a handful of unknowns)."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in range(n)]
    m = [[*a[i], b[i]] for i in range(n)]
    for i in range(n):
        pivot = m[i][i]
        m[i] = [v / pivot for v in m[i]]
        for k in range(n):
            if k != i:
                factor = m[k][i]
                m[k] = [vk - factor * vi for vk, vi in zip(m[k], m[i], strict=True)]
    return [m[i][n] for i in range(n)]


def main() -> None:
    measured: list[Measured] = []
    with tempfile.TemporaryDirectory() as tmp:
        for app, pod, extra, subsets in CASES:
            label = f"{pod}+{extra}{'s' if subsets else ''}"
            m = measure(config_for(app, pod, extra, subsets=subsets), Path(tmp), label)
            measured.append(m)
            print(m.row(), flush=True)
    rows = [[1.0, len(m.config.clusters), virtual_hosts(m.config)] for m in measured]
    ys = [m.allocated_mb for m in measured]
    a, b, c = solve(rows, ys)
    print(f"\nfit:     allocated MiB = {a:.3f} + {b:.5f} x clusters + {c:.5f} x virtual hosts")
    print(
        f"shipped: allocated MiB = {HEAP_MODEL.base_mb:.3f} + {HEAP_MODEL.per_cluster_mb:.5f}"
        f" x clusters + {HEAP_MODEL.per_virtual_host_mb:.5f} x virtual hosts"
    )
    print(f"\n{'config':28} {'clusters':>8} {'real MiB':>9} {'fit err':>8} {'shipped err':>11}")
    for m, row, y in zip(measured, rows, ys, strict=True):
        fit = a + b * row[1] + c * row[2]
        shipped = HEAP_MODEL.allocated_mb(m.config)
        print(
            f"{m.label:28} {len(m.config.clusters):8d} {y:9.2f} {(fit - y) / y:+8.1%}"
            f" {(shipped - y) / y:+11.1%}"
        )


if __name__ == "__main__":
    main()
