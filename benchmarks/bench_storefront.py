"""The React storefront's first paint on the local runner (issue 18 target: the first meaningful
paint under 1 s).

The e-commerce app starts on LocalMesh with its Gateway + VirtualService, and Debian's headless
Chromium opens the ingress gateway's URL ``--runs`` times, each in a fresh browser context (an
empty cache, as a first visit) and then ``--runs`` times again in one context (a returning
visitor: the hashed bundle comes from the cache). Each load reports, from the page's own
Performance API:

* ``ttfb``: navigation start to the first byte of ``GET /`` (ingress gateway -> frontend ->
  api-gateway -> product, the catalogue fetched on the server);
* ``fcp``: Chromium's ``first-contentful-paint``;
* ``catalogue``: the ``catalogue-shown`` mark the app sets when the products are on screen
  (the meaningful paint: the page is usable);
* ``lcp``: the largest-contentful-paint entry.

Run: ``.venv/bin/python benchmarks/bench_storefront.py [--runs 10]`` (needs ``bin/setup --test``:
the bundle, chromium, playwright). Prints medians and p90s in ms with the 1-minute load average;
every process is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.local.mesh import LocalMesh  # noqa: E402
from mesh.app import load_app  # noqa: E402
from mesh.source import load_paths  # noqa: E402
from tests.services.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

APP = ROOT / "lessons" / "apps" / "ecommerce"

TIMINGS = """async () => {
    const lcp = await new Promise((done) => {
        new PerformanceObserver((list) => {
            const entries = list.getEntries();
            done(entries[entries.length - 1].startTime);
        }).observe({type: "largest-contentful-paint", buffered: true});
        setTimeout(() => done(null), 2000);
    });
    const nav = performance.getEntriesByType("navigation")[0];
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const shown = performance.getEntriesByName("catalogue-shown")[0];
    return {ttfb: nav.responseStart, fcp: paint ? paint.startTime : null,
            catalogue: shown ? shown.startTime : null, lcp,
            bytes: performance.getEntriesByType("resource").reduce((n, r) => n + r.transferSize, 0)};
}"""


def load(page: Any, url: str) -> dict[str, float]:
    page.goto(url)
    page.wait_for_selector("article.product")
    timings: dict[str, float] = page.evaluate(TIMINGS)
    return timings


def summary(name: str, rows: list[dict[str, float]]) -> None:
    print(f"{name} ({len(rows)} loads)")
    for key in ("ttfb", "fcp", "catalogue", "lcp", "bytes"):
        values = sorted(r[key] for r in rows if r.get(key) is not None)
        if not values:
            continue
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        unit = "B" if key == "bytes" else "ms"
        print(f"  {key:<10} median {statistics.median(values):8.1f} {unit}   p90 {p90:8.1f} {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    app = load_app(APP)
    ingress = load_paths([APP / "istio"], default_namespace="shop")
    with tempfile.TemporaryDirectory() as tmp, LocalMesh(Path(tmp), seed=1) as mesh:
        mesh.start((*app.resources, *ingress.resources))
        port = mesh.pods["istio-ingressgateway-0"].ports.listeners[8080]
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                first: list[dict[str, float]] = []
                for _ in range(args.runs + 1):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    first.append(load(context.new_page(), url))
                    context.close()
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                again = [load(page, url) for _ in range(args.runs + 1)]
                context.close()
            finally:
                browser.close()
    print(
        f"load average (1 min): {os.getloadavg()[0]:.1f}; the first load of each series is a warm-up"
    )
    summary("first visit (empty cache)", first[1:])
    summary("returning visit (bundle cached)", again[1:])
    print(json.dumps({"first": first[1:], "again": again[1:]}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
