"""How long the topology view's traffic graph takes per frame for a 30-service mesh.

The mesh is generated (``tests/tui/graph_records.generated_mesh``: 30 services with two
versions each in five tiers, the load generator and the ingress gateway in front, one to three
calls per service, a fifth of them failing). Three things are timed, each ``--rounds`` times,
and their median and worst printed:

* ``model``: the graph built from the step's records (``mesh.observe.graph.build_mesh_graph``);
* ``draw``: grandalf's layered layout and the box-drawing canvas (``tui.graph_canvas.draw``),
  what every redraw costs (a key that moves the selection, a filter, a live update);
* ``frame``: in the running app, from handing the graph to the widget until Textual has laid
  it out and painted it (``GraphView.show``, which draws, then a refresh), at 200x60 (the
  drawing is wider than the view, so the edges carry the short labels: auto zoom).

The target is a frame under 200 ms. This is a measurement, not a timed test::

    .venv/bin/python benchmarks/bench_graph.py --services 30 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textual.app import App, ComposeResult  # noqa: E402

from mesh.observe.graph import MeshGraph, build_mesh_graph  # noqa: E402
from tests.tui.graph_records import generated_mesh  # noqa: E402
from tui.graph_canvas import draw  # noqa: E402
from tui.graph_widget import GraphView  # noqa: E402


class GraphApp(App[None]):
    """The graph widget alone."""

    def compose(self) -> ComposeResult:
        yield GraphView(id="graph")


async def frames(graph: MeshGraph, rounds: int) -> list[float]:
    """Milliseconds from ``show`` to painted, per round (the selection moves each time so
    every round redraws)."""
    app = GraphApp()
    out = []
    async with app.run_test(size=(200, 60)) as pilot:
        view = app.query_one(GraphView)
        view.show(graph)
        await pilot.pause()
        nodes = [n.id for n in graph.nodes]
        for i in range(rounds):
            start = time.perf_counter()
            view.node = nodes[i % len(nodes)]
            view.show(graph)
            await pilot.pause()  # Textual lays out and paints before this returns
            out.append((time.perf_counter() - start) * 1000)
    return out


def summary(name: str, values: list[float]) -> str:
    """``draw   median  12.3 ms  max  20.1 ms``"""
    return f"{name:<6} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    records = generated_mesh(args.services)
    model, drawn = [], []
    graph = build_mesh_graph(records, 10.0)
    for _ in range(args.rounds):
        start = time.perf_counter()
        graph = build_mesh_graph(records, 10.0)
        model.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        drawing = draw(graph)
        drawn.append((time.perf_counter() - start) * 1000)
    shown = asyncio.run(frames(graph, args.rounds))
    load = os.getloadavg()[0]
    print(
        f"{args.services} services: {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
        f"{len(records)} records; drawing {drawing.width}x{drawing.height} cells; "
        f"load average {load:.1f}"
    )
    print(summary("model", model))
    print(summary("draw", drawn))
    print(summary("frame", shown))
    verdict = "under" if statistics.median(shown) < 200 else "OVER"
    print(f"frame median {statistics.median(shown):.1f} ms (it includes the draw): {verdict} "
          "the 200 ms target")  # fmt: skip


if __name__ == "__main__":
    main()
