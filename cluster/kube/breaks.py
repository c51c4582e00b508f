"""A lesson's ``break`` on a cluster: knobs, killed pods, a cluster (or its gateway) going down.

Knobs are set from inside each pod's service container (``kubectl exec``, the knob port);
``kill: N`` stops exactly N pods (cheapest deletion cost, then the Deployment scaled down, so
its ReplicaSet does not replace them); ``down`` scales the selected Deployments to 0 in the
selected cluster: a whole cluster of a multi-cluster lesson (``{cluster: cluster2, down: true}``:
every app Deployment placed there, and its east-west gateway), one workload there, or the
east-west gateway alone (``workload: istio-eastwestgateway``). ``restore`` scales back and
resets the knobs. Everything is remembered per (cluster, Deployment), so ``undo`` at the end of
a run puts the app back as it was, in the cluster it was changed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cluster.kube.fleet import Fleet, Member
from cluster.kube.manifests import Manifest
from cluster.kube.multicluster import eastwest_deployment
from cluster.kube.plan import PlanCluster
from cluster.kube.pods import service_container, template_labels
from cluster.kube.records import PodFacts
from mesh.lesson import BreakAction
from mesh.model.multicluster import EASTWEST_GATEWAY
from mesh.runner import RunnerError

__all__ = ["RESET", "Breaks"]

RESET = {"latency_ms": 0.0, "error_rate": 0.0, "refuse": False, "drop_trace_headers": False}
"""The services' knobs at rest."""

Target = tuple[str, Manifest]
"""(cluster, the Deployment as placed there)."""


class Breaks:
    """What breaks changed, per (cluster, Deployment name), until ``undo``."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.killed: dict[tuple[str, str], tuple[Manifest, int]] = {}
        """(cluster, name) -> (the Deployment, the replicas to restore)."""
        self.knobbed: dict[tuple[str, str], Manifest] = {}
        self.saved_logs: list[tuple[PodFacts, str]] = []
        """The proxy logs of pods about to be stopped (their records still count)."""

    def targets(self, action: BreakAction, deployments: list[Manifest]) -> list[Target]:
        """The Deployments a break acts on, each in the cluster it runs in (narrowed to
        ``action.cluster`` when it names one)."""
        fleet = self.fleet
        if action.cluster and action.cluster not in fleet.members:
            raise RunnerError(f'break: no cluster "{action.cluster}" in this run')
        found: list[Target] = []
        gateway_too = action.workload == EASTWEST_GATEWAY or (
            action.cluster and not action.workload
        )
        if gateway_too and fleet.mc is not None and fleet.mc.multi_network:
            gateway = eastwest_deployment()
            found.extend((c, gateway) for c in fleet.clusters_of(EASTWEST_GATEWAY, "istio-system"))
        if action.workload != EASTWEST_GATEWAY:
            for d in deployments:
                found.extend(fleet.placed(d))
        if action.cluster:
            found = [(c, d) for c, d in found if c == action.cluster]
        if not found:
            where = f" in cluster {action.cluster}" if action.cluster else " in the app"
            raise RunnerError(f'break: no Deployment "{action.workload or "*"}"{where}')
        return found

    def apply(self, action: BreakAction, targets: list[Target]) -> None:
        """Knobs, kills, ``down`` or ``restore`` on each target."""
        for cluster, d in targets:
            self._one(cluster, self.fleet.member(cluster), d, action)

    def _one(self, cluster: str, member: Member, d: Manifest, action: BreakAction) -> None:
        key = (cluster, d.name)
        container = service_container(d)
        if action.restore:
            if key in self.killed:
                _, original = self.killed.pop(key)
                member.scale(d, original)
                member.wait_rollout([d])
            if key in self.knobbed or isinstance(member, PlanCluster):
                if container:
                    member.set_knobs(member.workload_pods(d), container, RESET)
                self.knobbed.pop(key, None)
        knobs: dict[str, Any] = dict(action.knobs)
        if knobs:
            if not container:
                raise RunnerError(f"break: {d.name} runs no meshplay service, so it has no knobs")
            member.set_knobs(member.workload_pods(d), container, knobs)
            self.knobbed[key] = d
        replicas = int(d.body.get("spec", {}).get("replicas", 1))
        if action.down:
            self.saved_logs.extend(self.fleet.tagged(cluster, member.proxy_logs(
                [p.obj for p in member.workload_pods(d) if p.obj], None)))  # fmt: skip
            self.killed.setdefault(key, (d, replicas))
            member.scale(d, 0)
        elif action.kill:
            pods = member.workload_pods(d)
            doomed = pods[: action.kill]
            if doomed:
                logs = member.proxy_logs([p.obj for p in doomed if p.obj], None)
                self.saved_logs.extend(self.fleet.tagged(cluster, logs))
                self.killed.setdefault(key, (d, replicas))
                member.kill(d, doomed, len(pods) - len(doomed))

    def undo(self, current: Callable[[str], Manifest | None]) -> None:
        """Scale back what was stopped and reset the knobs that were turned (``current``: the
        Deployment as now applied, by name, when a lesson replaced the app's)."""
        for (cluster, name), (d, replicas) in list(self.killed.items()):
            self.fleet.member(cluster).scale(current(name) or d, replicas)
            self.killed.pop((cluster, name), None)
        for (cluster, name), d in sorted(self.knobbed.items(), key=lambda kv: kv[0]):
            container = service_container(d)
            member = self.fleet.member(cluster)
            if container:
                member.set_knobs(member.workload_pods(d), container, RESET)
            self.knobbed.pop((cluster, name), None)

    def take_logs(self) -> list[tuple[PodFacts, str]]:
        """The saved logs, once."""
        out, self.saved_logs = self.saved_logs, []
        return out


def select(current: list[Manifest], workload: str, cluster: str, fleet: Fleet) -> list[Manifest]:
    """The Deployments a break's ``workload`` names: by name, else by ``app`` label; with only a
    ``cluster``, every Deployment placed there."""
    if not workload:
        return sorted(
            (m for m in current if cluster in {c for c, _ in fleet.placed(m)}),
            key=lambda m: m.name,
        )
    named = [m for m in current if m.name == workload]
    if named:
        return named
    return sorted(
        (m for m in current if template_labels(m).get("app") == workload), key=lambda m: m.name
    )
