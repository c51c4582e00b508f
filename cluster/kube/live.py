"""What the ``kube`` executor does to a real cluster, one verb per method (:class:`LiveCluster`).

:class:`cluster.kube.plan.PlanCluster` has the same methods and only writes down what they
would do (``--dry-run``). Every wait is bounded and its error names the object that did not get
there and why (the container's waiting reason, the proxy's unacknowledged xDS type).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.kube.api import KubeApi, KubeError, selector_text
from cluster.kube.convergence import (
    QUIET_S,
    ProxySync,
    config_versions,
    parse_syncz,
    pending_proxies,
)
from cluster.kube.generator import (
    CONTAINER,
    GeneratorEvent,
    is_generator,
    parse_event,
)
from cluster.kube.manifests import FIELD_MANAGER, KNOB_PORT, Manifest, ordered_for_apply
from cluster.kube.pods import PROXY, PodRef, has_proxy, pod_facts, pod_problem, pod_ready
from cluster.kube.records import PodFacts
from cluster.kube.telemetry import ISTIO_NAMESPACE

__all__ = ["LiveCluster", "Timeouts"]

_BAD_WAITING = {
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CrashLoopBackOff": "the container keeps crashing",
}


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the runner's waits, in seconds."""

    rollout_s: float = 300.0
    converge_s: float = 30.0
    generator_start_s: float = 180.0
    settle_s: float = 5.0
    """After the generator is done: requests still in flight, Envoy's 1 s log flush."""
    scrape_s: float = 20.0
    """Before the metrics cross-check: Prometheus scrapes every 15 s."""
    cleanup_s: float = 20.0
    """How long cleanup keeps retrying an API that does not answer."""
    poll_s: float = 0.5


class LiveCluster:
    """The runner's verbs on a real cluster through :class:`~cluster.kube.api.KubeApi`."""

    def __init__(self, api: KubeApi, namespace: str, timeouts: Timeouts | None = None,
                 report: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.api = api
        self.namespace = namespace
        self.timeouts = timeouts or Timeouts()
        self.report = report or (lambda _text: None)

    # -- objects ---------------------------------------------------------------------------

    def apply(self, manifests: Sequence[Manifest]) -> dict[tuple[str, str, str], str]:
        """Server-side apply each manifest (in dependency order); their new resourceVersions."""
        versions = {}
        for m in ordered_for_apply(manifests):
            stored = self.api.apply(m)
            versions[m.key] = str(stored.get("metadata", {}).get("resourceVersion", ""))
        return versions

    def delete(self, manifests: Sequence[Manifest]) -> None:
        """Delete each (gone already is fine)."""
        for m in reversed(ordered_for_apply(manifests)):
            self.api.delete(m.api_version, m.kind, m.namespace, m.name)

    # -- waits -----------------------------------------------------------------------------

    def pods(
        self, namespace: str, selector: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Pods of a namespace (matching ``selector``)."""
        items, _ = self.api.list("v1", "Pod", namespace, selector_text(selector or {}))
        return items

    def wait_rollout(self, deployments: Sequence[Manifest]) -> None:
        """Until every Deployment has its replicas, each pod running with every container (the
        ``istio-proxy`` included) ready; KubeError naming the first pod that is not."""
        deadline = time.monotonic() + self.timeouts.rollout_s
        pending = list(deployments)
        last: dict[str, str] = {}
        while pending:
            still = []
            version = ""
            for d in pending:
                problem, version = self._rollout_problem(d)
                if problem:
                    still.append(d)
                    last[d.name] = problem
            pending = still
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                d = pending[0]
                raise KubeError(
                    f"Deployment {d.namespace}/{d.name} is not ready after "
                    f"{self.timeouts.rollout_s:g}s: {last[d.name]} "
                    f"(kubectl -n {d.namespace} describe pods -l {selector_text(self._selector(d))})"
                )
            self._wait_for_pod_change(pending[-1], version, min(remaining, 5.0))

    @staticmethod
    def _selector(d: Manifest) -> dict[str, str]:
        labels = d.body.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def _rollout_problem(self, d: Manifest) -> tuple[str, str]:
        """Why the Deployment is not ready ("" when it is), and the pod list's resourceVersion."""
        want = int(d.body.get("spec", {}).get("replicas", 1))
        items, version = self.api.list("v1", "Pod", d.namespace, selector_text(self._selector(d)))
        pods = [p for p in items if not is_generator(p)]
        live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
        ready = [p for p in live if pod_ready(p)]
        if len(ready) == want and len(live) == want:
            return "", version
        bad = [p for p in live if not pod_ready(p)]
        if bad:
            name = bad[0].get("metadata", {}).get("name", "")
            return f"pod {name}: {pod_problem(bad[0]) or 'not ready'}", version
        return f"{len(ready)}/{want} pods ready ({len(live)} running)", version

    def _wait_for_pod_change(self, d: Manifest, version: str, timeout_s: float) -> None:
        """Block until a pod of ``d`` changes after the list at ``version`` (or the timeout)."""
        try:
            for _ in self.api.watch(
                "v1", "Pod", d.namespace, label_selector=selector_text(self._selector(d)),
                resource_version=version, timeout_s=max(1.0, timeout_s),
            ):  # fmt: skip
                return
        except KubeError as exc:
            if exc.status == 0:
                raise
            time.sleep(min(timeout_s, self.timeouts.poll_s))  # 410 Gone and the like: list again

    def istiod(self) -> dict[str, Any] | None:
        """A running istiod pod (None when there is none)."""
        for pod in self.pods(ISTIO_NAMESPACE, {"app": "istiod"}):
            if pod.get("status", {}).get("phase") == "Running":
                return pod
        return None

    def istiod_debug(self, path: str) -> str:
        """``pilot-discovery request GET <path>`` in istiod (its debug endpoints, from localhost)."""
        pod = self.istiod()
        if pod is None:
            raise KubeError(f"no running istiod in {ISTIO_NAMESPACE}")
        name = pod["metadata"]["name"]
        code, out, err = self.api.exec(
            ISTIO_NAMESPACE, name, "discovery", ["pilot-discovery", "request", "GET", path]
        )
        if code != 0:
            raise KubeError(f"istiod {path}: {(err or out).strip()}")
        return out

    def sync_state(self) -> dict[str, ProxySync]:
        """Every connected proxy's xDS sync state ({} without istiod)."""
        if self.istiod() is None:
            return {}
        return parse_syncz(self.istiod_debug("/debug/syncz"))

    def wait_converged(
        self,
        applied: Mapping[tuple[str, str, str], str],
        deleted: Iterable[tuple[str, str, str]],
        before: Mapping[str, ProxySync],
    ) -> None:
        """Until istiod holds the applied Istio resources (and not the deleted ones) and every
        proxy acknowledged its push (:mod:`cluster.kube.convergence`)."""
        if self.istiod() is None:
            self.report("note: no istiod found; not waiting for the proxies")
            return
        deadline = time.monotonic() + self.timeouts.converge_s
        gone = set(deleted)
        while True:
            held = config_versions(self.istiod_debug("/debug/configz"))
            missing = [k for k, v in applied.items() if held.get(k) != v and v]
            stale = [k for k in gone if k in held]
            if not missing and not stale:
                break
            if time.monotonic() > deadline:
                what = missing[0] if missing else stale[0]
                verb = "does not hold" if missing else "still holds"
                raise KubeError(
                    f"istiod {verb} {what[0]} {what[1]}/{what[2]} after {self.timeouts.converge_s:g}s "
                    "(kubectl -n istio-system logs deploy/istiod)"
                )
            time.sleep(self.timeouts.poll_s)
        seen = time.monotonic()
        while True:
            now = self.sync_state()
            pending = pending_proxies(before, now, time.monotonic() - seen >= QUIET_S)
            if not pending:
                return
            if time.monotonic() > deadline:
                p = pending[0]
                raise KubeError(
                    f"the configuration did not reach proxy {p.proxy} within "
                    f"{self.timeouts.converge_s:g}s: {p.describe()} (istioctl proxy-status "
                    f"{p.proxy}; an unacknowledged nonce is a rejected or lost push)"
                )
            time.sleep(self.timeouts.poll_s)

    # -- workloads -------------------------------------------------------------------------

    def workload_pods(self, deployment: Manifest) -> list[PodRef]:
        """The Deployment's live pods (generators excluded), by name."""
        pods = [
            p for p in self.pods(deployment.namespace, self._selector(deployment))
            if not is_generator(p) and not p.get("metadata", {}).get("deletionTimestamp")
        ]  # fmt: skip
        return sorted(
            (
                PodRef(
                    p["metadata"]["name"],
                    deployment.namespace,
                    str(p.get("status", {}).get("podIP", "")),
                    p,
                )
                for p in pods
            ),
            key=lambda r: r.name,
        )

    def set_knobs(self, pods: Sequence[PodRef], container: str, body: Mapping[str, Any]) -> None:
        """``PUT /admin/knobs`` on each pod's knob port, from inside its service container."""
        argv = [
            "python",
            "-m",
            "cluster.kube.loadgen",
            "knobs",
            str(KNOB_PORT),
            json.dumps(dict(body)),
        ]
        for pod in pods:
            code, out, err = self.api.exec(pod.namespace, pod.name, container, argv)
            if code != 0:
                raise KubeError(
                    f"knobs of {pod.namespace}/{pod.name}: {(out + err).strip() or f'exit {code}'}"
                )

    def kill(self, deployment: Manifest, pods: Sequence[PodRef], replicas: int) -> None:
        """Stop exactly ``pods``: mark them cheapest to delete, then scale the Deployment down to
        ``replicas`` (a pod deleted alone would be replaced at once by its ReplicaSet)."""
        for pod in pods:
            self.api.request(
                "PATCH",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
                body={
                    "metadata": {
                        "annotations": {"controller.kubernetes.io/pod-deletion-cost": "-10000"}
                    }
                },
                content_type="application/merge-patch+json",
                query=[("fieldManager", FIELD_MANAGER)],
            )
        self.scale(deployment, replicas)

    def scale(self, deployment: Manifest, replicas: int) -> None:
        """Set the Deployment's replicas (its ``scale`` subresource)."""
        self.api.request(
            "PATCH",
            f"{deployment.path()}/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
            query=[("fieldManager", FIELD_MANAGER)],
        )

    def endpoints(self, service: Mapping[str, Any]) -> list[str]:
        """IPs of the ready pods a Service selects, by pod name."""
        selector = service.get("spec", {}).get("selector") or {}
        namespace = service.get("metadata", {}).get("namespace", self.namespace)
        pods = sorted(
            (p for p in self.pods(namespace, selector) if pod_ready(p) and not is_generator(p)),
            key=lambda p: p["metadata"]["name"],
        )
        return [str(p["status"]["podIP"]) for p in pods if p.get("status", {}).get("podIP")]

    def proxy_memory_mb(self, pod: PodRef) -> float | None:
        """The pod's Envoy heap in use, MiB: ``allocated`` of its admin ``/memory``, read from
        inside its ``istio-proxy`` (``pilot-agent request GET memory``: the admin port listens
        on localhost only). None, with the reason reported, when it cannot be read (the
        expectation grades "no data")."""
        argv = ["pilot-agent", "request", "GET", "memory"]
        try:
            code, out, err = self.api.exec(pod.namespace, pod.name, PROXY, argv)
        except KubeError as exc:
            self.report(f"memory of {pod.namespace}/{pod.name}: {exc}")
            return None
        mb = envoy_allocated_mb(out) if code == 0 else None
        if mb is None:
            why = (err or out).strip()[:200] or f"exit {code}"
            self.report(f"memory of {pod.namespace}/{pod.name}: {why}")
        return mb

    # -- the generator ---------------------------------------------------------------------

    def run_generator(
        self, pod: Manifest, on_event: Callable[[GeneratorEvent], None], cancel: threading.Event,
        timeout_s: float,
    ) -> None:  # fmt: skip
        """Create the generator pod and feed its events to ``on_event`` until it is done;
        ``cancel`` deletes the pod (which ends the stream)."""
        self.api.apply(pod)
        self._wait_started(pod)
        stop = threading.Event()

        def on_cancel() -> None:
            while not stop.wait(0.2):
                if cancel.is_set():
                    with contextlib.suppress(KubeError):
                        self.api.delete("v1", "Pod", pod.namespace, pod.name)
                    return

        watcher = threading.Thread(target=on_cancel, name="meshplay-kube-cancel", daemon=True)
        watcher.start()
        try:
            for line in self.api.follow_log(pod.namespace, pod.name, CONTAINER, timeout_s):
                event = parse_event(line)
                if event is None:
                    continue
                on_event(event)
                if event.kind in ("done", "error"):
                    return
        finally:
            stop.set()
            watcher.join(timeout=2.0)

    def _wait_started(self, pod: Manifest) -> None:
        deadline = time.monotonic() + self.timeouts.generator_start_s
        problem = "not created"
        while time.monotonic() < deadline:
            obj = self.api.get("v1", "Pod", pod.namespace, pod.name)
            if obj is None:
                problem = "deleted"
                break
            for cs in obj.get("status", {}).get("containerStatuses") or []:
                if cs.get("name") != CONTAINER:
                    continue
                state = cs.get("state", {})
                if "running" in state or "terminated" in state:
                    return
                reason = state.get("waiting", {}).get("reason", "")
                if reason in _BAD_WAITING:
                    message = state.get("waiting", {}).get("message", "")
                    raise KubeError(
                        f"load generator {pod.namespace}/{pod.name}: {_BAD_WAITING[reason]} "
                        f"({reason}: {message}); meshplay cluster up builds and loads the image"
                    )
            problem = pod_problem(obj) or "starting"
            time.sleep(self.timeouts.poll_s)
        raise KubeError(
            f"load generator {pod.namespace}/{pod.name} did not start within "
            f"{self.timeouts.generator_start_s:g}s: {problem}"
        )

    # -- Istio's metrics --------------------------------------------------------------------

    def has_prometheus(self) -> bool:
        """A Prometheus Service is there to ask."""
        from cluster.kube.admin import find_prometheus

        return find_prometheus(self.api) is not None

    def prometheus(self, promql: str, at: float) -> list[dict[str, Any]] | None:
        """An instant query to the cluster's Prometheus through the API server's service proxy
        (None when there is no Prometheus Service)."""
        from cluster.kube.admin import find_prometheus

        found = find_prometheus(self.api)
        if found is None:
            return None
        namespace, name = found
        out = self.api.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/services/{name}:9090/proxy/api/v1/query",
            query=[("query", promql), ("time", f"{at:.3f}")],
        )
        if not isinstance(out, dict) or out.get("status") != "success":
            raise KubeError(f"Prometheus {namespace}/{name}: {out}")
        result = out.get("data", {}).get("result") or []
        return [r for r in result if isinstance(r, dict)]

    # -- records ---------------------------------------------------------------------------

    def services(self, namespace: str) -> list[dict[str, Any]]:
        """The Services of a namespace."""
        items, _ = self.api.list("v1", "Service", namespace)
        return items

    def proxy_logs(
        self, pods: Iterable[Mapping[str, Any]], since_s: float | None
    ) -> list[tuple[PodFacts, str]]:
        """The ``istio-proxy`` log of each pod (since ``since_s`` seconds ago), with its facts."""
        pods = list(pods)
        services: dict[str, list[dict[str, Any]]] = {}
        out = []
        for pod in pods:
            if not has_proxy(pod):
                continue
            meta = pod.get("metadata", {})
            ns = str(meta.get("namespace", ""))
            if ns not in services:
                services[ns] = self.services(ns)
            since = None if since_s is None else int(since_s) + 1
            text = self.api.pod_log(ns, meta["name"], PROXY, since_seconds=since)
            out.append((pod_facts(pod, services[ns]), text))
        return out

    def mesh_pods(self) -> list[dict[str, Any]]:
        """Every pod whose proxy may have logged a step's requests: the app namespace's and the
        ingress gateway's."""
        gateways = self.pods(ISTIO_NAMESPACE, {"istio": "ingressgateway"})
        return [*self.pods(self.namespace), *gateways]


def envoy_allocated_mb(text: str) -> float | None:
    """``allocated`` (bytes; a JSON string, as protobuf JSON prints a uint64) of Envoy's admin
    ``/memory`` answer, in MiB; None when ``text`` is not that answer."""
    try:
        allocated = json.loads(text)["allocated"]
        return int(allocated) / 2**20
    except (ValueError, TypeError, KeyError):
        return None
