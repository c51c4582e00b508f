"""The topology explorer: the mesh as a traffic graph, like Kiali's versioned-app graph.

The left side draws the step's graph (:mod:`mesh.observe.graph`, laid out by
:mod:`tui.graph_canvas`): a box per app with its versioned workloads inside, edges from the
calling workload to the destination workload carrying share, rate, errors, p99, 🔒 for mutual
TLS and response-flag badges, coloured by Kiali's default health thresholds. It follows the step
on screen (``[``/``]``) and redraws twice a second while a run adds records.

Select a node or an edge (arrow keys, or click a box) to see, on the right, the node: its pods,
its sidecar's listeners, routes and clusters (as ``istioctl proxy-config`` lists them), its
circuit breakers as the DestinationRules set them and as the generated Envoy clusters carry
them, and its outlier-ejection state; ``e`` shows the edge (recent requests, codes, flags); ``x``
explains one request on that edge hop by hop. Long Envoy names are folded after their separators
(``|``, ``.``) to the pane's width, never mid-word.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from mesh.observe.graph import GraphEdge, MeshGraph, build_mesh_graph, edge_summary
from mesh.records import RequestRecord
from mesh.topology import build_topology
from tui import fmt
from tui.explain import FLAG_MEANING, explain_request, recent_requests
from tui.graph import Edge, ServiceGraph, TreeRow, build_graph
from tui.graph_widget import GraphView
from tui.proxy import cluster_breakers, node_pods, resilience, summarise_config
from tui.session import Session

__all__ = ["TopologyPane"]

POLL_S = 0.5
WIDE = 140
"""From this many columns on, the graph takes 60 % of the view (else 45 %)."""


class TopologyPane(Horizontal):
    """The graph on the left, details of the selected node or edge on the right."""

    BINDINGS = [  # noqa: RUF012 (Textual's declaration style)
        Binding("n", "show_node", "Node"),
        Binding("e", "show_edge", "Edge"),
        Binding("enter", "show_edge", "Edge", show=False),
        Binding("x", "explain", "Explain"),
    ]

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.graph: ServiceGraph | None = None
        """Service-level edges (``client->service``) as lesson expectations name them."""
        self.mesh: MeshGraph | None = None
        self.records: tuple[RequestRecord, ...] = ()
        self.row: TreeRow | None = None
        """The selected node, and the service-level edge the details show for it."""
        self.picked: GraphEdge | None = None
        """The selected workload-to-workload edge (None when a node is selected)."""
        self.mode = "node"
        self._drawn: tuple[int, int, int, int, int] | None = None
        self._graphs: dict[int, tuple[tuple[int, int, int, int, int], MeshGraph]] = {}
        """Per step: the key it was built for (lesson, run, step, view, records) and the graph."""
        self._configs: dict[tuple[int, int, str], Mapping[str, Any]] = {}
        """Translated Envoy config per (lesson, step, pod): translation is pure, so it is done
        once."""

    def compose(self) -> ComposeResult:
        yield GraphView(id="graph")
        with VerticalScroll(id="topo-detail"):
            yield Static(id="topo-text")

    def on_mount(self) -> None:
        self.set_interval(POLL_S, self._poll)

    def on_resize(self, event: events.Resize) -> None:
        """A wide terminal gives the graph more room (the details read at 45 % below 140)."""
        graph = self.query_one("#graph", GraphView)
        graph.styles.width = "60%" if event.size.width >= WIDE else "45%"

    def _poll(self) -> None:
        """Live: while shown, redraw when the run has new records for the step on screen."""
        if self.display and self.is_on_screen:
            self.refresh_graph()

    def _step_graph(self, step: int) -> MeshGraph | None:
        """The traffic graph of ``step`` in the latest run (kept while its records and view
        stay the same: the step before, for "what changed", is not rebuilt on every poll)."""
        lesson = self.session.current
        live = self.session.latest_run()
        if lesson is None or live is None or not 0 <= step < len(lesson.steps):
            return None
        records = live.records(step)
        view = live.latest_view(step)
        key = (id(lesson), id(live), step, id(view), len(records))
        cached = self._graphs.get(step)
        if cached is not None and cached[0] == key:
            return cached[1]
        declared = [(e.client, e.service) for e in build_graph(lesson).edges]
        graph = build_mesh_graph(records, view.duration_s, declared)
        self._graphs[step] = (key, graph)
        return graph

    def refresh_graph(self) -> None:
        """Show the graph of the current lesson and its latest run's displayed step (nothing is
        redrawn when neither the lesson, the run, the step nor its records changed)."""
        view_widget = self.query_one("#graph", GraphView)
        lesson = self.session.current
        if lesson is None:
            self.graph = self.mesh = None
            view_widget.message("No lesson chosen: pick one in Lessons (1).")
            self._detail(Text("No lesson chosen: pick one in Lessons (1).", style="dim"))
            return
        live = self.session.latest_run()
        step = self.session.step
        view = live.latest_view(step) if live is not None else None
        count = len(live.records(step)) if live is not None else 0
        key = (id(lesson), id(live), step, id(view), count)
        if key == self._drawn and self.graph is not None:
            return  # nothing new to draw: keep the drawing and the selection
        self._drawn = key
        self.records = live.records(step) if live is not None else ()
        traffic = view is not None and bool(self.records)
        rows = view.rows if view is not None and traffic else ()
        shares = dict(view.mtls) if view is not None and traffic else {}
        self.graph = build_graph(lesson, rows, shares=shares)
        built = self._step_graph(step)
        if built is None:  # no run: the app's declared calls, idle
            mesh = build_mesh_graph((), 0.0, [(e.client, e.service) for e in self.graph.edges])
        else:
            mesh = built
        before = self._step_graph(step - 1) if step > 0 else None
        self.mesh = mesh
        title = "no run yet: edges from the app's declared calls" if not self.records else ""
        caption = f"traffic graph · step {step + 1}" + (f" · {title}" if title else "")
        view_widget.show(mesh, before, caption)
        if self.row is not None:
            self._show()
        else:
            self._detail(Text("Select a node (↑/↓) or an edge (→/←).", style="dim"))

    def on_graph_view_selected(self, message: GraphView.Selected) -> None:
        message.stop()
        assert self.graph is not None
        edge = message.edge
        self.picked = edge
        service_edge = self.graph.edge(edge.source, edge.target) if edge is not None else None
        if service_edge is None and self.row is not None and self.row.node == message.node:
            service_edge = self.row.edge
        if service_edge is None:
            inbound = self.graph.in_edges(message.node)
            service_edge = inbound[0] if inbound else None
        self.row = TreeRow(message.node, service_edge, 0)
        self.mode = "edge" if edge is not None else "node"
        self._show()

    def action_show_node(self) -> None:
        """Show the selected node."""
        self.mode = "node"
        self._show()

    def action_show_edge(self) -> None:
        """Show the selected edge (for a node: the edge into it)."""
        self.mode = "edge"
        self._show()

    def action_explain(self) -> None:
        """Explain one request on the selected edge (the latest failure, else the latest)."""
        self.mode = "explain"
        self._show()

    def select(self, node: str, edge: str = "") -> bool:
        """Select ``node``; ``edge`` (``client->service``) is the edge its details show; for
        tests and links."""
        graph = self.query_one("#graph", GraphView)
        if self.graph is None or not graph.select_node(node):
            return False
        service_edge = None
        if edge:
            client, _, service = edge.partition("->")
            service_edge = self.graph.edge(client, service)
            if service_edge is None:
                return False
        else:
            inbound = self.graph.in_edges(node)
            service_edge = inbound[0] if inbound else None
        self.row = TreeRow(node, service_edge, 0)
        self.picked = None
        self.mode = "node"
        self._show()
        return True

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
            self._detail(self._edge_text(row.edge, self.picked))
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

    def _edge_text(self, e: Edge, picked: GraphEdge | None = None) -> Text:
        out = Text()
        if picked is not None:
            lock = f"{picked.padlock} " if picked.padlock else ""
            out.append(f"{picked.name}\n", style=f"bold {picked.health.value}")
            self._line(out, f"{lock}{edge_summary(picked)}", picked.health.value)
            self._line(out, f"health {picked.health.name.lower()} (Kiali's default thresholds)")
            out.append("the service edge\n", style="bold")
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
