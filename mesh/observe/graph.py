"""The mesh as a traffic graph, the way Kiali's versioned-app graph draws it.

Nodes are the apps that send and receive traffic: a service (a box holding its versioned
workloads, ``product`` with ``v1`` and ``v2``), the ingress gateway, the load generator outside
the mesh, and destinations outside the mesh: a ServiceEntry host (an FQDN that is no
``*.svc.cluster.local`` Service), ``PassthroughCluster`` (``ALLOW_ANY`` let a request for an
unknown host through) and ``BlackHoleCluster`` (``REGISTRY_ONLY`` dropped it). Each kind is
drawn as a distinct shape.

An edge goes from the calling workload (app and version) to the destination workload, with what
the caller's sidecar saw (:func:`mesh.metrics.client_side`): the rate, the edge's share of that
caller's traffic (a canary's 90/10 split is two edges of 90 % and 10 %), the error ratio (4xx,
5xx and Envoy's local replies, which are 4xx/5xx too, or no response at all), p99 latency,
the share the server's sidecar received over mutual TLS (the padlock) and the response flags.

Health follows Kiali's default ``health_config``: 5xx (and requests that got no response)
make an edge degraded above 0 % and failing from 10 %; 4xx degraded above 10 % and failing
from 20 %; the worse of the two wins. A node's health is the worst of the edges into it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from mesh.envoy_api.names import BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER
from mesh.metrics import INGRESS_APP, OUTSIDE, percentile
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord

__all__ = [
    "FAILURE_4XX",
    "FAILURE_5XX",
    "EdgeKey",
    "GraphEdge",
    "GraphNode",
    "Health",
    "MeshGraph",
    "NodeKind",
    "build_mesh_graph",
    "changes",
    "edge_summary",
]

DEGRADED_5XX, FAILURE_5XX = 0.0, 10.0
"""Kiali's default tolerance for ``^5\\d\\d$`` (http), in percent: degraded above, failing at."""
DEGRADED_4XX, FAILURE_4XX = 10.0, 20.0
"""Kiali's default tolerance for ``^4\\d\\d$`` (http), in percent."""

PASSTHROUGH = PASSTHROUGH_CLUSTER
BLACKHOLE = BLACKHOLE_CLUSTER
CLUSTER_SUFFIX = ".svc.cluster.local"


class NodeKind(StrEnum):
    """What a node is; each is drawn as its own shape."""

    CLIENT = "client"  # the load generator: no sidecar (Istio's source_workload "unknown")
    GATEWAY = "gateway"
    SERVICE = "service"
    EXTERNAL = "external"  # a ServiceEntry host
    PASSTHROUGH = "passthrough"
    BLACKHOLE = "blackhole"


class Health(StrEnum):
    """Kiali's health states, valued by the colour they are drawn in."""

    HEALTHY = "green"
    DEGRADED = "yellow"
    FAILURE = "red"
    IDLE = "grey50"

    @property
    def rank(self) -> int:
        """Worse is higher: idle < healthy < degraded < failure."""
        return (Health.IDLE, Health.HEALTHY, Health.DEGRADED, Health.FAILURE).index(self)

    @classmethod
    def of(cls, requests: int, ratio_5xx: float, ratio_4xx: float) -> Health:
        """Kiali's ascending threshold check on each code class, the worse one wins."""
        if requests == 0:
            return cls.IDLE
        worst = cls.HEALTHY
        for ratio, degraded, failure in (
            (ratio_5xx, DEGRADED_5XX, FAILURE_5XX),
            (ratio_4xx, DEGRADED_4XX, FAILURE_4XX),
        ):
            pct = ratio * 100
            if pct >= failure and pct > 0:
                return cls.FAILURE
            if pct > degraded:
                worst = cls.DEGRADED
        return worst


EdgeKey = tuple[str, str, str, str]
"""(source node, source version, destination node, destination version); a version is ``""``
when the workload has none (or, at the destination, when no workload answered)."""


@dataclass(frozen=True, slots=True)
class GraphNode:
    """An app: its kind, namespace, versioned workloads and the traffic it received."""

    id: str
    kind: NodeKind
    namespace: str = ""
    workloads: tuple[str, ...] = ()
    rps: float = 0.0
    health: Health = Health.IDLE
    workload_rps: tuple[tuple[str, float], ...] = ()
    """Inbound requests per second per version."""

    @property
    def label(self) -> str:
        """The name shown: ``outside`` is the load generator."""
        return "load generator" if self.kind is NodeKind.CLIENT else self.id


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """Traffic from one workload to another in one step."""

    source: str
    source_version: str
    target: str
    target_version: str
    requests: int = 0
    rps: float = 0.0
    share: float = 0.0
    """Of the calling workload's requests, the part on this edge."""
    errors: int = 0
    ratio_5xx: float = 0.0
    ratio_4xx: float = 0.0
    p99_ms: float = math.nan
    mtls: float | None = None
    """Share of the server side's records that were mutual TLS; None when no server saw any."""
    flags: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> EdgeKey:
        """(source, source version, target, target version)."""
        return (self.source, self.source_version, self.target, self.target_version)

    @property
    def name(self) -> str:
        """``api-gateway v1 -> product v2`` (versions left out where there are none)."""
        src = f"{self.source} {self.source_version}".strip()
        dst = f"{self.target} {self.target_version}".strip()
        return f"{src} -> {dst}"

    @property
    def error_ratio(self) -> float:
        """4xx, 5xx and no-response requests over all requests (0 when idle)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def health(self) -> Health:
        """Kiali's colour of the edge."""
        return Health.of(self.requests, self.ratio_5xx, self.ratio_4xx)

    @property
    def padlock(self) -> str:
        """🔒 when most of the server side's records were mutual TLS, 🔓 when plaintext, ``""``
        when unknown (no server-side record: local replies, destinations outside the mesh)."""
        if self.mtls is None:
            return ""
        return "🔒" if self.mtls >= 0.5 else "🔓"


@dataclass(frozen=True)
class MeshGraph:
    """Nodes and edges of one step, sorted for stable drawings."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def node(self, node_id: str) -> GraphNode | None:
        """The node named ``node_id``."""
        return next((n for n in self.nodes if n.id == node_id), None)

    def edge(self, key: EdgeKey) -> GraphEdge | None:
        """The edge with ``key``."""
        return next((e for e in self.edges if e.key == key), None)

    def roots(self) -> list[str]:
        """Where traffic enters: nodes nothing calls, the load generator and ingress first."""
        called = {e.target for e in self.edges}
        order = {NodeKind.CLIENT: 0, NodeKind.GATEWAY: 1}
        free = [n for n in self.nodes if n.id not in called]
        return [n.id for n in sorted(free, key=lambda n: (order.get(n.kind, 2), n.id))]

    def namespaces(self) -> list[str]:
        """The namespaces of the nodes, sorted."""
        return sorted({n.namespace for n in self.nodes if n.namespace})

    def filtered(
        self, *, hide_idle: bool = False, only_errors: bool = False, namespace: str = ""
    ) -> MeshGraph:
        """A smaller graph: without idle edges, with only the edges that saw errors or response
        flags, or only the edges touching ``namespace``; nodes left without an edge go too
        (unless nothing was filtered out by the edge rules)."""
        ns = {n.id: n.namespace for n in self.nodes}
        edges = list(self.edges)
        if hide_idle:
            edges = [e for e in edges if e.requests]
        if only_errors:
            edges = [e for e in edges if e.errors or e.flags]
        if namespace:
            edges = [e for e in edges if namespace in (ns.get(e.source), ns.get(e.target))]
        if not (hide_idle or only_errors or namespace):
            return self
        keep = {e.source for e in edges} | {e.target for e in edges}
        if namespace:
            keep |= {n.id for n in self.nodes if n.namespace == namespace}
        return MeshGraph(tuple(n for n in self.nodes if n.id in keep), tuple(edges))


def node_kind(name: str, service_fqdn: str = "") -> NodeKind:
    """The kind of a node from its name and, for a destination, Istio's
    ``destination_service`` (an FQDN outside ``svc.cluster.local`` is a ServiceEntry host)."""
    if name == OUTSIDE:
        return NodeKind.CLIENT
    if name == "ingress":
        return NodeKind.GATEWAY
    if name == PASSTHROUGH:
        return NodeKind.PASSTHROUGH
    if name == BLACKHOLE:
        return NodeKind.BLACKHOLE
    if "." in service_fqdn and not service_fqdn.endswith(CLUSTER_SUFFIX):
        return NodeKind.EXTERNAL
    return NodeKind.SERVICE


def _source(r: RequestRecord) -> str:
    if r.source_workload in ("", RequestRecord.UNKNOWN):
        return OUTSIDE
    if INGRESS_APP in (r.source_app, r.source_workload):
        return "ingress"
    return r.source_app or r.source_workload


def _target(r: RequestRecord) -> str:
    service = r.destination_service
    if service in (PASSTHROUGH, BLACKHOLE) or r.destination_service_name in (
        PASSTHROUGH,
        BLACKHOLE,
    ):
        return r.destination_service_name
    if "." in service and not service.endswith(CLUSTER_SUFFIX):
        return service  # a ServiceEntry host keeps its full name
    return r.destination_service_name


def _is_error(r: RequestRecord) -> bool:
    if r.request_protocol == "tcp":
        return bool(r.response_flags)
    return r.response_code >= 400 or r.response_code == 0


def _version(version: str) -> str:
    return "" if version == RequestRecord.UNKNOWN else version


def _key(r: RequestRecord) -> EdgeKey:
    """A local reply (``UO``, ``NR``...) reached no workload: Istio labels its destination
    version ``unknown``, and the edge ends at the service itself."""
    return (_source(r), _version(r.source_version), _target(r), _version(r.destination_version))


@dataclass
class _Tally:
    durations: list[float]
    errors: int = 0
    e5xx: int = 0
    e4xx: int = 0
    flags: Counter[str] | None = None


def build_mesh_graph(
    records: Iterable[RequestRecord],
    duration_s: float,
    declared: Iterable[tuple[str, str]] = (),
    namespaces: Mapping[str, str] | None = None,
) -> MeshGraph:
    """The graph of one step's records.

    ``declared`` are ``(caller, service)`` pairs known without traffic (the app's declared
    calls, the lesson's traffic): they are drawn as idle edges between the apps when no record
    joins them. ``namespaces`` gives a node's namespace when no record does.
    """
    tallies: dict[EdgeKey, _Tally] = {}
    mtls_total: Counter[EdgeKey] = Counter()
    mtls_yes: Counter[EdgeKey] = Counter()
    ns: dict[str, str] = dict(namespaces or {})
    fqdn: dict[str, str] = {}
    versions: dict[str, set[str]] = defaultdict(set)
    for r in records:
        key = _key(r)
        src, src_v, dst, dst_v = key
        if r.reporter is Reporter.DESTINATION:
            mtls_total[key] += 1
            if r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS:
                mtls_yes[key] += 1
            if r.source_workload not in ("", RequestRecord.UNKNOWN):
                continue  # the caller's sidecar reported this request
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally([], flags=Counter())
        tally.durations.append(r.duration_ms)
        if _is_error(r):
            tally.errors += 1
            if r.response_code >= 500 or r.response_code == 0:
                tally.e5xx += 1
            else:
                tally.e4xx += 1
        assert tally.flags is not None
        tally.flags.update(r.response_flags)
        if src != OUTSIDE and r.source_namespace not in ("", RequestRecord.UNKNOWN):
            ns.setdefault(src, r.source_namespace)
        if r.destination_namespace not in ("", RequestRecord.UNKNOWN):
            ns.setdefault(dst, r.destination_namespace)
        fqdn.setdefault(dst, r.destination_service)
        if src_v:
            versions[src].add(src_v)
        if dst_v:
            versions[dst].add(dst_v)
    per_caller: Counter[tuple[str, str]] = Counter()
    for (src, src_v, _, _), tally in tallies.items():
        per_caller[(src, src_v)] += len(tally.durations)
    edges: list[GraphEdge] = []
    for key, tally in tallies.items():
        n = len(tally.durations)
        total = mtls_total.get(key, 0)
        assert tally.flags is not None
        edges.append(
            GraphEdge(
                *key,
                requests=n,
                rps=n / duration_s if duration_s > 0 else 0.0,
                share=n / per_caller[(key[0], key[1])],
                errors=tally.errors,
                ratio_5xx=tally.e5xx / n,
                ratio_4xx=tally.e4xx / n,
                p99_ms=percentile(tally.durations, 99),
                mtls=mtls_yes.get(key, 0) / total if total else None,
                flags=tuple(sorted(tally.flags.items())),
            )
        )
    seen_pairs = {(e.source, e.target) for e in edges}
    for caller, service in declared:
        if (caller, service) not in seen_pairs:
            edges.append(GraphEdge(caller, "", service, ""))
            seen_pairs.add((caller, service))
    ids = {e.source for e in edges} | {e.target for e in edges}
    nodes = []
    for node_id in sorted(ids):
        inbound = [e for e in edges if e.target == node_id]
        per_version: Counter[str] = Counter()
        for e in inbound:
            if e.target_version:
                per_version[e.target_version] += e.requests
        worst = max((e.health for e in inbound), key=lambda h: h.rank, default=Health.IDLE)
        rps = sum(e.rps for e in inbound)
        nodes.append(
            GraphNode(
                id=node_id,
                kind=node_kind(node_id, fqdn.get(node_id, "")),
                namespace=ns.get(node_id, ""),
                workloads=tuple(sorted(versions[node_id])),
                rps=rps,
                health=worst,
                workload_rps=tuple(
                    (v, c / duration_s if duration_s > 0 else 0.0)
                    for v, c in sorted(per_version.items())
                ),
            )
        )
    edges.sort(key=lambda e: e.key)
    return MeshGraph(tuple(nodes), tuple(edges))


def changes(before: MeshGraph, after: MeshGraph, share_points: float = 0.05) -> dict[EdgeKey, str]:
    """What changed from ``before`` to ``after``, per edge: a new or gone edge (among those
    with traffic), a share that moved by more than ``share_points``, a change of health."""
    out: dict[EdgeKey, str] = {}
    old = {e.key: e for e in before.edges if e.requests}
    new = {e.key: e for e in after.edges if e.requests}
    for key, e in new.items():
        was = old.get(key)
        if was is None:
            out[key] = "new"
            continue
        notes = []
        if abs(e.share - was.share) > share_points:
            notes.append(f"share {was.share:.0%} -> {e.share:.0%}")
        if e.health is not was.health:
            notes.append(f"health {was.health.name.lower()} -> {e.health.name.lower()}")
        if notes:
            out[key] = ", ".join(notes)
    for key in old.keys() - new.keys():
        out[key] = "gone"
    return out


def edge_summary(e: GraphEdge) -> str:
    """``90% 36/s err 2% p99 12ms UO`` (the numbers an edge carries)."""
    if not e.requests:
        return "idle"
    parts = [f"{e.share:.0%}", f"{e.rps:.0f}/s" if e.rps >= 10 else f"{e.rps:.1f}/s"]
    if e.errors:
        parts.append(f"err {e.error_ratio:.0%}" if e.error_ratio >= 0.01 else "err <1%")
    if not math.isnan(e.p99_ms):
        parts.append(f"p99 {e.p99_ms:.0f}ms" if e.p99_ms >= 10 else f"p99 {e.p99_ms:.1f}ms")
    if e.flags:
        parts.append(",".join(f for f, _ in e.flags))
    return " ".join(parts)
