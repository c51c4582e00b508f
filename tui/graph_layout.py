"""Where the traffic graph's boxes and edges go: grandalf's Sugiyama (layered) layout of the
apps, and the row at which each edge enters its destination box.

grandalf lays layers out top to bottom; :func:`layered_layout` transposes it, so a layer is a
column and the position within a layer a row (see :mod:`tui.graph_canvas`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex as GVertex
from grandalf.layouts import SugiyamaLayout

from mesh.observe.graph import EdgeKey, GraphEdge, MeshGraph

__all__ = ["Dummies", "layered_layout", "port_rows"]


def port_rows(keys: list[str], inbound: Iterable[GraphEdge]) -> dict[EdgeKey, int]:
    """Row (inside the box, from 0) where each edge enters: its workload's row (the service's
    for edges that reached no workload) for the busiest edge into it, edges with traffic
    first; the others (a second caller of the same workload, an idle declared call to a taken
    row) on rows of their own under the workloads, those with traffic labelled with the
    workload they reach."""

    def wanted(e: GraphEdge) -> int:
        return keys.index(e.target_version) if e.target_version in keys else 0

    out: dict[EdgeKey, int] = {}
    taken: set[int] = set()
    extra = max(len(keys), 1)
    for e in sorted(inbound, key=lambda e: (not e.requests, wanted(e), -e.requests, e.key)):
        row = wanted(e)
        if row in taken:
            row, extra = extra, extra + 1
        taken.add(row)
        out[e.key] = row
    return out


Dummies = dict[tuple[str, str], dict[int, int]]


def layered_layout(
    graph: MeshGraph, edges: list[GraphEdge], sizes: Mapping[str, tuple[int, int]]
) -> tuple[list[list[str]], dict[str, int], Dummies]:
    """Layers (columns) of node ids and dummy points, the top row of each, and per long edge
    the row of its dummy point in each layer it crosses; components are laid out one below
    the other."""
    pairs = sorted({(e.source, e.target) for e in edges})
    vertices = {n.id: GVertex(n.id) for n in graph.nodes}
    for v in vertices.values():
        w, h = sizes[v.data]

        class View:
            pass

        view = View()
        view.w, view.h = h, w  # type: ignore[attr-defined] # transposed: a layer is a column
        v.view = view
    g = GGraph(list(vertices.values()), [GEdge(vertices[a], vertices[b]) for a, b in pairs])
    entry = graph.roots()
    layers: list[list[str]] = []
    rows_of: dict[str, int] = {}
    dummies: Dummies = {}
    offset = 0
    for component in g.C:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = 1, 1
        roots = [v for v in component.sV if v.data in entry] or None
        layout.init_all(roots=roots)
        layout.draw(N=2)
        positions: dict[str, tuple[int, float]] = {}
        names: dict[int, str] = {}
        for rank, layer in enumerate(layout.layers):
            for v in layer:
                name = v.data if isinstance(v, GVertex) else f"·{id(v)}"
                names[id(v)] = name
                positions[name] = (rank, v.view.xy[0] - v.view.w / 2)
        top = min(p for _, p in positions.values())
        bottom = offset
        for name, (rank, pos) in positions.items():
            while len(layers) <= rank:
                layers.append([])
            layers[rank].append(name)
            rows_of[name] = offset + round(pos - top)
            h = sizes[name][1] if name in sizes else 1
            bottom = max(bottom, rows_of[name] + h)
        for ge, ctrl in layout.ctrls.items():
            key = (ge.v[0].data, ge.v[1].data)
            dummies[key] = {r: rows_of[names[id(d)]] for r, d in ctrl.items() if id(d) in names}
        offset = bottom + 1
    return layers, rows_of, dummies
