"""lesson.yaml's ``clusters:`` and ``networks:``: checked with positioned diagnostics and turned
into the :class:`~mesh.model.multicluster.MultiCluster` value that rides with the app's resources.

Every problem is reported at its key in lesson.yaml (MPY4001 for a malformed value, MPY4003 for a
name that refers to nothing: a Deployment the app lacks, a network no cluster is on, a cluster a
break names), all at once, as the rest of the lesson loader does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mesh.app import App
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.lesson.model import BreakAction, LessonSpec
from mesh.lesson.positions import Where
from mesh.lesson.positions import lesson_diagnostic as _diag
from mesh.model.common import SourceMap
from mesh.model.kubernetes import Deployment
from mesh.model.multicluster import EASTWEST_GATEWAY, MultiCluster

__all__ = ["check_breaks", "declare_clusters", "parse_locality_text"]


def parse_locality_text(text: str) -> str | None:
    """The problem with a ``region/zone/subzone`` string, or None when it is well formed
    (at most three parts; a part may be empty only when every part after it is)."""
    parts = text.split("/")
    if len(parts) > 3:
        return f'locality "{text}" has {len(parts)} parts: it is region/zone/subzone'
    if any(not p for p in parts):
        return (
            f'locality "{text}" has an empty part: write region, region/zone or region/zone/subzone'
        )
    return None


def declare_clusters(
    spec: LessonSpec, app: App, source: SourceMap, lesson: str, out: list[Diagnostic]
) -> App:
    """``app`` with the lesson's :class:`MultiCluster` among its resources (unchanged when the
    lesson declares no clusters); problems are appended to ``out``."""
    if not spec.clusters:
        if spec.networks:
            out.append(
                _diag(
                    "MPY4001",
                    "networks: without clusters: declares nothing",
                    source,
                    ("networks",),
                    lesson,
                    hint="declare the clusters first (docs/multicluster.md)",
                )
            )
        return app
    deployments = {r.name for r in app.resources if isinstance(r, Deployment)}
    seen: set[str] = set()
    for i, cluster in enumerate(spec.clusters):
        where: Where = ("clusters", i)
        if not cluster.name:
            out.append(_diag("MPY4001", "a cluster needs a name", source, (*where, "name"), lesson))
        elif cluster.name in seen:
            out.append(
                _diag(
                    "MPY4001",
                    f'cluster "{cluster.name}" is declared twice',
                    source,
                    (*where, "name"),
                    lesson,
                )
            )
        seen.add(cluster.name)
        if cluster.locality and (problem := parse_locality_text(cluster.locality)):
            out.append(_diag("MPY4001", problem, source, (*where, "locality"), lesson))
        placed: set[str] = set()
        for j, placement in enumerate(cluster.placements()):
            at: Where = (*where, "workloads", j)
            if placement.name not in deployments:
                out.append(
                    _diag(
                        "MPY4003",
                        f'workload "{placement.name}" is not a Deployment of the app',
                        source,
                        at,
                        lesson,
                        hint=did_you_mean(placement.name, deployments),
                    )
                )
            if placement.name in placed:
                out.append(
                    _diag(
                        "MPY4001",
                        f'workload "{placement.name}" is placed twice in cluster "{cluster.name}"',
                        source,
                        at,
                        lesson,
                        hint="give one placement its replicas instead",
                    )
                )
            placed.add(placement.name)
            if placement.replicas is not None and placement.replicas < 0:
                out.append(
                    _diag(
                        "MPY4001",
                        f"replicas must be 0 or more, got {placement.replicas}",
                        source,
                        (*at, "replicas"),
                        lesson,
                    )
                )
            if placement.locality and (problem := parse_locality_text(placement.locality)):
                out.append(_diag("MPY4001", problem, source, (*at, "locality"), lesson))
    networks = {c.network for c in spec.clusters}
    declared_pairs: set[frozenset[str]] = set()
    for k, link in enumerate(spec.networks):
        where = ("networks", k, "between")
        if len(link.between) != 2:
            out.append(
                _diag(
                    "MPY4001",
                    f"between names two networks, got {len(link.between)}",
                    source,
                    where,
                    lesson,
                )
            )
            continue
        for n, name in enumerate(link.between):
            if name not in networks:
                shown = sorted(x or '""' for x in networks)
                out.append(
                    _diag(
                        "MPY4003",
                        f'network "{name}" is not the network of any cluster',
                        source,
                        (*where, n),
                        lesson,
                        hint=did_you_mean(name, networks) or f"networks: {', '.join(shown)}",
                    )
                )
        pair = frozenset(link.between)
        if pair in declared_pairs:
            out.append(
                _diag(
                    "MPY4001",
                    f"the latency between {' and '.join(link.between)} is declared twice",
                    source,
                    where,
                    lesson,
                )
            )
        declared_pairs.add(pair)
        if link.latency.p99 is not None and link.latency.p99.seconds < link.latency.median.seconds:
            out.append(
                _diag(
                    "MPY4001",
                    "latency p99 is below its median",
                    source,
                    ("networks", k, "latency", "p99"),
                    lesson,
                )
            )
    # built, not read from a manifest: no file origin (nothing applies it to a cluster; it
    # says which clusters there are)
    origin = source.position(("clusters",))
    declaration = replace(
        MultiCluster.of(spec.clusters, spec.networks),
        source=SourceMap.empty(f"<clusters: of {origin.file}:{origin.line}>"),
    )
    return replace(app, resources=(*app.resources, declaration))


def check_breaks(
    breaks: Sequence[tuple[Where, BreakAction]],
    *,
    clusters: set[str],
    deployments: set[str],
    source: SourceMap,
    lesson: str,
    out: list[Diagnostic],
) -> None:
    """MPY4003 for a break's workload or cluster that does not exist; MPY4001 for a break that
    names neither."""
    known = deployments | ({EASTWEST_GATEWAY} if clusters else set())
    for path, b in breaks:
        if not b.workload and not b.cluster:
            out.append(
                _diag(
                    "MPY4001",
                    "a break names a workload, a cluster, or both",
                    source,
                    path,
                    lesson,
                    hint="e.g. {workload: product-v2, kill: 1} or {cluster: cluster2, down: true}",
                )
            )
        if b.workload and b.workload not in known:
            out.append(
                _diag(
                    "MPY4003",
                    f'workload "{b.workload}" is not a Deployment of the app',
                    source,
                    (*path, "workload"),
                    lesson,
                    hint=did_you_mean(b.workload, known),
                )
            )
        if b.cluster and b.cluster not in clusters:
            hint = (
                did_you_mean(b.cluster, clusters)
                if clusters
                else ("the lesson declares no clusters: (docs/multicluster.md)")
            )
            out.append(
                _diag(
                    "MPY4003",
                    f'cluster "{b.cluster}" is not a cluster of the lesson',
                    source,
                    (*path, "cluster"),
                    lesson,
                    hint=hint,
                )
            )
