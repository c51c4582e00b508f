"""SVG snapshots of the traffic graph for three lessons' steps, from simulated runs (seeded, so
every number is the same each time): a canary (lesson 02, 90/10 to product v1/v2), a circuit
breaker that trips (lesson 08, UO badges on red edges) and an mTLS migration (lesson 11, 🔒
sidecar to sidecar, with what changed since the plaintext step before).

``pytest tests/tui --snapshot-update`` after a deliberate change, then look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult

from mesh.lesson import load_lesson
from mesh.observe.graph import MeshGraph, build_mesh_graph
from mesh.runner import RunOptions
from sim import SimRunner
from tui.graph import build_graph
from tui.graph_widget import GraphView

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def step_graphs(lesson_name: str, until: int) -> list[MeshGraph]:
    lesson = load_lesson(LESSONS / lesson_name)
    run = SimRunner().run(lesson, RunOptions(seed=1, until_step=until))
    declared = [(e.client, e.service) for e in build_graph(lesson).edges]
    return [build_mesh_graph(s.records, s.duration_s, declared) for s in run.steps]


class GraphApp(App[None]):
    """The graph widget alone, as the topology view shows it."""

    CSS = "#graph { border: round $primary-darken-2; }"

    def __init__(self, graph: MeshGraph, previous: MeshGraph | None, node: str, diff: bool) -> None:
        super().__init__()
        self.graph, self.previous, self.node, self.diff = graph, previous, node, diff

    def compose(self) -> ComposeResult:
        yield GraphView(id="graph")

    def on_mount(self) -> None:
        view = self.query_one(GraphView)
        view.filters.diff = self.diff
        view.show(self.graph, self.previous, "traffic graph")
        if self.node:
            view.select_node(self.node)
        view.focus()


@pytest.mark.parametrize(
    ("lesson", "step", "node", "diff"),
    [
        ("02-traffic-shifting", 1, "", False),
        ("08-circuit-breaking", 2, "product", False),
        ("11-mtls-migration", 2, "", True),
    ],
    ids=["canary", "circuit-breaker", "mtls-migration"],
)
def test_graph_snapshot(snap_compare: Any, lesson: str, step: int, node: str, diff: bool) -> None:
    graphs = step_graphs(lesson, step)
    previous = graphs[-2] if len(graphs) > 1 else None
    app = GraphApp(graphs[-1], previous, node, diff)
    assert snap_compare(app, terminal_size=(100, 24))
