"""The clusters of one run, one kube context each, and which of them gets which object.

A single-cluster lesson has one member, named ``""``, and every object goes to it: nothing
changes. A multi-cluster lesson (``clusters:``, docs/multicluster.md) has one member per
declared cluster, and objects are placed as on Istio's multi-primary install:

* a Deployment runs where the lesson places it (``clusters[].workloads``; with that cluster's
  replica count when the lesson gives one; unplaced: the first cluster), and nowhere else;
* every other object goes to every cluster: the Namespace and Services (Istio merges a
  Service's endpoints across clusters by its name and namespace, so the Service must exist in
  every cluster that calls it, even one that runs none of its pods), ServiceAccounts, and all
  Istio configuration (multi-primary: each cluster's istiod reads only its own cluster's
  configuration, so a DestinationRule must be in every primary to be seen by every proxy).

The aggregate verbs (``apply``, ``delete``, ``wait_rollout``, ``sync_state``,
``wait_converged``, ``proxy_logs``) act on every member, each with its own placed objects; the
records read from a member carry its cluster name (:class:`~cluster.kube.records.PodFacts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from cluster.kube.convergence import ProxySync
from cluster.kube.live import LiveCluster
from cluster.kube.manifests import Manifest
from cluster.kube.plan import PlanCluster
from cluster.kube.records import PodFacts
from mesh.model.multicluster import MultiCluster

__all__ = ["Fleet", "Member"]

Member = LiveCluster | PlanCluster
Key = tuple[str, str, str]
_SEP = "\t"


class Fleet:
    """Members by cluster name (``""``: the one cluster of a single-cluster lesson)."""

    def __init__(self, members: Mapping[str, Member], mc: MultiCluster | None) -> None:
        self.members = dict(members)
        self.mc = mc
        self.versions: dict[str, dict[Key, str]] = {name: {} for name in self.members}
        """Per member: the resourceVersion of each object as last applied there."""

    @property
    def home(self) -> str:
        """The first cluster: where the app is installed, and unplaced things run."""
        return next(iter(self.members))

    @property
    def multi(self) -> bool:
        """More than one cluster."""
        return self.mc is not None

    def member(self, name: str) -> Member:
        """A member by cluster name (the home cluster for ``""``)."""
        return self.members[name or self.home]

    def clusters_of(self, deployment: str, namespace: str = "") -> list[str]:
        """The clusters a Deployment's pods run in."""
        if self.mc is None:
            return [self.home]
        return [p.cluster for p in self.mc.placements_of(deployment, namespace)
                if p.cluster in self.members]  # fmt: skip

    def placed(self, m: Manifest) -> list[tuple[str, Manifest]]:
        """Where ``m`` goes: (cluster, the manifest as applied there)."""
        if self.mc is None:
            return [(self.home, m)]
        if m.kind != "Deployment":
            return [(name, m) for name in self.members]
        out = []
        for p in self.mc.placements_of(m.name, m.namespace):
            if p.cluster not in self.members:
                continue
            if p.replicas is None:
                out.append((p.cluster, m))
                continue
            copy = Manifest(m.body, m.source)
            copy.body.setdefault("spec", {})["replicas"] = p.replicas
            out.append((p.cluster, copy))
        return out

    def by_member(self, manifests: Iterable[Manifest]) -> dict[str, list[Manifest]]:
        """``manifests`` split by where they go (every member present, maybe with none)."""
        out: dict[str, list[Manifest]] = {name: [] for name in self.members}
        for m in manifests:
            for name, placed in self.placed(m):
                out[name].append(placed)
        return out

    def unplaced(self, app: Iterable[Manifest]) -> dict[str, list[Manifest]]:
        """Per member, the app's Deployments the lesson runs elsewhere (``meshplay cluster
        up`` applied the whole app to every context: the run removes them)."""
        out: dict[str, list[Manifest]] = {name: [] for name in self.members}
        if self.mc is None:
            return out
        for m in app:
            if m.kind == "Deployment":
                where = {name for name, _ in self.placed(m)}
                for name in self.members:
                    if name not in where:
                        out[name].append(m)
        return out

    # -- aggregate verbs -------------------------------------------------------------------

    def apply(self, manifests: Sequence[Manifest]) -> dict[Key, str]:
        """Apply each manifest where it goes; the new resourceVersions (the last member's)."""
        out: dict[Key, str] = {}
        for name, placed in self.by_member(manifests).items():
            if placed:
                versions = self.members[name].apply(placed)
                self.versions[name].update(versions)
                out.update(versions)
        return out

    def delete(self, manifests: Sequence[Manifest]) -> None:
        """Delete each manifest where it went."""
        for name, placed in self.by_member(manifests).items():
            if placed:
                self.members[name].delete(placed)

    def wait_rollout(self, deployments: Sequence[Manifest]) -> None:
        """Until each Deployment is ready in every cluster it runs in."""
        for name, placed in self.by_member(deployments).items():
            self.members[name].wait_rollout(placed)

    def sync_state(self) -> dict[str, ProxySync]:
        """Every member's proxies' sync state, keyed ``cluster<TAB>proxy``."""
        return {f"{name}{_SEP}{proxy}": sync for name, member in self.members.items()
                for proxy, sync in member.sync_state().items()}  # fmt: skip

    def wait_converged(
        self, applied: Mapping[Key, str], deleted: Iterable[Key], before: Mapping[str, ProxySync]
    ) -> None:
        """Until every member's istiod holds what was applied there and its proxies acked."""
        gone = list(deleted)
        for name, member in self.members.items():
            mine = {k: self.versions[name].get(k, "") for k in applied}
            prefix = name + _SEP
            then = {k.removeprefix(prefix): v for k, v in before.items() if k.startswith(prefix)}
            member.wait_converged(mine, gone, then)

    def proxy_logs(self, since_s: float | None) -> list[tuple[PodFacts, str]]:
        """Every member's mesh pods' ``istio-proxy`` logs, each pod tagged with its cluster."""
        out = []
        for name, member in self.members.items():
            out.extend(self.tagged(name, member.proxy_logs(member.mesh_pods(), since_s)))
        return out

    def tagged(self, name: str, logs: Iterable[tuple[PodFacts, str]]) -> list[tuple[PodFacts, str]]:
        """``logs`` read from member ``name``, their pods tagged with its cluster."""
        if self.mc is None:
            return list(logs)
        return [(replace(facts, cluster=name), text) for facts, text in logs]
