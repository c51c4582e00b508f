"""The traffic graph as a scrollable, keyboard-navigable widget (the topology view's left side).

The drawing is :func:`tui.graph_canvas.draw`'s; this widget keeps what is selected, the filters
and the graph of the step before (for "what changed"), redraws on every change, and keeps the
selection in sight. Keys (the footer has no room for them; the border says them):

* ``↓``/``↑``: next/previous node (column by column, top to bottom), or edge when an edge is
  selected; ``→``: from a node its first outgoing edge, from an edge its destination;
  ``←``: from a node its first incoming edge, from an edge its source;
* ``i`` hides idle edges, ``o`` keeps only edges with errors or response flags, ``f`` cycles
  through the namespaces (one at a time, then all), ``d`` marks what changed since the step
  before (``Δ``: a new or gone edge, a share that moved more than 5 points, a new health),
  ``z`` zooms out (only the share, errors and flags on the edges).

Clicking a box selects its node.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mesh.observe.graph import EdgeKey, GraphEdge, MeshGraph, changes
from tui.graph_canvas import Drawing, draw

__all__ = ["GraphFilters", "GraphView"]

HELP = "↑↓ nodes · →← edges · i idle · o errors · f ns · d Δ · z zoom"


@dataclass
class GraphFilters:
    """What the graph leaves out or marks."""

    hide_idle: bool = True
    """Kiali hides idle edges by default; a graph without traffic shows its declared calls."""
    only_errors: bool = False
    namespace: str = ""
    diff: bool = False
    zoom: str = "auto"
    """``auto`` (every number on the edges when the drawing fits the view, else only share,
    errors and flags), ``out`` (always the short labels) or ``in`` (always every number)."""

    def describe(self) -> str:
        """``idle hidden · errors only · ns shop · Δ`` (what is on)."""
        parts = []
        if not self.hide_idle:
            parts.append("idle shown")
        if self.only_errors:
            parts.append("errors only")
        if self.namespace:
            parts.append(f"ns {self.namespace}")
        if self.diff:
            parts.append("Δ since the step before")
        if self.zoom != "auto":
            parts.append(f"zoom {self.zoom}")
        return " · ".join(parts)


class GraphView(ScrollView, can_focus=True):
    """The drawn graph, scrolling both ways, with a selected node or edge.

    A Line API widget: only the lines on screen are turned into segments (each once per
    drawing), so a drawing of a large mesh costs its visible part per frame, not its area."""

    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("down,j", "move(1)", "Next", show=False),
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("right,l", "across(1)", "Out", show=False),
        Binding("left", "across(-1)", "In", show=False),
        Binding("i", "flip('hide_idle')", "Hide idle", show=False),
        Binding("o", "flip('only_errors')", "Only errors", show=False),
        Binding("f", "namespace", "Namespace", show=False),
        Binding("d", "flip('diff')", "What changed", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        Binding("shift+down", "scroll_down", "Scroll down", show=False),
        Binding("shift+up", "scroll_up", "Scroll up", show=False),
        Binding("shift+right", "scroll_right", "Scroll right", show=False),
        Binding("shift+left", "scroll_left", "Scroll left", show=False),
    ]

    class Selected(Message):
        """A node (``edge`` None) or an edge was selected."""

        def __init__(self, node: str, edge: GraphEdge | None) -> None:
            super().__init__()
            self.node = node
            self.edge = edge

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graph = MeshGraph((), ())
        self.previous: MeshGraph | None = None
        self.shown = self.graph
        """The graph after the filters: what is drawn."""
        self.filters = GraphFilters()
        self.node = ""
        self.edge: EdgeKey | None = None
        self.drawing: Drawing | None = None
        self.changed: dict[EdgeKey, str] = {}
        self.caption = ""
        self.compact = False
        """Whether the drawing on screen has the short edge labels."""
        self._lines: list[Text] = []
        self._strips: dict[int, Strip] = {}

    def _set_lines(self, lines: list[Text], width: int) -> None:
        self._lines = lines
        self._strips = {}
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view: the drawing's line under it, cut to the scrolled window."""
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get(index)
        if strip is None:
            line = self._lines[index]
            segments = [s for s in line.render(self.app.console) if s.text != "\n"]
            strip = Strip(Segment.apply_style(segments, self.rich_style), line.cell_len)
            self._strips[index] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def show(self, graph: MeshGraph, previous: MeshGraph | None = None, caption: str = "") -> None:
        """Draw ``graph`` (``previous``: the step before, for "what changed")."""
        self.graph, self.previous, self.caption = graph, previous, caption
        self.redraw()

    def redraw(self, *, follow: bool = False) -> None:
        """Apply the filters, draw, and (``follow``) scroll the selection into sight."""
        f = self.filters
        if f.namespace and f.namespace not in self.graph.namespaces():
            f.namespace = ""
        idle = f.hide_idle and any(e.requests for e in self.graph.edges)
        self.shown = self.graph.filtered(
            hide_idle=idle, only_errors=f.only_errors, namespace=f.namespace
        )
        self.changed = {}
        if f.diff and self.previous is not None:
            before = self.previous.filtered(
                hide_idle=idle, only_errors=f.only_errors, namespace=f.namespace
            )
            self.changed = changes(before, self.shown)
        if self.node and self.shown.node(self.node) is None:
            self.node = ""
        if self.edge is not None and self.shown.edge(self.edge) is None:
            self.edge = None

        self.drawing = draw(
            self.shown,
            selected_node=self.node if self.edge is None else "",
            selected_edge=self.edge,
            changed=self.changed,
            compact=f.zoom == "out",
            fit_width=self.scrollable_content_region.width if f.zoom == "auto" else 0,
        )
        self.compact = self.drawing.compact
        self._set_lines(self.drawing.lines, self.drawing.width)
        title = self.caption
        if f.describe():
            title += f" · {f.describe()}"
        if f.diff and self.previous is None:
            title += " (no step before)"
        elif f.diff:
            title += f" ({len(self.changed)} changed)"
        self.border_title = title
        self.border_subtitle = HELP
        if follow:
            self.call_after_refresh(self._follow)

    def _follow(self) -> None:
        drawing = self.drawing
        if drawing is None:
            return
        region: Region | None = None
        if self.edge is not None and self.edge in drawing.labels:
            x, y = drawing.labels[self.edge]
            region = Region(max(0, x - 4), max(0, y - 2), 40, 5)
        elif self.node in drawing.boxes:
            box = drawing.boxes[self.node]
            region = Region(box.x, box.y, box.w, box.h)
        if region is not None:
            self.scroll_to_region(region, animate=False, force=True)

    # selection
    def select_node(self, node: str) -> bool:
        """Select ``node`` if it is drawn."""
        if self.shown.node(node) is None:
            return False
        self.node, self.edge = node, None
        self.redraw(follow=True)
        self.post_message(self.Selected(node, None))
        return True

    def select_edge(self, key: EdgeKey) -> bool:
        """Select the edge ``key`` if it is drawn."""
        edge = self.shown.edge(key)
        if edge is None:
            return False
        self.edge = key
        self.node = edge.target
        self.redraw(follow=True)
        self.post_message(self.Selected(edge.target, edge))
        return True

    def action_move(self, delta: int) -> None:
        """Next or previous node (or edge, when an edge is selected)."""
        drawing = self.drawing
        if drawing is None:
            return
        if self.edge is not None and drawing.edge_order:
            order = drawing.edge_order
            i = order.index(self.edge) if self.edge in order else -1
            self.select_edge(order[(i + delta) % len(order)])
            return
        nodes = drawing.node_order
        if not nodes:
            return
        i = nodes.index(self.node) if self.node in nodes else (-1 if delta > 0 else 0)
        self.select_node(nodes[(i + delta) % len(nodes)])

    def action_across(self, direction: int) -> None:
        """Along the edges: out of a node or into an edge's destination (``direction`` 1), or
        into a node or back to an edge's source (-1)."""
        if self.drawing is None:
            return
        if self.edge is not None:
            edge = self.shown.edge(self.edge)
            if edge is not None:
                self.select_node(edge.target if direction > 0 else edge.source)
            return
        if not self.node:
            self.action_move(1)
            return
        order = self.drawing.edge_order
        side = 0 if direction > 0 else 2
        found = next((k for k in order if k[side] == self.node), None)
        if found is not None:
            self.select_edge(found)

    def action_flip(self, name: str) -> None:
        """Turn a filter (or the zoom, or "what changed") on or off."""
        setattr(self.filters, name, not getattr(self.filters, name))
        self.redraw(follow=True)

    def action_zoom(self) -> None:
        """Zoom: fit the view (auto), out (short labels), in (every number), auto again."""
        order = ["auto", "out", "in"]
        self.filters.zoom = order[(order.index(self.filters.zoom) + 1) % len(order)]
        self.redraw(follow=True)

    def on_resize(self, event: events.Resize) -> None:
        """A new size may fit more (or fewer) numbers on the edges."""
        if self.filters.zoom == "auto" and self.drawing is not None:
            self.redraw()

    def action_namespace(self) -> None:
        """Show one namespace, then the next, then all of them again."""
        names = ["", *self.graph.namespaces()]
        i = names.index(self.filters.namespace) if self.filters.namespace in names else 0
        self.filters.namespace = names[(i + 1) % len(names)]
        self.redraw(follow=True)

    def on_click(self, event: events.Click) -> None:
        """Select the node whose box was clicked."""
        drawing = self.drawing
        offset = event.get_content_offset(self)
        if drawing is None or offset is None:
            return
        x, y = offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y
        for node, box in drawing.boxes.items():
            if box.contains(x, y):
                self.select_node(node)
                return

    def plain(self) -> str:
        """The drawing as text (for tests)."""
        return self.drawing.plain() if self.drawing is not None else ""

    def message(self, text: str) -> None:
        """Show a line instead of a graph."""
        self.drawing = None
        self._set_lines([Text(text, style="dim")], len(text))
