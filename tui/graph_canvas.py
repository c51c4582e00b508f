"""The traffic graph drawn with box-drawing characters, left to right from where traffic enters.

Layout is grandalf's Sugiyama (layered) layout, the algorithm of Graphviz's ``dot``: apps are
ranked into layers from the entry points, ordered within their layer to reduce edge crossings,
and long edges are routed through dummy points in the layers they cross. grandalf lays layers
out top to bottom, so the drawing transposes it: a layer is a column, the position within a
layer a row.

Each app is one box (its kind decides the border: rounded for a service, double for a gateway,
dashed for a ServiceEntry host, heavy for the load generator and the black hole, dotted for
the passthrough), its versioned workloads one row each inside. An edge leaves the calling
workload's row on the right, turns in a channel of its own in the gap between two layers, and
enters the destination box on the left at a port row (the destination workload's row when it
is free) with an arrow; its numbers are written on that last stretch.

The layout is in :mod:`tui.graph_layout`, the character canvas in :mod:`tui.text_canvas`; this
module draws the boxes and routes the edges. No Textual here: the same drawing is shown by the TUI, exported as SVG by ``meshplay graph``
(Rich renders it) and timed by ``benchmarks/bench_graph.py``.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from mesh.observe.graph import EdgeKey, GraphEdge, GraphNode, MeshGraph, NodeKind, edge_summary
from tui.graph_layout import layered_layout, port_rows
from tui.text_canvas import Canvas

__all__ = ["Drawing", "draw", "to_svg"]


BORDERS = {  # top-left, horizontal, top-right, vertical, bottom-left, bottom-right
    NodeKind.SERVICE: "╭─╮│╰╯",
    NodeKind.GATEWAY: "╔═╗║╚╝",
    NodeKind.CLIENT: "┏━┓┃┗┛",
    NodeKind.EXTERNAL: "┌╌┐╎└┘",
    NodeKind.PASSTHROUGH: "┌┄┐┆└┘",
    NodeKind.BLACKHOLE: "┏━┓┃┗┛",
}
ICONS = {
    NodeKind.SERVICE: "",
    NodeKind.GATEWAY: "⇶ ",
    NodeKind.CLIENT: "◇ ",
    NodeKind.EXTERNAL: "☁ ",
    NodeKind.PASSTHROUGH: "⇢ ",
    NodeKind.BLACKHOLE: "● ",
}
LAYER_GAP_MIN = 8


@dataclass(frozen=True, slots=True)
class Box:
    """Where a node is drawn: top-left cell, size, and the row of each workload."""

    x: int
    y: int
    w: int
    h: int

    def contains(self, x: int, y: int) -> bool:
        """Whether the cell is on or inside the border."""
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h


@dataclass
class Drawing:
    """The drawn graph: lines of styled text, where every node and edge ended up, and the order
    in which keyboard navigation visits them."""

    lines: list[Text]
    width: int
    height: int
    boxes: dict[str, Box] = field(default_factory=dict)
    labels: dict[EdgeKey, tuple[int, int]] = field(default_factory=dict)
    """Cell where each edge's numbers start (or its arrow, when they did not fit)."""
    node_order: list[str] = field(default_factory=list)
    edge_order: list[EdgeKey] = field(default_factory=list)
    compact: bool = False
    """Whether the edges carry only share, errors and flags."""

    @property
    def text(self) -> Text:
        """All lines as one Text."""
        return Text("\n").join(self.lines)

    def plain(self) -> str:
        """The drawing without styles (for tests and logs)."""
        return "\n".join(line.plain for line in self.lines)


def _title(node: GraphNode) -> str:
    return ICONS[node.kind] + node.label


def _row_keys(node: GraphNode, inbound: Iterable[GraphEdge]) -> list[str]:
    """The versions shown inside the box, one a row; ``""`` (first) is the service itself,
    shown when requests ended there without reaching a workload (Envoy's local replies)."""
    keys = list(node.workloads)
    if keys and any(e.requests and e.target_version not in keys for e in inbound):
        keys.insert(0, "")
    return keys


def _rows(node: GraphNode, keys: list[str]) -> list[str]:
    rates = dict(node.workload_rps)
    rows = []
    for v in keys:
        rate = rates.get(v)
        if not v:
            rows.append("△ service")
        else:
            rows.append(f"{v} {rate:.0f}/s" if rate else v)
    return rows


def _label(e: GraphEdge, compact: bool) -> str:
    lock = f"{e.padlock} " if e.padlock else ""
    if compact:
        if not e.requests:
            return ""
        text = f"{e.share:.0%}"
        if e.errors:
            text += f" ✗{e.error_ratio:.0%}"
        if e.flags:
            text += " " + ",".join(f for f, _ in e.flags)
        return lock + text
    return lock + edge_summary(e)


def draw(
    graph: MeshGraph,
    *,
    selected_node: str = "",
    selected_edge: EdgeKey | None = None,
    changed: Mapping[EdgeKey, str] | None = None,
    compact: bool = False,
    fit_width: int = 0,
) -> Drawing:
    """Lay ``graph`` out and draw it. ``changed`` edges (what changed since another step) are
    marked ``Δ``; the selected node or edge is drawn reversed. ``compact`` writes only the share,
    errors and flags on the edges (for small terminals); so does a drawing that would be wider
    than ``fit_width`` cells with every number (``Drawing.compact`` says which was drawn)."""
    changed = changed or {}
    nodes = {n.id: n for n in graph.nodes}
    edges = [e for e in graph.edges if e.source != e.target and e.source in nodes]
    if not nodes:
        return Drawing([Text("no traffic and no declared calls", style="dim")], 33, 1)

    # box sizes and in-port rows
    in_edges: dict[str, list[GraphEdge]] = defaultdict(list)
    for e in edges:
        in_edges[e.target].append(e)
    sizes: dict[str, tuple[int, int]] = {}
    row_keys = {n.id: _row_keys(n, in_edges[n.id]) for n in graph.nodes}
    ports = {n.id: port_rows(row_keys[n.id], in_edges[n.id]) for n in graph.nodes}
    for n in graph.nodes:
        rows = _rows(n, row_keys[n.id])
        inner = max(len(rows), 1, max(ports[n.id].values(), default=-1) + 1)
        width = max(len(_title(n)) + 6, max((len(r) for r in rows), default=0) + 4, 10)
        width = max(width, len(n.namespace) + 6)
        sizes[n.id] = (width, inner + 2)

    layers, rows_of, dummies = layered_layout(graph, edges, sizes)

    # gaps between layers: one channel per edge crossing it, room for the numbers of the edges
    # that end in the next layer
    layer_of = {v: i for i, layer in enumerate(layers) for v in layer}
    hops: dict[int, list[GraphEdge]] = defaultdict(list)  # gap index -> edges crossing it
    for e in edges:
        a, b = layer_of[e.source], layer_of[e.target]
        for g in range(min(a, b), max(a, b)):
            hops[g].append(e)
    layer_w = [max((sizes[v][0] if v in sizes else 1) for v in layer) for layer in layers]

    def away(e: GraphEdge) -> str:
        """``→v2 `` for an edge that enters its box off its workload's row."""
        keys = row_keys[e.target]
        if (
            e.requests
            and e.target_version in keys
            and ports[e.target][e.key] != keys.index(e.target_version)
        ):
            return f"→{e.target_version or 'service'} "
        return ""

    def columns(short: bool) -> tuple[dict[EdgeKey, str], list[int], int]:
        """Edge labels, the x of each layer and the drawing's width."""
        labels = {
            e.key: ("Δ " if e.key in changed else "") + away(e) + _label(e, short) for e in edges
        }
        final_gap_label: dict[int, int] = defaultdict(int)
        for e in edges:
            a, b = layer_of[e.source], layer_of[e.target]
            if b > a:
                final_gap_label[b - 1] = max(final_gap_label[b - 1], cell_len(labels[e.key]))
        gap_w = [
            max(LAYER_GAP_MIN, len(hops[g]) + final_gap_label[g] + 4) for g in range(len(layers))
        ]
        col_x: list[int] = []
        x = 3  # room on the left for calls back to the first layer
        for i, w in enumerate(layer_w):
            col_x.append(x)
            x += w + gap_w[i]
        return labels, col_x, x

    labels, col_x, width = columns(compact)
    if not compact and fit_width and width > fit_width:
        compact = True  # zoomed out to fit (or at least to scroll less); the layout stays
        labels, col_x, width = columns(True)
    boxes: dict[str, Box] = {}
    for v, top in rows_of.items():
        if v in sizes:
            w, h = sizes[v]
            boxes[v] = Box(col_x[layer_of[v]], top, w, h)
    height = max((top + (sizes[v][1] if v in sizes else 1) for v, top in rows_of.items())) + 1
    canvas = Canvas(width, height)

    # ports: where each edge leaves and enters
    ports_in: dict[EdgeKey, int] = {}
    for n in graph.nodes:
        for key, row in ports[n.id].items():
            ports_in[key] = boxes[n.id].y + 1 + row

    def out_row(e: GraphEdge) -> int:
        box, keys = boxes[e.source], row_keys[e.source]
        if e.source_version in keys:
            return box.y + 1 + keys.index(e.source_version)
        return box.y + 1

    # channels: per gap, one column per edge, ordered by the row where the edge ends
    channel: dict[tuple[EdgeKey, int], int] = {}
    for g, crossing in hops.items():
        order = sorted(crossing, key=lambda e: (ports_in.get(e.key, 0), out_row(e)))
        start = col_x[g] + layer_w[g] + 1
        for k, e in enumerate(order):
            channel[(e.key, g)] = start + k

    drawing = Drawing([], width, height, boxes, compact=compact)
    for e in edges:
        style = e.health.value
        if selected_edge == e.key:
            style = f"bold reverse {style}"
        elif e.key in changed:
            style = f"bold {style}"
        a, b = layer_of[e.source], layer_of[e.target]
        y = out_row(e)
        x = boxes[e.source].x + boxes[e.source].w
        end_y = ports_in[e.key]
        end_x = boxes[e.target].x - 1
        waypoints = {r: row + 1 for r, row in dummies.get((e.source, e.target), {}).items()}
        if b <= a:  # a call back to an earlier layer: under the boxes, then up into the target
            below = max(
                boxes[e.source].y + boxes[e.source].h, boxes[e.target].y + boxes[e.target].h
            )
            canvas.hline(y, x, x + 1, style)
            canvas.vline(x + 1, y, min(below, height - 1), style)
            canvas.hline(min(below, height - 1), x + 1, end_x - 1, style)
            canvas.vline(end_x - 1, min(below, height - 1), end_y, style)
            canvas.hline(end_y, end_x - 1, end_x, style)
            canvas.put(end_x, end_y, "▶", style)
            low = min(below, height - 1)
            room = (x + 1) - (end_x + 2)
            fits = room > cell_len(labels[e.key]) + 1
            drawing.labels[e.key] = (end_x + 2, low) if fits else (end_x, end_y)
            continue
        for g in range(a, b):
            c = channel[(e.key, g)]
            canvas.hline(y, x, c, style)
            next_y = waypoints.get(g + 1, end_y) if g + 1 < b else end_y
            canvas.vline(c, y, next_y, style)
            y = next_y
            if g + 1 < b:  # through a layer at the dummy's row
                x_next = col_x[g + 1] + layer_w[g + 1] + 1
                canvas.hline(y, c, x_next, style)
                x = x_next
            else:
                canvas.hline(y, c, end_x, style)
                canvas.put(end_x, y, "▶", style)
                label = labels[e.key]
                lx = end_x - 1 - cell_len(label)
                if label and lx > c:
                    drawing.labels[e.key] = (lx, y)
                else:
                    drawing.labels[e.key] = (end_x, y)
    for e in edges:
        pos = drawing.labels.get(e.key)
        label = labels[e.key]
        if pos is not None and label and canvas.free(*pos):
            style = e.health.value
            if selected_edge == e.key:
                style = f"bold reverse {style}"
            elif e.key in changed:
                style = "bold magenta"
            canvas.put(pos[0], pos[1], label, style)
    for node_id, box in boxes.items():
        rows = _rows(nodes[node_id], row_keys[node_id])
        _box(canvas, nodes[node_id], rows, box, node_id == selected_node)
    drawing.lines = canvas.render()
    drawing.node_order = sorted(boxes, key=lambda v: (boxes[v].x, boxes[v].y))
    drawing.edge_order = [
        e.key
        for e in sorted(
            edges, key=lambda e: (layer_of[e.source], out_row(e), ports_in.get(e.key, 0))
        )
    ]
    return drawing


def _box(canvas: Canvas, node: GraphNode, rows: list[str], box: Box, selected: bool) -> None:
    tl, hz, tr, vt, bl, br = tuple(BORDERS[node.kind])
    style = node.health.value
    if selected:
        style = f"bold reverse {style}"
    title = f" {_title(node)} "
    top = tl + hz + title + hz * (box.w - 3 - len(title)) + tr
    canvas.put(box.x, box.y, top, style)
    for i in range(box.h - 2):
        y = box.y + 1 + i
        canvas.put(box.x, y, vt, style)
        inner = f" {rows[i]}" if i < len(rows) else ""
        canvas.put(box.x + 1, y, inner.ljust(box.w - 2), "")
        canvas.put(box.x + box.w - 1, y, vt, style)
    ns = f" {node.namespace} " if node.namespace else ""
    bottom = bl + hz + ns + hz * (box.w - 3 - len(ns)) + br
    canvas.put(box.x, box.y + box.h - 1, bottom, style)


def to_svg(drawing: Drawing, title: str = "meshplay graph") -> str:
    """The drawing as an SVG picture of a terminal (Rich's export)."""
    console = Console(
        record=True,
        width=max(drawing.width, 40),
        file=io.StringIO(),
        color_system="truecolor",
        force_terminal=True,
        legacy_windows=False,
    )
    for line in drawing.lines:
        console.print(line, no_wrap=True, crop=False, soft_wrap=False)
    svg = console.export_svg(title=title)
    # Rich falls back to fetching its font from a CDN: a picture for docs stays self-contained
    return re.sub(r',\s*url\("https?://[^"]*"\) format\("[^"]*"\)', "", svg)
