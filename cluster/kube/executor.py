"""``KubeExecutor``: the lesson engine's executor on real Istio in a real Kubernetes cluster.

The engine (:func:`mesh.engine.run_lesson`) decides what runs; this module makes a cluster do
it. ``open`` applies the app (its manifests, server-side, field manager ``meshplay``) and waits
until every pod and sidecar is ready; ``push`` applies what changed and deletes what left the
state, then waits until istiod holds it and every proxy acknowledged it
(:mod:`cluster.kube.convergence`); ``break_workload`` turns the services' knobs from inside their
containers or scales pods away; ``drive`` starts the step's load generator pod
(:mod:`cluster.kube.generator`), fires the step's events on timers from the generator's
``started`` line, and parses the ``istio-proxy`` logs into RequestRecords
(:mod:`cluster.kube.records`). ``close`` (also after an error or Ctrl-C) deletes the lesson's
resources and generator pods and restores what the breaks changed, leaving the app running.

With ``dry_run`` the same decisions go to :class:`~cluster.kube.plan.PlanCluster`, which writes
them down: ``meshplay run LESSON --runner kube --dry-run`` prints the plan without a cluster.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.kube.api import KubeApi, KubeError
from cluster.kube.generator import (
    GeneratorEvent,
    generator_pod,
    service_ports,
    step_job,
    traffic_bound_s,
)
from cluster.kube.live import LiveCluster, Timeouts
from cluster.kube.loadgen import GeneratorJob
from cluster.kube.manifests import (
    LESSON_LABEL,
    PART_LABEL,
    RUN_LABEL,
    Manifest,
    app_manifests,
    is_istio,
    is_modelled,
    manifest_of,
    ordered_for_apply,
    retarget_namespace,
    stamp,
)
from cluster.kube.metrics import PlanStepMetrics, ServiceProxyPrometheus
from cluster.kube.plan import PlanCluster
from cluster.kube.pods import service_container, template_labels
from cluster.kube.prometheus import CrossCheck, compare_counts, edge_counts, parse_vector
from cluster.kube.prometheus import query as prometheus_query
from cluster.kube.records import records_from_logs
from cluster.prometheus import PrometheusClient, PrometheusStepMetrics
from mesh.lesson import BreakAction, Lesson
from mesh.observe.query import StepMetrics
from mesh.runner import DriveContext, RunEvent, RunnerError, StepPlan, StepTraffic, TimedChange
from mesh.state import MeshState, lesson_states

__all__ = ["KubeExecutor"]

Key = tuple[str, str, str]


@dataclass
class _Applied:
    """What the runner has applied: manifests by key, and the app's own versions."""

    current: dict[Key, Manifest] = field(default_factory=dict)
    app: dict[Key, Manifest] = field(default_factory=dict)


def _to_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")


class KubeExecutor:
    """Carries a lesson's traffic through a real cluster (the ``kube`` runner)."""

    name = "kube"

    def __init__(
        self,
        context: str = "",
        namespace: str = "",
        *,
        dry_run: bool = False,
        kubeconfig: str | None = None,
        timeouts: Timeouts | None = None,
        report: Callable[[str], None] | None = None,
        prometheus_url: str = "",
    ) -> None:
        self.context = context
        self.prometheus_url = prometheus_url
        """Where to ask PromQL (a port-forward); "" asks the cluster's Prometheus Service
        through the API server (:mod:`cluster.kube.metrics`)."""
        self.namespace_override = namespace
        self.dry_run = dry_run
        self.kubeconfig = kubeconfig
        self.timeouts = timeouts or Timeouts()
        self.report = report or _to_stderr
        self.cluster: LiveCluster | PlanCluster | None = None
        self.api: KubeApi | None = None
        self.lesson: Lesson | None = None
        self.namespace = namespace
        self.run_id = "dry-run" if dry_run else secrets.token_hex(3)
        self.run_started = 0.0
        self.applied = _Applied()
        self.app_deployments: dict[str, Manifest] = {}
        self.killed: dict[str, int] = {}
        self.knobbed: set[str] = set()
        self.saved_logs: list[Any] = []
        self._lock = threading.RLock()
        self._by_origin: dict[str, Manifest] = {}
        self._plan = ""
        self.counts: Counter[tuple[str, str]] = Counter()
        self.traffic_span: tuple[float, float] | None = None
        self.cross_checks: list[CrossCheck] = []
        self.events: list[RunEvent] = []

    # -- set-up ----------------------------------------------------------------------------

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """Every resource of the lesson has its YAML document; the cluster (unless a dry run)
        answers, runs istiod, has Istio's CRDs and meshplay's access-log providers."""
        self.lesson = lesson
        self.namespace = self.namespace_override or lesson.app.behavior.namespace
        app = [stamp(m, "app") for m in app_manifests(lesson.app, self.namespace)]
        self.applied.app = {m.key: m for m in app}
        self._by_origin = {m.source: m for m in app}
        self.app_deployments = {m.name: m for m in app if m.kind == "Deployment"}
        for state in lesson_states(lesson):
            for r in state.resources:
                self._manifest(r)
        if self.dry_run:
            self.cluster = PlanCluster(self.namespace, app, self.timeouts)
            self.cluster.note(
                f"# meshplay run {lesson.path.name} --runner kube --dry-run: the plan, step by step"
            )
            self.cluster.note(f"# namespace {self.namespace}; nothing below was sent to a cluster")
            return
        from cluster.kube.admin import require_ready

        api = KubeApi.connect(self.context, self.kubeconfig)
        try:
            require_ready(api, self.namespace)
        except RunnerError:
            api.close()
            raise
        self.api = api
        self.cluster = LiveCluster(api, self.namespace, self.timeouts, self.report)

    def _manifest(self, resource: Any) -> Manifest:
        """The manifest the runner applies for a resource of the state."""
        origin = str(resource.source.origin)
        app = self._by_origin.get(origin)
        if app is not None:
            return app
        lesson = self.lesson
        assert lesson is not None
        try:
            raw = manifest_of(resource)
        except LookupError as exc:
            raise RunnerError(f"cannot apply {resource.ref} on a cluster: {exc}") from exc
        base = lesson.app.behavior.namespace
        if self.namespace and self.namespace != base:
            raw = retarget_namespace(raw, base, self.namespace)
        return stamp(raw, "lesson", **{LESSON_LABEL: lesson.id[:63], RUN_LABEL: self.run_id})

    def _cluster(self) -> LiveCluster | PlanCluster:
        if self.cluster is None:
            raise RunnerError("the kube runner is not set up (preflight() first)")
        return self.cluster

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Apply the app and wait until every pod and sidecar is ready."""
        cluster = self._cluster()
        if isinstance(cluster, PlanCluster):
            cluster.note(f"\n== open: the app {lesson.app.path} (its manifests, with ADMIN_PORT)")
        app = list(self.applied.app.values())
        cluster.apply(app)
        self.applied.current = dict(self.applied.app)
        cluster.wait_rollout([m for m in app if m.kind == "Deployment"])
        if isinstance(cluster, PlanCluster):
            cluster.end_section()
        self.run_started = time.time()

    # -- configuration ---------------------------------------------------------------------

    def _desired(self, state: MeshState) -> dict[Key, Manifest]:
        out = {k: m for k, m in self.applied.app.items() if not is_modelled(m)}
        for r in state.resources:
            m = self._manifest(r)
            out[m.key] = m
        return out

    def push(self, state: MeshState) -> None:
        """Apply what is new or changed, delete what left the state, wait for the proxies."""
        cluster = self._cluster()
        with self._lock:
            desired = self._desired(state)
            current = self.applied.current
            changed = [
                m
                for k, m in desired.items()
                if k not in current or current[k].fingerprint() != m.fingerprint()
            ]
            removed = [m for k, m in current.items() if k not in desired]
            if not changed and not removed:
                return
            istio = any(is_istio(m) for m in (*changed, *removed))
            before = cluster.sync_state() if istio else {}
            versions: dict[Key, str] = {}
            for m in ordered_for_apply(changed):  # one by one: a failure leaves `current` exact
                versions.update(cluster.apply([m]))
                current[m.key] = m
            for m in reversed(ordered_for_apply(removed)):
                cluster.delete([m])
                current.pop(m.key, None)
            deployments = [m for m in changed if m.kind == "Deployment"]
            cluster.wait_rollout(deployments)
            if istio:
                cluster.wait_converged(
                    {k: v for k, v in versions.items() if is_istio(desired[k])},
                    [m.key for m in removed if is_istio(m)],
                    before,
                )

    # -- breaks ----------------------------------------------------------------------------

    def _deployments(self, workload: str) -> list[Manifest]:
        current = [m for m in self.applied.current.values() if m.kind == "Deployment"]
        named = [m for m in current if m.name == workload]
        if named:
            return named
        return sorted(
            (m for m in current if template_labels(m).get("app") == workload), key=lambda m: m.name
        )

    def break_workload(self, action: BreakAction) -> None:
        """Knobs on every pod of the workload, or stop ``kill`` of its pods (scaled down, so
        they stay stopped until ``restore``)."""
        cluster = self._cluster()
        deployments = self._deployments(action.workload)
        if not deployments:
            raise RunnerError(f'break: no Deployment "{action.workload}" in the app')
        with self._lock:
            for d in deployments:
                self._break_one(cluster, d, action)

    def _break_one(
        self, cluster: LiveCluster | PlanCluster, d: Manifest, action: BreakAction
    ) -> None:
        container = service_container(d)
        if action.restore:
            if d.name in self.killed:
                original = self.killed.pop(d.name)
                cluster.scale(d, original)
                cluster.wait_rollout([d])
            if d.name in self.knobbed or isinstance(cluster, PlanCluster):
                if container:
                    cluster.set_knobs(cluster.workload_pods(d), container, _RESET)
                self.knobbed.discard(d.name)
        knobs: dict[str, Any] = dict(action.knobs)
        if knobs:
            if not container:
                raise RunnerError(f"break: {d.name} runs no meshplay service, so it has no knobs")
            cluster.set_knobs(cluster.workload_pods(d), container, knobs)
            self.knobbed.add(d.name)
        if action.kill:
            pods = cluster.workload_pods(d)
            doomed = pods[: action.kill]
            if doomed:
                self.saved_logs.extend(cluster.proxy_logs([p.obj for p in doomed if p.obj], None))
                self.killed.setdefault(d.name, int(d.body.get("spec", {}).get("replicas", 1)))
                cluster.kill(d, doomed, len(pods) - len(doomed))

    # -- traffic ---------------------------------------------------------------------------

    def _job(
        self, plan: StepPlan, cluster: LiveCluster | PlanCluster
    ) -> tuple[GeneratorJob, Manifest | None]:
        spec = plan.traffic
        client = None
        if spec.from_ not in ("outside", "ingress"):
            candidates = self._deployments(spec.from_)
            if not candidates:
                raise RunnerError(
                    f'traffic from "{spec.from_}": no such Deployment or app in the mesh'
                )
            client = candidates[0]
        endpoints: list[str] = []
        if spec.from_ == "outside" and spec.address is None:
            service = self.applied.current.get(("Service", self.namespace, spec.to))
            if service is not None:
                endpoints = cluster.endpoints(service.body)
        ports = service_ports(self.applied.current.values(), self.namespace)
        return step_job(plan, self.namespace, ports, endpoints), client

    def _image(self, client: Manifest | None) -> str:
        for d in ([client] if client is not None else []) + sorted(
            self.app_deployments.values(), key=lambda m: m.name
        ):
            if service_container(d):
                containers = d.body["spec"]["template"]["spec"]["containers"]
                return str(containers[0]["image"])
        raise RunnerError("the app has no meshplay service image to run the load generator from")

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Run the step's generator pod, fire the timeline, read the proxies' records."""
        cluster = self._cluster()
        lesson = self.lesson
        assert lesson is not None
        job, client = self._job(plan, cluster)
        pod = generator_pod(
            name=f"meshplay-loadgen-{self.run_id}-s{plan.index + 1}",
            namespace=self.namespace,
            job=job,
            image=self._image(client),
            client=client.body if client is not None else None,
            run_id=self.run_id,
            lesson_id=lesson.id[:63],
        )
        pending = list(timeline)
        self.events = []
        timers: list[threading.Timer] = []
        seen: dict[str, Any] = {}
        began = time.time()

        def on_event(event: GeneratorEvent) -> None:
            if event.kind == "started":
                seen["started"] = event.number("at") or time.time()
                seen["started_local"] = time.monotonic()
                for change in timeline:
                    timer = threading.Timer(change.at_s, self._fire, args=(change, pending))
                    timer.daemon = True
                    timer.start()
                    timers.append(timer)
            elif event.kind == "progress":
                ctx.progress(event.number("fraction"), int(event.number("sent")))
            elif event.kind in ("done", "error"):
                seen[event.kind] = event
                seen["ended_local"] = time.monotonic()

        bound = traffic_bound_s(plan)
        if isinstance(cluster, PlanCluster):
            cluster.step(f"\n== step {plan.index + 1}: {plan.step.name}")
        try:
            cluster.run_generator(pod, on_event, ctx.cancel, bound)
        finally:
            for timer in timers:
                timer.cancel()
            for change in list(pending):  # due after the traffic: they still happen
                if isinstance(cluster, PlanCluster):
                    cluster.note(f'at {change.at_s:g}s after the generator\'s "started" line:')
                self._fire(change, pending)
        error = seen.get("error")
        if isinstance(error, GeneratorEvent):
            self._delete_quietly([pod])
            raise RunnerError(f"load generator: {error.data.get('message', 'failed')}")
        if isinstance(cluster, PlanCluster):
            cluster.mesh_pods()
            cluster.delete([pod])
            cluster.end_section()
            return StepTraffic((), 0.0, 0.0)
        time.sleep(self.timeouts.settle_s)
        since_s = time.time() - began + 5.0
        logs = cluster.proxy_logs(cluster.mesh_pods(), since_s) + self.saved_logs
        self.saved_logs = []
        self._delete_quietly([pod])
        started = float(seen.get("started", began))
        records = records_from_logs(logs, self.run_started, since=started - 0.05)
        self.counts.update(edge_counts(records))
        first = self.traffic_span[0] if self.traffic_span else started
        self.traffic_span = (first, time.time())
        done = seen.get("done")
        duration = done.number("wall_s") if isinstance(done, GeneratorEvent) else 0.0
        if not duration and "started_local" in seen:
            duration = float(seen.get("ended_local", time.monotonic())) - float(
                seen["started_local"]
            )
        ctx.progress(
            1.0, int(done.number("sent")) if isinstance(done, GeneratorEvent) else len(records)
        )
        return StepTraffic(tuple(records), started - self.run_started, duration, tuple(self.events))

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """The step's window in the cluster's Prometheus (a
        :class:`~mesh.observe.query.MetricsExecutor`): from the graded traffic's start to a
        second after its end, asked once Prometheus has scraped that end (``Timeouts.scrape_s``
        later, waited for here: the answers are evaluated at the window's end, in the past);
        None without a Prometheus."""
        cluster = self._cluster()
        where = self.prometheus_url or "the cluster's Prometheus (istio-system/prometheus)"
        if isinstance(cluster, PlanCluster):
            cluster.note(
                f"wait {self.timeouts.scrape_s:g}s for Prometheus to scrape the step, then "
                f"grade its promql/alert expectations ($__range: the step's graded window):"
            )
            return PlanStepMetrics(cluster.note, index, 0.0, where)
        start = self.run_started + started_at + warmup_s
        end = self.run_started + started_at + duration_s + 1.0
        client = self._prometheus(cluster)
        if client is None:
            self.report(
                f"step {index + 1}: no Prometheus to grade promql/alert expectations (install "
                "Istio's addon, samples/addons/prometheus.yaml, or pass --prometheus-url)"
            )
            return None
        wait = end + self.timeouts.scrape_s - time.time()
        if wait > 0:
            time.sleep(wait)
        return PrometheusStepMetrics(client, end, max(end - start, 1.0))

    def _prometheus(self, cluster: LiveCluster) -> PrometheusClient | None:
        if self.prometheus_url:
            return PrometheusClient(self.prometheus_url)
        from cluster.kube.admin import find_prometheus

        found = find_prometheus(cluster.api)
        return None if found is None else ServiceProxyPrometheus(cluster.api, *found)

    def _fire(self, change: TimedChange, pending: list[TimedChange]) -> None:
        with self._lock:
            if change not in pending:
                return
            pending.remove(change)
        self.events.append(
            RunEvent(
                time.time() - self.run_started, "event", f"at {change.at_s:g} s", change.description
            )
        )
        try:
            if change.state is not None:
                self.push(change.state)
            for action in change.breaks:
                self.break_workload(action)
        except RunnerError as exc:
            self.report(f"event at {change.at_s:g}s failed: {exc}")

    # -- tear-down -------------------------------------------------------------------------

    def _delete_quietly(self, manifests: Sequence[Manifest]) -> None:
        cluster = self.cluster
        if cluster is None:
            return
        with contextlib.suppress(KubeError):
            cluster.delete(manifests)

    def close(self) -> None:
        """Delete the lesson's resources and generators, undo the breaks, keep the app. An API
        that does not answer is retried for ``timeouts.cleanup_s``; what is left is reported
        with the command that removes it."""
        cluster = self.cluster
        if cluster is None:
            return
        self._cross_check(cluster)
        if isinstance(cluster, PlanCluster):
            cluster.note("\n== close: back to the app as it was")
        problems: list[str] = []
        for what, task in (
            ("load generators", self._delete_generators),
            ("breaks", self._undo_breaks),
            ("lesson resources", self._restore_app),
        ):
            error = _retry(task, self.timeouts.cleanup_s)
            if error is not None:
                problems.append(f"{what}: {error}")
        if problems:
            selector = f"{RUN_LABEL}={self.run_id}"
            self.report(
                "cleanup incomplete (" + "; ".join(problems) + "); remove the rest with: "
                f"kubectl delete pods,virtualservices,destinationrules,gateways,serviceentries,"
                f"sidecars,peerauthentications,authorizationpolicies,requestauthentications,"
                f"networkpolicies -A -l {selector}   (or meshplay cluster down)"
            )
        if isinstance(cluster, PlanCluster):
            self._plan = cluster.text()
        if self.api is not None:
            self.api.close()
        self.cluster = None

    def _cross_check(self, cluster: LiveCluster | PlanCluster) -> None:
        """Records per edge beside ``istio_requests_total`` (reported, never graded)."""
        if isinstance(cluster, PlanCluster):
            cluster.note("\n== after the last step: Istio's metrics as a cross-check")
            cluster.prometheus(prometheus_query(0), 0.0)
            return
        if not self.counts or self.traffic_span is None:
            return
        start, end = self.traffic_span
        wait = end + self.timeouts.scrape_s - time.time()
        try:
            if not cluster.has_prometheus():
                return
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            result = cluster.prometheus(prometheus_query(now - start + 5.0), now)
        except KubeError as exc:
            self.report(f"metrics cross-check skipped: {exc}")
            return
        if result is None:
            return
        self.cross_checks = compare_counts(self.counts, parse_vector(result))
        for check in self.cross_checks:
            self.report(f"istio_requests_total cross-check: {check.line()}")

    def _delete_generators(self) -> None:
        cluster = self._cluster()
        if isinstance(cluster, LiveCluster):
            pods = cluster.pods(self.namespace, {PART_LABEL: "loadgen", RUN_LABEL: self.run_id})
            for p in pods:
                cluster.api.delete("v1", "Pod", self.namespace, p["metadata"]["name"])

    def _undo_breaks(self) -> None:
        cluster = self._cluster()
        for name, replicas in list(self.killed.items()):
            d = self.applied.current.get(
                ("Deployment", self.namespace, name)
            ) or self.app_deployments.get(name)
            if d is not None:
                cluster.scale(d, replicas)
            self.killed.pop(name, None)
        for name in sorted(self.knobbed):
            d = self.app_deployments.get(name)
            container = service_container(d) if d is not None else ""
            if d is not None and container:
                cluster.set_knobs(cluster.workload_pods(d), container, _RESET)
            self.knobbed.discard(name)

    def _restore_app(self) -> None:
        cluster = self._cluster()
        current, app = self.applied.current, self.applied.app
        lesson_only = [m for k, m in current.items() if k not in app]
        changed_app = [
            m
            for k, m in app.items()
            if k not in current or current[k].fingerprint() != m.fingerprint()
        ]
        cluster.delete(lesson_only)
        for m in lesson_only:
            current.pop(m.key, None)
        if changed_app:
            cluster.apply(changed_app)
            for m in changed_app:
                current[m.key] = m

    def plan_text(self) -> str:
        """The recorded plan of a dry run (kept after ``close``)."""
        cluster = self.cluster
        return cluster.text() if isinstance(cluster, PlanCluster) else self._plan


_RESET = {"latency_ms": 0.0, "error_rate": 0.0, "refuse": False, "drop_trace_headers": False}


def _retry(task: Callable[[], None], budget_s: float) -> str | None:
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
