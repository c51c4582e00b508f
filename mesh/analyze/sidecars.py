"""Sidecar checks (istioctl's ``sidecar.SelectorAnalyzer``, and meshplay's egress host check).

A pod's sidecar takes the one Sidecar resource whose workloadSelector selects it, else the one
without selector in its namespace, else the one without selector in the root namespace (the mesh
default). Several candidates at one level leave the choice undefined:

* IST0101: a workloadSelector that matches no pod of the namespace;
* IST0110: several Sidecars with workloadSelectors selecting the same pod;
* IST0111: several Sidecars without workloadSelector in one namespace;
* MPY3007: an ``egress.hosts`` entry ``namespace/host`` that matches no service defined in that
  namespace: the sidecar imports nothing for it (istioctl does not check this).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from mesh.analyze.common import (
    Path,
    diag,
    go_list,
    go_quote,
    host_matches,
    of_kind,
    selector_string,
)
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import Resource, Sidecar
from mesh.topology import Topology

__all__ = ["check_sidecar_egress_hosts", "check_sidecars"]


def _selector(s: Sidecar) -> dict[str, str]:
    return dict(s.workload_selector.labels) if s.workload_selector is not None else {}


def check_sidecars(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0101 selectors matching nothing; IST0110 / IST0111 conflicting Sidecars."""
    sidecars = of_kind(resources, Sidecar)
    unselective: dict[str, list[Sidecar]] = defaultdict(list)
    by_pod: dict[tuple[str, str], list[Sidecar]] = defaultdict(list)
    for s in sidecars:
        selector = _selector(s)
        if not selector:
            unselective[s.namespace].append(s)
            continue
        pods = topo.select_pods(s.namespace, selector)
        if not pods:
            first = sorted(selector)[0]
            yield diag("IST0101", s, ("spec", "workloadSelector", "labels", first),
                       f"Referenced selector not found: {go_quote(selector_string(selector))}",
                       f"no pod of namespace {s.namespace} carries these labels")  # fmt: skip
        for pod in pods:
            by_pod[(pod.namespace, pod.name)].append(s)
    for (namespace, pod_name), selecting in sorted(by_pod.items()):
        if len(selecting) < 2:
            continue
        names = go_list(sorted(x.name for x in selecting))
        for s in selecting:
            yield diag("IST0110", s, ("spec", "workloadSelector"),
                       f"The Sidecars {names} in namespace {go_quote(namespace)} select the same "
                       f"workload pod {go_quote(pod_name)}, which can lead to undefined behavior.",
                       "narrow the selectors so each pod has one Sidecar, or merge them")  # fmt: skip
    for namespace, items in sorted(unselective.items()):
        if len(items) < 2:
            continue
        names = go_list(sorted(x.name for x in items))
        for s in items:
            yield diag("IST0111", s, ("metadata", "name"),
                       f"The Sidecars {names} in namespace {go_quote(namespace)} have no workload "
                       "selector, which can lead to undefined behavior.",
                       "keep one Sidecar without workloadSelector per namespace")  # fmt: skip


def check_sidecar_egress_hosts(
    resources: Sequence[Resource], topo: Topology
) -> Iterator[Diagnostic]:
    """MPY3007: ``egress.hosts`` entries that import no service."""
    for s in of_kind(resources, Sidecar):
        for i, listener in enumerate(s.egress):
            for j, entry in enumerate(listener.hosts):
                namespace, slash, host = entry.partition("/")
                if not slash or host == "*" or "." not in host or namespace == "~":
                    continue  # "*" imports whatever exists; malformed entries are validation's
                if namespace == ".":
                    namespace = s.namespace
                candidates = [
                    svc.hostname for svc in topo.services if namespace in ("*", svc.namespace)
                ]
                if any(host_matches(host, c) for c in candidates):
                    continue
                where = "any namespace" if namespace == "*" else f"namespace {namespace}"
                path: Path = ("spec", "egress", i, "hosts", j)
                yield diag("MPY3007", s, path,
                           f'egress host "{entry}" matches no service defined in {where}: the '
                           "sidecar imports nothing for it",
                           did_you_mean(host, candidates) or "check the host name and the namespace "
                           "prefix (./ is the Sidecar's own namespace, */ any)")  # fmt: skip
