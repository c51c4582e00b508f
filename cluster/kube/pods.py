"""Pods and Deployments as the runner reads them: readiness, why not, sidecars, who a pod is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.kube.generator import CONTAINER, IMPERSONATES
from cluster.kube.manifests import Manifest
from cluster.kube.records import PodFacts

__all__ = [
    "PROXY",
    "PodRef",
    "has_proxy",
    "matches",
    "opts_out_of_injection",
    "pod_facts",
    "pod_problem",
    "pod_ready",
    "service_container",
    "template_labels",
]

PROXY = "istio-proxy"


@dataclass(frozen=True, slots=True)
class PodRef:
    """A running pod: name, namespace, IP and its raw object."""

    name: str
    namespace: str
    ip: str
    obj: Mapping[str, Any]


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec", {})
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def has_proxy(pod: Mapping[str, Any]) -> bool:
    """The pod runs an ``istio-proxy`` (a container, or a native sidecar init container)."""
    return any(c.get("name") == PROXY for c in _containers(pod))


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status", {})
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def pod_problem(pod: Mapping[str, Any]) -> str:
    """Why a pod is not ready, in a few words ("" when it is)."""
    meta = pod.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return "terminating"
    status = pod.get("status", {})
    phase = status.get("phase", "Pending")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"not scheduled: {cond.get('message') or cond.get('reason', '')}"
    statuses = _statuses(pod)
    if not statuses:
        return f"phase {phase}, no container started yet"
    for cs in statuses:
        state = cs.get("state", {})
        if "waiting" in state:
            waiting = state["waiting"]
            reason = waiting.get("reason", "waiting")
            text = f"container {cs.get('name')} {reason}"
            if waiting.get("message"):
                text += f": {waiting['message']}"
            return text
        if not cs.get("ready") and cs.get("name") != CONTAINER:
            if "terminated" in state and cs.get("name") != PROXY:
                return (
                    f"container {cs.get('name')} exited ({state['terminated'].get('reason', '')})"
                )
            if "terminated" not in state:
                return f"container {cs.get('name')} is running but not ready"
    return ""


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Running, not terminating, every container (the sidecar included) ready."""
    return pod.get("status", {}).get("phase") == "Running" and not pod_problem(pod)


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_facts(pod: Mapping[str, Any], services: Sequence[Mapping[str, Any]]) -> PodFacts:
    """What the records need to know about a pod (workload, labels, identity, Services)."""
    meta = pod.get("metadata", {})
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    annotations = meta.get("annotations") or {}
    name = str(meta.get("name", ""))
    workload = str(annotations.get(IMPERSONATES) or "")
    if not workload:
        owner: dict[str, Any] = next(iter(meta.get("ownerReferences") or []), {})
        workload = str(owner.get("name") or name)
        suffix = labels.get("pod-template-hash")
        if owner.get("kind") == "ReplicaSet" and suffix and workload.endswith("-" + suffix):
            workload = workload[: -len(suffix) - 1]
    namespace = str(meta.get("namespace", ""))
    fqdns = tuple(
        f"{s['metadata']['name']}.{namespace}.svc.cluster.local"
        for s in services
        if s.get("metadata", {}).get("namespace", namespace) == namespace
        and matches(s.get("spec", {}).get("selector") or {}, labels)
    )
    return PodFacts(
        name=name,
        namespace=namespace,
        workload=workload,
        app=labels.get("app", labels.get("app.kubernetes.io/name", "")),
        version=labels.get("version", labels.get("app.kubernetes.io/version", "")),
        service_account=str(pod.get("spec", {}).get("serviceAccountName") or "default"),
        services=fqdns,
    )


def template_labels(d: Manifest) -> dict[str, str]:
    labels = d.body.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def opts_out_of_injection(d: Manifest) -> bool:
    """The Deployment's pods ask Istio's injector for no sidecar (``sidecar.istio.io/inject:
    "false"``, the pod label or the older annotation): they run no ``istio-proxy``."""
    meta = d.body.get("spec", {}).get("template", {}).get("metadata", {})
    for where in (meta.get("labels") or {}, meta.get("annotations") or {}):
        if "sidecar.istio.io/inject" in where:
            return str(where["sidecar.istio.io/inject"]).lower() == "false"
    return False


def service_container(d: Manifest) -> str:
    """Name of the Deployment's meshplay service container ("" when it runs none)."""
    for c in d.body.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
        argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        if any(a.startswith("services.") for a in argv):
            return str(c.get("name", ""))
    return ""
