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

A multi-cluster lesson runs on one kube context per declared cluster (:mod:`cluster.kube.fleet`
places each object; :mod:`cluster.kube.multicluster` checks each context is the primary the
lesson declares): Deployments where the lesson puts them, everything else in every cluster, the
generator in the caller's cluster, breaks naming a cluster only there, records from every
cluster tagged with their cluster.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cluster.kube.api import KubeApi, KubeError
from cluster.kube.applied import (
    Applied,
    delete_generators,
    leftover_hint,
    push_changes,
    restore_app,
    retry,
)
from cluster.kube.breaks import Breaks, select
from cluster.kube.fleet import Fleet, Member
from cluster.kube.generator import traffic_bound_s
from cluster.kube.live import LiveCluster, Timeouts
from cluster.kube.manifests import (
    LESSON_LABEL,
    RUN_LABEL,
    Manifest,
    app_manifests,
    is_modelled,
    manifest_of,
    retarget_namespace,
    stamp,
)
from cluster.kube.members import connect_fleet, plan_fleet
from cluster.kube.metrics import PlanStepMetrics, cross_check, prometheus_client
from cluster.kube.multicluster import cluster_contexts, declared_clusters
from cluster.kube.plan import PlanCluster
from cluster.kube.pods import has_proxy, opts_out_of_injection
from cluster.kube.prometheus import CrossCheck, edge_counts
from cluster.kube.prometheus import query as prometheus_query
from cluster.kube.records import records_from_logs
from cluster.kube.traffic import GeneratorWatch, step_generator
from cluster.prometheus import PrometheusStepMetrics
from mesh.envoy.translate import ProxyConfig
from mesh.lesson import BreakAction, Lesson
from mesh.model.multicluster import MultiCluster
from mesh.observe.query import StepMetrics
from mesh.runner import DriveContext, RunEvent, RunnerError, StepPlan, StepTraffic, TimedChange
from mesh.state import MeshState, lesson_states

__all__ = ["KubeExecutor"]

Key = tuple[str, str, str]


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
        contexts: Mapping[str, str] | None = None,
    ) -> None:
        self.context = context
        self.contexts = dict(contexts or {})
        """Cluster name -> kube context, for a multi-cluster lesson (``--context CLUSTER=CTX``)."""
        self.prometheus_url = prometheus_url
        """Where to ask PromQL (a port-forward); "" asks the cluster's Prometheus Service
        through the API server (:mod:`cluster.kube.metrics`)."""
        self.namespace_override = namespace
        self.dry_run = dry_run
        self.kubeconfig = kubeconfig
        self.timeouts = timeouts or Timeouts()
        self.report = report or _to_stderr
        self.fleet: Fleet | None = None
        self.breaks: Breaks | None = None
        self.apis: list[KubeApi] = []
        self.lesson: Lesson | None = None
        self.namespace = namespace
        self.run_id = "dry-run" if dry_run else secrets.token_hex(3)
        self.run_started = 0.0
        self.applied = Applied()
        self.app_deployments: dict[str, Manifest] = {}
        self._lock = threading.RLock()
        self._by_origin: dict[str, Manifest] = {}
        self._plan_text = ""
        self.counts: Counter[tuple[str, str]] = Counter()
        self.traffic_span: tuple[float, float] | None = None
        self.cross_checks: list[CrossCheck] = []
        self.events: list[RunEvent] = []

    # -- set-up ----------------------------------------------------------------------------

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """Every resource of the lesson has its YAML document; each context (unless a dry run)
        answers, runs istiod, has Istio's CRDs and meshplay's access-log providers, and, for a
        multi-cluster lesson, is the cluster the lesson declares (:mod:`cluster.kube.multicluster`)."""
        self.lesson = lesson
        self.namespace = self.namespace_override or lesson.app.behavior.namespace
        values = [f"{k}={v}" for k, v in self.contexts.items()] or (
            [self.context] if self.context else []
        )
        contexts = cluster_contexts(lesson, values)
        mc = declared_clusters(lesson)
        app = [stamp(m, "app") for m in app_manifests(lesson.app, self.namespace)]
        self.applied.app = {m.key: m for m in app}
        self._by_origin = {m.source: m for m in app}
        self.app_deployments = {m.name: m for m in app if m.kind == "Deployment"}
        for state in lesson_states(lesson):
            for r in state.resources:
                if not isinstance(r, MultiCluster):  # the lesson's declaration, not an object
                    self._manifest(r)
        if self.dry_run:
            self.fleet = plan_fleet(
                lesson, contexts, mc, self.namespace, app, timeouts=self.timeouts
            )
        else:
            try:
                self.fleet = connect_fleet(
                    contexts, mc, self.namespace, kubeconfig=self.kubeconfig,
                    timeouts=self.timeouts, report=self.report, apis=self.apis,
                )  # fmt: skip
            except RunnerError:
                self._close_apis()
                raise
        self.breaks = Breaks(self.fleet)

    def _plan(self) -> PlanCluster:
        """The dry run's plan (its home member: notes and headings are shared)."""
        fleet = self._fleet()
        member = fleet.member(fleet.home)
        assert isinstance(member, PlanCluster)
        return member

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

    def _fleet(self) -> Fleet:
        if self.fleet is None:
            raise RunnerError("the kube runner is not set up (preflight() first)")
        return self.fleet

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Apply the app (each Deployment in the clusters the lesson places it in) and wait
        until every pod and sidecar is ready."""
        fleet = self._fleet()
        if self.dry_run:
            self._plan().note(
                f"\n== open: the app {lesson.app.path} (its manifests, with ADMIN_PORT)"
            )
        app = list(self.applied.app.values())
        for name, elsewhere in fleet.unplaced(app).items():
            if elsewhere:  # `cluster up` applied the whole app to every context
                fleet.member(name).delete(elsewhere)
        fleet.apply(app)
        self.applied.current = dict(self.applied.app)
        fleet.wait_rollout([m for m in app if m.kind == "Deployment"])
        if self.dry_run:
            self._plan().end_section()
        self.run_started = time.time()

    # -- configuration ---------------------------------------------------------------------

    def _desired(self, state: MeshState) -> dict[Key, Manifest]:
        out = {k: m for k, m in self.applied.app.items() if not is_modelled(m)}
        for r in state.resources:
            if isinstance(r, MultiCluster):  # the lesson's declaration, not an object
                continue
            m = self._manifest(r)
            out[m.key] = m
        return out

    def push(self, state: MeshState) -> None:
        """Apply what is new or changed, delete what left the state, wait for the proxies (of
        every cluster: each primary's istiod gets the configuration)."""
        fleet = self._fleet()
        with self._lock:
            push_changes(fleet, self.applied, self._desired(state))

    # -- breaks ----------------------------------------------------------------------------

    def _deployments(self, workload: str, cluster: str = "") -> list[Manifest]:
        current = [m for m in self.applied.current.values() if m.kind == "Deployment"]
        return select(current, workload, cluster, self._fleet())

    def break_workload(self, action: BreakAction) -> None:
        """Knobs on every pod of the workload, stop ``kill`` of its pods, or take it (or a
        whole cluster, or its east-west gateway) ``down`` until ``restore``
        (:mod:`cluster.kube.breaks`)."""
        self._fleet()
        breaks = self.breaks
        assert breaks is not None
        deployments = self._deployments(action.workload, action.cluster)
        with self._lock:
            breaks.apply(action, breaks.targets(action, deployments))

    def proxy_memory_mb(self, pod: str, config: ProxyConfig) -> float | None:
        """``proxy_config`` ``memory_mb``: the heap of the workload's first pod that runs a
        sidecar (in the pod's cluster on a multi-cluster run), read from its Envoy's admin
        ``/memory`` now, after the step's traffic; None when the workload has no such pod (a
        pod with ``sidecar.istio.io/inject: "false"``, a gateway the lesson did not apply)."""
        fleet = self._fleet()
        cluster = config.pod.cluster if fleet.multi else ""
        with self._lock:
            for d in self._deployments(config.pod.workload, cluster):
                if opts_out_of_injection(d):
                    continue
                for where, placed in fleet.placed(d):
                    if cluster and where != cluster:
                        continue
                    member = fleet.member(where)
                    for ref in member.workload_pods(placed):
                        if not ref.obj or has_proxy(ref.obj):  # a plan's pod: no object
                            return member.proxy_memory_mb(ref)
        return None

    # -- traffic ---------------------------------------------------------------------------

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Run the step's generator pod, fire the timeline, read the proxies' records."""
        fleet = self._fleet()
        breaks = self.breaks
        lesson = self.lesson
        assert lesson is not None
        assert breaks is not None
        pod, where = step_generator(
            plan, fleet, find=self._deployments, current=self.applied.current,
            app=self.app_deployments.values(), namespace=self.namespace, run_id=self.run_id,
            lesson_id=lesson.id[:63],
        )  # fmt: skip
        caller = fleet.member(where)
        self.events = []
        watch = GeneratorWatch(timeline, self._fire, ctx)
        began = time.time()
        if self.dry_run:
            self._plan().step(f"\n== step {plan.index + 1}: {plan.step.name}")
        try:
            caller.run_generator(pod, watch, ctx.cancel, traffic_bound_s(plan))
        finally:
            watch.cancel()
            for change in list(watch.pending):  # due after the traffic: they still happen
                if self.dry_run:
                    self._plan().note(f'at {change.at_s:g}s after the generator\'s "started" line:')
                self._fire(change, watch.pending)
        error = watch.event("error")
        if error is not None:
            self._delete_quietly(caller, [pod])
            raise RunnerError(f"load generator: {error.data.get('message', 'failed')}")
        if self.dry_run:
            fleet.proxy_logs(None)
            caller.delete([pod])
            self._plan().end_section()
            return StepTraffic((), 0.0, 0.0)
        time.sleep(self.timeouts.settle_s)
        since_s = time.time() - began + 5.0
        logs = fleet.proxy_logs(since_s) + breaks.take_logs()
        self._delete_quietly(caller, [pod])
        started = float(watch.seen.get("started", began))
        records = records_from_logs(logs, self.run_started, since=started - 0.05)
        self.counts.update(edge_counts(records))
        first = self.traffic_span[0] if self.traffic_span else started
        self.traffic_span = (first, time.time())
        done = watch.event("done")
        ctx.progress(1.0, int(done.number("sent")) if done is not None else len(records))
        return StepTraffic(
            tuple(records), started - self.run_started, watch.duration(), tuple(self.events)
        )

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        """The step's window in the cluster's Prometheus (a
        :class:`~mesh.observe.query.MetricsExecutor`): from the graded traffic's start to a
        second after its end, asked once Prometheus has scraped that end (``Timeouts.scrape_s``
        later, waited for here: the answers are evaluated at the window's end, in the past);
        None without a Prometheus. A multi-cluster run asks the first cluster's."""
        fleet = self._fleet()
        where = self.prometheus_url or "the cluster's Prometheus (istio-system/prometheus)"
        if self.dry_run:
            plan = self._plan()
            plan.note(
                f"wait {self.timeouts.scrape_s:g}s for Prometheus to scrape the step, then "
                f"grade its promql/alert expectations ($__range: the step's graded window):"
            )
            return PlanStepMetrics(plan.note, index, 0.0, where)
        start = self.run_started + started_at + warmup_s
        end = self.run_started + started_at + duration_s + 1.0
        home = fleet.member(fleet.home)
        assert isinstance(home, LiveCluster)
        client = prometheus_client(home.api, self.prometheus_url)
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

    @staticmethod
    def _delete_quietly(member: Member, manifests: Sequence[Manifest]) -> None:
        with contextlib.suppress(KubeError):
            member.delete(manifests)

    def close(self) -> None:
        """Delete the lesson's resources and generators, undo the breaks, keep the app. An API
        that does not answer is retried for ``timeouts.cleanup_s``; what is left is reported
        with the command that removes it."""
        fleet = self.fleet
        if fleet is None:
            self._close_apis()
            return
        self._cross_check(fleet.member(fleet.home))
        if self.dry_run:
            self._plan().note("\n== close: back to the app as it was")
        problems: list[str] = []
        tasks: tuple[tuple[str, Callable[[], None]], ...] = (
            ("load generators", lambda: delete_generators(fleet, self.namespace, self.run_id)),
            ("breaks", self._undo_breaks),
            ("lesson resources", lambda: restore_app(fleet, self.applied)),
        )
        for what, task in tasks:
            error = retry(task, self.timeouts.cleanup_s)
            if error is not None:
                problems.append(f"{what}: {error}")
        if problems:
            self.report(leftover_hint(problems, self.run_id))
        if self.dry_run:
            self._plan_text = self._plan().text()
        self._close_apis()
        self.fleet = None

    def _close_apis(self) -> None:
        for api in self.apis:
            api.close()
        self.apis = []

    def _cross_check(self, cluster: Member) -> None:
        """Records per edge beside ``istio_requests_total`` (reported, never graded)."""
        if isinstance(cluster, PlanCluster):
            cluster.note("\n== after the last step: Istio's metrics as a cross-check")
            cluster.prometheus(prometheus_query(0), 0.0)
            return
        if self.counts and self.traffic_span is not None:
            self.cross_checks = cross_check(
                cluster, self.counts, self.traffic_span, self.timeouts.scrape_s, self.report,
                clock=time,
            )  # fmt: skip

    def _undo_breaks(self) -> None:
        self._fleet()
        assert self.breaks is not None

        def current(name: str) -> Manifest | None:
            return self.applied.current.get(
                ("Deployment", self.namespace, name)
            ) or self.app_deployments.get(name)

        self.breaks.undo(current)

    def plan_text(self) -> str:
        """The recorded plan of a dry run (kept after ``close``)."""
        if self.fleet is not None and self.dry_run:
            return self._plan().text()
        return self._plan_text
