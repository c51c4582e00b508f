"""The topology explorer: the service graph as a call tree, edges coloured by health.

Each line is a node reached over an edge (``client -> service``): green/yellow/red by success
rate, grey when idle, 🔒 when the server saw mutual TLS (🔓 plaintext). Highlight a line to see
the node: its pods, its sidecar's listeners, routes and clusters (as ``istioctl proxy-config``
lists them), its circuit breakers as the DestinationRules set them and as the generated Envoy
clusters carry them, and its outlier-ejection state; ``e`` shows the edge that leads to it
(recent requests, codes, flags); ``x`` explains one request on that edge hop by hop. Long Envoy
names are folded after their separators (``|``, ``.``) to the pane's width, never mid-word.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from mesh.records import RequestRecord
from mesh.topology import build_topology
from tui import fmt
from tui.explain import FLAG_MEANING, explain_request, recent_requests
from tui.graph import Edge, ServiceGraph, TreeRow, build_graph
from tui.proxy import cluster_breakers, node_pods, resilience, summarise_config
from tui.session import Session

__all__ = ["TopologyPane"]


def edge_label(row: TreeRow) -> Text:
    """``🔒 product  40.0 rps 99.5%`` coloured by the edge's health."""
    if row.edge is None:
        return Text(row.node, style="bold")
    e = row.edge
    colour = e.health.value
    text = Text(f"{e.padlock} ", style=colour)
    text.append(row.node, style=f"bold {colour}")
    if row.repeated:
        text.append(" ↑", style="dim")
    if e.stats is not None:
        text.append(f" {e.stats.rps:.0f}/s {e.stats.success_rate:.0%}", style=colour)
        if e.stats.flags:
            text.append(" " + " ".join(f for f, _ in e.stats.flags), style="bold red")
    else:
        text.append(" idle", style="dim")
    return text


class TopologyPane(Horizontal):
    """Graph tree on the left, details of the highlighted node or edge on the right."""

    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("n", "show_node", "Node"),
        Binding("e", "show_edge", "Edge"),
        Binding("x", "explain", "Explain"),
    ]

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.graph: ServiceGraph | None = None
        self.records: tuple[RequestRecord, ...] = ()
        self.row: TreeRow | None = None
        self.mode = "node"
        self._drawn: tuple[int, int, int, int] | None = None
        self._lines: list[TreeNode[TreeRow]] = []
        """The tree's nodes, one per graph line, in drawing order."""
        self._shape: tuple[tuple[str, str, int, bool], ...] = ()
        """(node, edge, depth, repeated) of every drawn line: what an in-place update keeps."""
        self._configs: dict[tuple[int, int, str], Mapping[str, Any]] = {}
        """Translated Envoy config per (lesson, step, pod): translation is pure, so it is done
        once."""

    def compose(self) -> ComposeResult:
        tree: Tree[TreeRow] = Tree("mesh", id="graph")
        tree.show_root = False
        yield tree
        with VerticalScroll(id="topo-detail"):
            yield Static(id="topo-text")

    def refresh_graph(self) -> None:
        """Show the graph of the current lesson and its latest run's displayed step.

        When the drawn tree has the same lines (nodes, edges, depths) as the new graph, which is
        the rule while a run goes on or when moving between steps of one lesson, the lines'
        labels are updated in place and the cursor stays; the tree is rebuilt only when its
        shape changes.
        """
        tree = self.query_one("#graph", Tree)
        lesson = self.session.current
        if lesson is None:
            tree.clear()
            self.graph, self._lines, self._shape = None, [], ()
            self._detail(Text("No lesson chosen: pick one in Lessons (1).", style="dim"))
            return
        live = self.session.latest_run()
        step = self.session.step
        view = live.latest_view(step) if live is not None else None
        key = (id(lesson), id(live), step, id(view))
        if key == self._drawn and self.graph is not None:
            return  # nothing new to draw: keep the tree and the cursor as they are
        self._drawn = key
        self.records = live.records(step) if live is not None else ()
        traffic = view is not None and bool(self.records)
        rows = view.rows if view is not None and traffic else ()
        shares = dict(view.mtls) if view is not None and traffic else {}
        self.graph = build_graph(lesson, rows, shares=shares)
        lines = self.graph.tree()
        shape = tuple((r.node, self._edge_name(r), r.depth, r.repeated) for r in lines)
        tree.root.set_label(f"step {step + 1}")
        title = "no run yet: edges from the app's declared calls" if not self.records else ""
        tree.border_title = f"service graph · step {step + 1}" + (f" · {title}" if title else "")
        if shape == self._shape and self._lines:
            self._relabel(lines)
        else:
            self._rebuild(tree, lines)
            self._shape = shape

    def _relabel(self, rows: list[TreeRow]) -> None:
        """Same lines as drawn: new labels and data, the cursor where it is."""
        for tnode, row in zip(self._lines, rows, strict=True):
            tnode.data = row
            label = edge_label(row)
            if label != tnode.label:
                tnode.set_label(label)
        if self.row is not None:
            current = self.query_one("#graph", Tree).cursor_node
            if current is not None and current.data is not None:
                self.row = current.data
                self.mode = "node"  # as after a highlight
                self._show()

    def _rebuild(self, tree: Tree[TreeRow], rows: list[TreeRow]) -> None:
        """Draw the tree anew, the cursor back on the node it was on (if still there)."""
        tree.clear()
        stack: list[TreeNode[TreeRow]] = [tree.root]
        self._lines = []
        selected = self.row
        cursor: TreeNode[TreeRow] | None = None
        for row in rows:
            del stack[row.depth + 1 :]
            parent = stack[-1]
            node = parent.add(edge_label(row), data=row, expand=True, allow_expand=False)
            stack.append(node)
            self._lines.append(node)
            if (
                selected is not None
                and cursor is None
                and (row.node, self._edge_name(row)) == (selected.node, self._edge_name(selected))
            ):
                cursor = node
        if cursor is not None:
            self.call_after_refresh(tree.move_cursor, cursor)
        else:
            self.row = None
            self._detail(Text("Highlight a node (↑/↓).", style="dim"))

    @staticmethod
    def _edge_name(row: TreeRow) -> str:
        return row.edge.name if row.edge is not None else ""

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[TreeRow]) -> None:
        event.stop()
        if event.node.data is not None:
            self.row = event.node.data
            self.mode = "node"
            self._show()

    def on_tree_node_selected(self, event: Tree.NodeSelected[TreeRow]) -> None:
        event.stop()
        if event.node.data is not None:
            self.row = event.node.data
            self.mode = "edge" if self.mode == "node" and self.row.edge is not None else "node"
            self._show()

    def action_show_node(self) -> None:
        """Show the highlighted node."""
        self.mode = "node"
        self._show()

    def action_show_edge(self) -> None:
        """Show the edge leading to the highlighted node."""
        self.mode = "edge"
        self._show()

    def action_explain(self) -> None:
        """Explain one request on the highlighted edge (the latest failure, else the latest)."""
        self.mode = "explain"
        self._show()

    def select(self, node: str, edge: str = "") -> bool:
        """Move the cursor to ``node`` (reached over ``edge``, when given); for tests and links."""
        tree = self.query_one("#graph", Tree)
        for line in range(tree.last_line + 1):
            tnode = tree.get_node_at_line(line)
            row = tnode.data if tnode is not None else None
            if row is not None and row.node == node and (not edge or self._edge_name(row) == edge):
                tree.move_cursor(tnode)
                self.row = row
                self._show()
                return True
        return False

    def _detail(self, text: Text) -> None:
        static = self.query_one("#topo-text", Static)
        static.set_class(self.mode != "explain", "-nowrap")  # explanations wrap, tables do not
        static.update(text)

    def _show(self) -> None:
        row = self.row
        if row is None or self.graph is None:
            return
        if self.mode == "node" or row.edge is None:
            self._detail(self._node_text(row.node))
        elif self.mode == "edge":
            self._detail(self._edge_text(row.edge))
        else:
            self._detail(self._explain_text(row.edge))

    @property
    def _width(self) -> int:
        """Cells per line of the detail pane (its padding left out)."""
        width = self.query_one("#topo-detail").size.width - 3
        return width if width > 20 else 60

    def _line(self, out: Text, text: str, style: str = "", indent: str = "  ") -> None:
        """``text`` folded to the pane's width (Envoy names after their separators)."""
        for line in fmt.fold(text, self._width, indent):
            out.append(f"{line}\n", style=style)

    def _node_text(self, node: str) -> Text:
        assert self.graph is not None
        state = self.session.state()
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"{node}\n", style="bold underline")
        if node == "outside":
            self._line(out, "The load generator: a client outside the mesh, without a sidecar.")
            self._edges_summary(out, node)
            return out
        topology = build_topology(state.resources)
        pods = node_pods(topology, node)
        out.append("pods\n", style="bold")
        for pod in pods:
            version = pod.labels.get("version", "-")
            self._line(out, f"  {pod.name} {pod.address} {version} {pod.proxy.value}", "cyan")
            self._line(out, f"    {pod.principal}", "dim", "      ")
        if not pods:
            out.append("  (none: not a workload of this app)\n", style="dim")
        config = self._sidecar(out, state.resources, pods[0].name if pods else "")
        res = resilience(state.resources, node, self.records)
        out.append("circuit breakers ", style="bold")
        out.append("(connectionPool)\n", style="dim")
        for line in res.circuit_breakers:
            self._line(out, f"  {line}", indent="    ")
        if not res.circuit_breakers:
            self._line(out, "  no connectionPool in a DestinationRule for it", "dim", "    ")
        self._cluster_breakers(out, config, node)
        style = "bold red" if res.overflows else "green"
        out.append(f"  tripped (UO) {res.overflows} times in this step\n", style=style)
        out.append("outlier ejection ", style="bold")
        out.append("(outlierDetection)\n", style="dim")
        for line in res.outlier_detection or ("none configured: no host is ever ejected",):
            self._line(out, f"  {line}", indent="    ")
        style = "bold red" if res.no_healthy else "green"
        out.append(f"  no healthy host (UH) {res.no_healthy} times\n", style=style)
        for host, errors, total in res.host_errors:
            colour = "red" if errors else "green"
            out.append(f"  {host:<22} {errors}/{total} 5xx\n", style=colour)
        self._edges_summary(out, node)
        return out

    def _cluster_breakers(self, out: Text, config: Mapping[str, Any] | None, node: str) -> None:
        """What the generated outbound clusters to ``node`` say: Envoy's thresholds, as every
        sidecar that calls it has them (Istio writes 2^32-1 where nothing is configured)."""
        if config is None:
            return
        for name, limits in cluster_breakers(config, node):
            self._line(out, f"  {name}", "cyan", "    ")
            self._line(out, "    " + " · ".join(limits), "", "      ")

    def _sidecar(
        self, out: Text, resources: Sequence[object], pod: str
    ) -> Mapping[str, Any] | None:
        """The sidecar's listeners, routes and clusters (the config, once translated)."""
        source = self.session.proxy_config
        out.append("sidecar config", style="bold")
        out.append(f" ({pod or '-'})\n", style="dim")
        if source is None or not pod:
            out.append("  translator not available in this build\n", style="dim")
            return None
        key = (id(self.session.current), self.session.step, pod)
        config = self._configs.get(key)
        if config is None:
            out.append("  translating…\n", style="dim")
            items = tuple(resources)

            def translate() -> None:
                try:
                    result: Mapping[str, Any] = source(items, pod)  # type: ignore[arg-type]
                except Exception as exc:
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                self._configs[key] = result
                with contextlib.suppress(RuntimeError):  # the app has exited
                    self.app.call_from_thread(self._show)

            self.run_worker(translate, thread=True, group="translate", name=f"translate {pod}")
            return None
        if "error" in config:
            self._line(out, f"  cannot translate: {config['error']}", "red", "    ")
            return None
        summary = summarise_config(config)
        for label, names in (
            ("listeners", summary.listeners),
            ("routes", summary.routes),
            ("clusters", summary.clusters),
        ):
            out.append(f"  {label} ({len(names)})\n", style="bold")
            for name in names[:12]:
                self._line(out, f"    {name}", indent="      ")
            if len(names) > 12:
                out.append(f"    … {len(names) - 12} more\n", style="dim")
        return config

    def _edges_summary(self, out: Text, node: str) -> None:
        assert self.graph is not None
        for label, edges in (
            ("in", self.graph.in_edges(node)),
            ("out", self.graph.out_edges(node)),
        ):
            for e in edges:
                out.append(f"{label:<4}", style="bold")
                out.append_text(self._edge_line(e, self._width - 4))
                out.append("\n")

    @staticmethod
    def _edge_line(e: Edge, width: int = 0) -> Text:
        """``🔒 client->service  40 req  100.0%  p99 4.4 ms`` (the numbers on a line of their own
        when ``width`` is too narrow for both)."""
        colour = e.health.value
        text = Text(f"{e.padlock} {e.name}", style=colour)
        if e.stats is not None:
            numbers = (
                f"{e.stats.requests} req  {fmt.pct(e.stats.success_rate)}  "
                f"p99 {fmt.ms(e.stats.p99_ms)} ms"
            )
            gap = "\n      " if width and text.cell_len + 2 + len(numbers) > width else "  "
            text.append(gap + numbers, style=colour)
        return text

    def _edge_text(self, e: Edge) -> Text:
        out = Text()
        out.append_text(self._edge_line(e, self._width))
        out.append("\n")
        mtls = "no server-side records" if e.mtls is None else f"{e.mtls:.0%} mutual TLS"
        self._line(out, f"connection security: {mtls}")
        s = e.stats
        if s is None:
            out.append("No requests on this edge in this step.\n", style="dim")
            return out
        self._line(
            out,
            f"{s.requests} requests · {fmt.rps(s.rps)} rps · success {fmt.pct(s.success_rate)} · "
            f"p50 {fmt.ms(s.p50_ms)} ms · p99 {fmt.ms(s.p99_ms)} ms",
        )
        self._line(out, "codes  " + "  ".join(f"{c}:{n}" for c, n in s.codes))
        self._line(out, "versions  " + "  ".join(f"{v}:{n}" for v, n in s.versions))
        out.append("flags\n", style="bold")
        for flag, n in s.flags:
            self._line(out, f"  {flag:<5} {n:>6}  {FLAG_MEANING.get(flag, '')}", "red", "    ")
        if not s.flags:
            out.append("  none\n", style="green")
        out.append("recent requests  (x explains one)\n", style="bold")
        for r in recent_requests(self.records, e.client, e.service, limit=10):
            colour = "red" if not r.ok else ""
            self._line(
                out,
                f"  {r.start_time:8.3f}s {r.method:<4} {r.path:<22.22} {r.response_code:>3} "
                f"{r.duration_ms:7.1f} ms {r.destination_version or '-':<3} {r.flags_text}",
                colour,
                "    ",
            )
        return out

    def _explain_text(self, e: Edge) -> Text:
        recent = recent_requests(self.records, e.client, e.service, limit=200)
        if not recent:
            return Text(f"{e.name}: no request to explain in this step.", style="dim")
        request = next((r for r in recent if not r.ok), recent[0])
        out = Text()
        out.append(f"explain {request.method} {request.path}", style="bold underline")
        out.append(f"  id {request.request_id or '-'}\n", style="dim")
        for i, hop in enumerate(explain_request(self.records, request), 1):
            out.append(f"{i}. {hop.edge}\n", style="bold")
            for line in hop.lines:
                self._line(out, f"   {line}", "red" if line.startswith("flag") else "", "     ")
        return out
