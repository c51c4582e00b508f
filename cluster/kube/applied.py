"""What the runner applied to the clusters, each push's changes, and putting it all back.

:func:`push_changes` applies what is new or changed in a mesh state and deletes what left it,
one object at a time in dependency order (so a failure leaves :class:`Applied` exact), then
waits for the Deployments and for every cluster's istiod and proxies to hold the Istio part.

``close`` deletes the step's generator pods, undoes the breaks (:mod:`cluster.kube.breaks`) and
replaces the lesson's resources with the app as it was, in every cluster of the run, each task
retried while an API does not answer (:func:`retry`); what could not be removed is reported with
the ``kubectl delete -l meshplay.dev/run=ID`` that removes it (:func:`leftover_hint`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.kube.api import KubeError
from cluster.kube.fleet import Fleet
from cluster.kube.live import LiveCluster
from cluster.kube.manifests import PART_LABEL, RUN_LABEL, Manifest, is_istio, ordered_for_apply
from mesh.runner import RunnerError

__all__ = [
    "Applied",
    "delete_generators",
    "leftover_hint",
    "push_changes",
    "restore_app",
    "retry",
]

Key = tuple[str, str, str]


@dataclass
class Applied:
    """What the runner has applied: manifests by key, and the app's own versions."""

    current: dict[Key, Manifest] = field(default_factory=dict)
    app: dict[Key, Manifest] = field(default_factory=dict)


def push_changes(fleet: Fleet, applied: Applied, desired: dict[Key, Manifest]) -> None:
    """Make the clusters hold ``desired``: apply the new and changed, delete what is gone,
    wait for the rollouts and, when Istio resources changed, for istiod and the proxies."""
    current = applied.current
    changed = [
        m
        for k, m in desired.items()
        if k not in current or current[k].fingerprint() != m.fingerprint()
    ]
    removed = [m for k, m in current.items() if k not in desired]
    if not changed and not removed:
        return
    istio = any(is_istio(m) for m in (*changed, *removed))
    before = fleet.sync_state() if istio else {}
    versions: dict[Key, str] = {}
    for m in ordered_for_apply(changed):  # one by one: a failure leaves `current` exact
        versions.update(fleet.apply([m]))
        current[m.key] = m
    for m in reversed(ordered_for_apply(removed)):
        fleet.delete([m])
        current.pop(m.key, None)
    fleet.wait_rollout([m for m in changed if m.kind == "Deployment"])
    if istio:
        fleet.wait_converged(
            {k: v for k, v in versions.items() if is_istio(desired[k])},
            [m.key for m in removed if is_istio(m)],
            before,
        )


def delete_generators(fleet: Fleet, namespace: str, run_id: str) -> None:
    """Delete the run's generator pods in every cluster."""
    for member in fleet.members.values():
        if isinstance(member, LiveCluster):
            selector = {PART_LABEL: "loadgen", RUN_LABEL: run_id}
            for p in member.pods(namespace, selector):
                member.api.delete("v1", "Pod", namespace, p["metadata"]["name"])


def restore_app(fleet: Fleet, applied: Applied) -> None:
    """Delete what only the lesson applied, re-apply the app's objects a lesson changed."""
    current, app = applied.current, applied.app
    lesson_only = [m for k, m in current.items() if k not in app]
    changed_app = [
        m for k, m in app.items() if k not in current or current[k].fingerprint() != m.fingerprint()
    ]
    fleet.delete(lesson_only)
    for m in lesson_only:
        current.pop(m.key, None)
    if changed_app:
        fleet.apply(changed_app)
        for m in changed_app:
            current[m.key] = m


def retry(task: Callable[[], None], budget_s: float) -> str | None:
    """Run ``task``, retrying while the API does not answer; the last error (None: done)."""
    deadline = time.monotonic() + budget_s
    delay = 0.5
    while True:
        try:
            task()
            return None
        except KubeError as exc:
            if exc.status != 0 or time.monotonic() + delay > deadline:
                return str(exc)
        except RunnerError as exc:
            return str(exc)
        time.sleep(delay)
        delay = min(delay * 2, 4.0)


def leftover_hint(problems: list[str], run_id: str) -> str:
    """The report of an incomplete cleanup, with the command that removes the rest."""
    return (
        "cleanup incomplete (" + "; ".join(problems) + "); remove the rest with: "
        "kubectl delete pods,virtualservices,destinationrules,gateways,serviceentries,"
        "sidecars,peerauthentications,authorizationpolicies,requestauthentications,"
        f"networkpolicies -A -l {RUN_LABEL}={run_id}   (in every context of the run; or "
        "meshplay cluster down)"
    )
