"""The service graph: who calls whom, from the app's declared calls and the observed records.

Nodes are the callers Istio's metrics know (``outside`` for a client without a proxy, ``ingress``
for the ingress gateway, else a workload's ``app`` label) and the Kubernetes Services called.
An edge is ``client -> service`` exactly as ``mesh.metrics.edge_key`` names it, so the graph,
the per-edge table and the lesson's expectations all speak of the same edges: the topology
view's side panel and the run view's table use it. The drawn graph, workload to workload, is
:mod:`mesh.observe.graph`'s (drawn by :mod:`tui.graph_canvas`); :meth:`ServiceGraph.tree` is
the older call-tree outline (a node reached twice listed once in full, then as a reference).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mesh.app import Call, Parallel
from mesh.lesson import Lesson
from mesh.metrics import EdgeStats, edge_key
from mesh.observe.graph import Health
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord

__all__ = ["Edge", "Health", "ServiceGraph", "TreeRow", "build_graph", "edge_health", "mtls_share"]


def edge_health(stats: EdgeStats | None) -> Health:
    """An edge's colour, by the same thresholds as the drawn graph (Kiali's defaults, defined
    once in :class:`mesh.observe.graph.Health`): 5xx and requests without a response count
    against the 5xx tolerance, 4xx against the 4xx one; no requests is idle."""
    if stats is None or stats.requests == 0:
        return Health.IDLE
    failed = round((1.0 - stats.success_rate) * stats.requests)
    e4xx = sum(n for code, n in stats.codes if 400 <= code < 500)
    e5xx = max(0, failed - e4xx)  # 5xx, no response (0), and TCP connections with a flag
    return Health.of(stats.requests, e5xx / stats.requests, e4xx / stats.requests)


@dataclass(frozen=True, slots=True)
class Edge:
    """``client -> service`` with its traffic (None when declared but not seen)."""

    client: str
    service: str
    stats: EdgeStats | None = None
    mtls: float | None = None

    @property
    def name(self) -> str:
        """``client->service``, as lesson expectations write edges."""
        return f"{self.client}->{self.service}"

    @property
    def health(self) -> Health:
        """Colour of the edge."""
        return edge_health(self.stats)

    @property
    def padlock(self) -> str:
        """Locked when most requests on the edge were mutual TLS, open when plaintext."""
        if self.mtls is None:
            return " "
        return "🔒" if self.mtls >= 0.5 else "🔓"


@dataclass(frozen=True, slots=True)
class TreeRow:
    """One line of the drawn graph: a node, the edge that reached it, its depth."""

    node: str
    edge: Edge | None
    depth: int
    repeated: bool = False


@dataclass(frozen=True)
class ServiceGraph:
    """Nodes and edges, with the call tree to draw."""

    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]
    roots: tuple[str, ...]

    def edge(self, client: str, service: str) -> Edge | None:
        """The edge ``client -> service``."""
        return next((e for e in self.edges if e.client == client and e.service == service), None)

    def out_edges(self, node: str) -> list[Edge]:
        """Edges leaving ``node``: busiest first (so the tree draws live paths in full), then
        by service name."""
        return sorted(
            (e for e in self.edges if e.client == node),
            key=lambda e: (-(e.stats.requests if e.stats else 0), e.service),
        )

    def in_edges(self, node: str) -> list[Edge]:
        """Edges arriving at ``node``."""
        return sorted((e for e in self.edges if e.service == node), key=lambda e: e.client)

    def tree(self) -> list[TreeRow]:
        """Depth-first call tree from the roots; a node seen before is a ``repeated`` leaf."""
        rows: list[TreeRow] = []
        seen: set[str] = set()

        def visit(node: str, via: Edge | None, depth: int) -> None:
            if node in seen:
                rows.append(TreeRow(node, via, depth, repeated=True))
                return
            seen.add(node)
            rows.append(TreeRow(node, via, depth))
            for e in self.out_edges(node):
                visit(e.service, e, depth + 1)

        for root in self.roots:
            visit(root, None, 0)
        for node in self.nodes:  # islands: nodes no root reaches
            if node not in seen:
                visit(node, None, 0)
        return rows


def _declared_calls(lesson: Lesson) -> set[tuple[str, str]]:
    calls: set[tuple[str, str]] = set()
    for svc in lesson.app.behavior.services.values():
        endpoints = [*svc.endpoints, *(e for v in svc.versions.values() for e in v.endpoints)]
        for endpoint in endpoints:
            for step in endpoint.calls:
                items: Iterable[Call] = step.parallel if isinstance(step, Parallel) else (step,)
                calls.update((svc.name, c.service) for c in items)
    return calls


def _entries(lesson: Lesson) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for traffic in [lesson.spec.traffic, *(s.traffic for s in lesson.steps)]:
        if traffic is not None:
            out.add((traffic.from_, traffic.to))
    return out


def mtls_share(records: Iterable[RequestRecord]) -> dict[tuple[str, str], float]:
    """Per edge, the share of requests the server side saw over mutual TLS.

    Istio sets ``connection_security_policy`` on the server's (destination) report; the client
    side says ``unknown``, so only destination records count.
    """
    total: dict[tuple[str, str], int] = defaultdict(int)
    mtls: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        if r.reporter is not Reporter.DESTINATION:
            continue
        key = edge_key(r)
        total[key] += 1
        if r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS:
            mtls[key] += 1
    return {k: mtls[k] / n for k, n in total.items()}


def build_graph(
    lesson: Lesson,
    rows: Sequence[EdgeStats] = (),
    records: Iterable[RequestRecord] = (),
    *,
    shares: Mapping[tuple[str, str], float] | None = None,
) -> ServiceGraph:
    """The lesson app's graph with the traffic of ``rows`` (``mesh.metrics.edge_stats``).

    ``shares`` are the edges' mutual-TLS shares when already known (a live run keeps them up to
    date as records arrive); else they are worked out from ``records``.
    """
    stats = {(r.client, r.service): r for r in rows}
    if shares is None:
        shares = mtls_share(records)
    pairs = _declared_calls(lesson) | _entries(lesson) | set(stats)
    edges = tuple(Edge(c, s, stats.get((c, s)), shares.get((c, s))) for c, s in sorted(pairs))
    nodes = sorted({c for c, _ in pairs} | {s for _, s in pairs})
    called = {s for _, s in pairs}
    entry_order = {"outside": 0, "ingress": 1}
    roots = sorted((n for n in nodes if n not in called), key=lambda n: (entry_order.get(n, 2), n))
    return ServiceGraph(tuple(nodes), edges, tuple(roots))
