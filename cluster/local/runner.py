"""``LocalExecutor``: the lesson engine's executor on real Envoy sidecars and the real services.

The engine (:func:`mesh.engine.run_lesson`) decides which steps run, what the configuration is,
what is graded and how; this module starts the app's pods (:class:`~cluster.local.mesh.LocalMesh`),
applies pushed states live, turns the services' knobs, drives the traffic from this machine and
reads the RequestRecords every proxy logged. Every process is stopped by PID at ``close``, on an
error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from cluster.accesslog import AccessLogTail, wait_for_logs
from cluster.local.admin import AdminError
from cluster.local.apps import unrunnable
from cluster.local.envoy import ConfigRejectedError
from cluster.local.external import external_ports
from cluster.local.gateway_tls import client_context
from cluster.local.mesh import LocalMesh
from cluster.local.multicluster import MultiClusterMesh, name_remote_servers, tag_cluster
from cluster.local.procs import terminate_on_signals
from cluster.local.traffic import Target, drive
from mesh.engine import LessonRunner
from mesh.envoy.translate import ProxyConfig
from mesh.lesson import BreakAction, Lesson, TrafficSpec
from mesh.model import NetworkPolicy
from mesh.records import RequestRecord
from mesh.runner import (
    DriveContext,
    RunEvent,
    RunnerError,
    StepPlan,
    StepTraffic,
    TimedChange,
)
from mesh.state import MeshState, lesson_states
from mesh.topology import INGRESS_GATEWAY, ProxyKind

__all__ = ["LocalExecutor", "LocalRunner", "traffic_targets"]

SETTLE_MAX_S = 15.0
"""After a step's traffic, how long to wait for requests still in flight in the mesh (a call
delayed downstream after its caller gave up finishes, and is logged, in the same step)."""

STREAM_INTERVAL_S = 0.5
"""How often a running step's access logs are read for live views."""

_POD_EVENTS = frozenset({"pod-died", "pod-restarted"})


def traffic_targets(mesh: LocalMesh, spec: TrafficSpec) -> list[Target]:
    """Where a step's requests enter the mesh.

    ``outside``: straight to the pods of Service ``to`` (their sidecars' inbound ports), as a
    client in the cluster without a sidecar would; ``ingress``: the ingress gateway's listener for
    Service port 80 (or ``port``) with Host ``to``; a Deployment name: that pod's sidecar, used as
    its app uses it (an HTTP proxy; the Host picks the route).
    """
    topology = mesh.topology
    assert topology is not None
    if spec.from_ == "ingress":
        gw = next((p for p in mesh.pods.values() if p.pod.workload == INGRESS_GATEWAY), None)
        service = next((s for s in topology.services if s.name == INGRESS_GATEWAY), None)
        if gw is None or service is None:
            raise RunnerError("no ingress gateway in this mesh")
        https = spec.scheme == "https"
        port = service.port(spec.port or (443 if https else 80))
        if port is None:
            exposed = ", ".join(str(p.port) for p in service.ports)
            raise RunnerError(
                f"the ingress gateway's Service has no port {spec.port} (it exposes {exposed})"
            )
        local = gw.ports.listeners.get(port.target_port)
        if local is None:
            raise RunnerError(f"the ingress gateway has no listener for port {port.port}")
        if https:  # TLS to the gateway, SNI = the host of `to`, as the spec's client trusts
            tls = client_context(mesh.ca, spec, mesh.resources, mesh.workdir / "clients")
            return [Target("127.0.0.1", local, spec.to, tls=tls, sni=spec.to.rsplit(":", 1)[0])]
        return [Target("127.0.0.1", local, spec.to)]
    service = next((s for s in topology.services if s.name == spec.to), None)
    if service is None:
        raise RunnerError(f'traffic goes to "{spec.to}", which is not a Service of the app')
    sport = service.port(spec.port) if spec.port else service.ports[0]
    if sport is None:
        raise RunnerError(f"service {spec.to} has no port {spec.port}")
    authority = f"{spec.to}:{sport.port}"
    if spec.from_ == "outside":
        targets = []
        for pod in topology.endpoints(service):
            pp = mesh.pods[pod.name]
            if pp.pod.proxy is ProxyKind.SIDECAR and sport.target_port in pp.ports.inbound:
                targets.append(Target("127.0.0.1", pp.ports.inbound[sport.target_port], authority))
            elif sport.target_port in pp.ports.app:
                targets.append(Target("127.0.0.1", pp.ports.app[sport.target_port], authority))
        if not targets:
            raise RunnerError(f"service {spec.to} has no running pod")
        return targets
    clients = mesh.pods_of(spec.from_)
    if not clients or clients[0].proxy is None:
        raise RunnerError(f'traffic from "{spec.from_}": no such workload with a sidecar')
    listener = clients[0].ports.listeners.get(sport.port)
    if listener is None:
        raise RunnerError(f"{spec.from_}'s sidecar has no outbound listener for port {sport.port}")
    return [Target("127.0.0.1", listener, authority, via_proxy=True)]


class LocalExecutor:
    """Carries a lesson's traffic through real Envoys and the real services (the ``local`` runner).

    ``open`` starts a fresh local mesh (in ``workdir``, or a temporary folder removed at
    ``close``); a push is applied live (file xDS; a NACK is reported and the previous config keeps
    serving, as with istiod); breaks turn the services' knobs; ``drive`` tails every proxy's
    access log while the step's traffic runs and its timeline fires on timers, waits for requests
    still in flight, and parses what the proxies logged.
    """

    name = "local"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        time_scale: float = 1.0,
        report: Callable[[str], None] | None = None,
        rejections: list[ConfigRejectedError] | None = None,
    ) -> None:
        self.workdir = workdir
        self.time_scale = time_scale
        self.report = report or _to_stderr
        self.rejections: list[ConfigRejectedError] = [] if rejections is None else rejections
        """Every push an Envoy NACKed (the previous config kept serving)."""
        self.mesh: LocalMesh | None = None
        self.run_started = 0.0
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self.events: list[RunEvent] = []
        self._handed = 0.0

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        """NetworkPolicy needs a CNI and TCP traffic a TCP generator: refuse both up front."""
        _refuse_network_policies(lesson)
        _refuse_tcp_traffic(steps)
        _refuse_unrunnable_pods(lesson)

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        """Start the app's pods and the ingress gateway behind their sidecars."""
        stack = self._stack
        if self.workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="meshplay-local-"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        else:
            workdir = self.workdir
        stack.enter_context(terminate_on_signals())
        # a LocalMesh whose pods may be placed in several clusters (docs/multicluster.md)
        mesh = stack.enter_context(
            MultiClusterMesh(workdir, seed=seed, behavior=lesson.app.behavior)
        )
        # the external hosts any step's ServiceEntries name exist before the lesson starts
        mesh.outside = external_ports(r for rs in lesson.files.values() for r in rs)
        self._before_start(lesson, mesh)
        mesh.start(state.resources)
        self.mesh = mesh
        self._after_start(mesh)
        self.run_started = time.time()
        mesh.watch(self._event)  # pods that die are reported and restarted, as by the kubelet

    def _before_start(self, lesson: Lesson, mesh: LocalMesh) -> None:
        """Hook: prepare what the proxies' config must name before the pods start."""

    def _after_start(self, mesh: LocalMesh) -> None:
        """Hook: start what runs beside the mesh once it is up."""

    def push(self, state: MeshState) -> None:
        """Translate and push to every Envoy; a rejection is reported, the old config serves."""
        mesh = self._mesh()
        with self._lock:
            try:
                mesh.apply(state.resources)
            except ConfigRejectedError as exc:
                self.rejections.append(exc)
                self.report(str(exc))
                for rejection in exc.rejections:
                    self._event("config-rejected", rejection.proxy, rejection.render())

    def _event(self, kind: str, subject: str, detail: str) -> None:
        self.events.append(RunEvent(time.time() - self.run_started, kind, subject, detail))

    def break_workload(self, action: BreakAction) -> None:
        """The services' knobs (``PUT /admin/knobs``), or kill and restart replicas."""
        mesh = self._mesh()
        with self._lock:
            mesh.break_workload(action)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        """Drive the step's traffic; returns every record the proxies logged during it."""
        mesh = self._mesh()
        spec = mesh.identity.expand(plan.traffic)
        if self.time_scale != 1.0 and spec.duration_s is not None:
            spec = replace(spec, duration_s=spec.duration_s * self.time_scale)
        tails = [AccessLogTail(p) for p in mesh.access_logs()]
        for tail in tails:
            tail.skip_to_end()
        pending = list(timeline)
        # a pod that died (or came back) between steps is reported with the next step
        self.events = [e for e in self.events if e.kind in _POD_EVENTS and e.at > self._handed]
        timers = [self._timer(change, pending) for change in timeline]
        clusters = mesh.log_clusters() if isinstance(mesh, MultiClusterMesh) else {}
        stream = _Stream(tails, self.run_started, ctx, clusters)
        traffic_started = time.time()
        stream.start()
        try:
            report = drive(
                spec,
                traffic_targets(mesh, spec),
                random.Random(plan.seed),
                cancel=ctx.cancel,
                on_progress=ctx.progress,
            )
        except BaseException:
            stream.stop()
            raise
        finally:
            for timer in timers:
                timer.cancel()
        for change in list(pending):  # due after the traffic: they still happen
            self._fire(change, pending)
        if not mesh.wait_idle(SETTLE_MAX_S):
            self.report(f"requests still in flight {SETTLE_MAX_S:.0f} s after the traffic ended")
        wait_for_logs([tail.path for tail in tails])
        stream.stop()
        stream.read()  # what the proxies logged last
        started = traffic_started - self.run_started
        events, self.events = tuple(self.events), []
        self._handed = time.time() - self.run_started
        records = name_remote_servers(stream.records)  # the peer metadata exchange
        return StepTraffic(tuple(records), started, report.wall_s, events)

    def _timer(self, change: TimedChange, pending: list[TimedChange]) -> threading.Timer:
        timer = threading.Timer(change.at_s * self.time_scale, self._fire, args=(change, pending))
        timer.daemon = True
        timer.start()
        return timer

    def _fire(self, change: TimedChange, pending: list[TimedChange]) -> None:
        with self._lock:
            if change not in pending:
                return
            pending.remove(change)
        self._event("event", f"at {change.at_s:g} s", change.description)
        try:
            if change.state is not None:
                self.push(change.state)
            for action in change.breaks:
                self.break_workload(action)
        except RunnerError as exc:
            self.report(f"event at {change.at_s:g}s failed: {exc}")

    def close(self) -> None:
        """Stop every process by PID; remove a temporary work folder."""
        self.mesh = None
        self._stack.close()

    def proxy_memory_mb(self, pod: str, config: ProxyConfig) -> float | None:
        """The real Envoy's heap in use: ``allocated`` of its admin ``/memory`` (MiB), read now
        (after the step's traffic, its configuration loaded); None without a running proxy."""
        pp = self.mesh.pods.get(pod) if self.mesh is not None else None
        if pp is None or pp.proxy is None:
            return None
        try:
            return pp.proxy.admin.memory()["allocated"] / 2**20
        except (AdminError, KeyError, ValueError):
            return None

    def _mesh(self) -> LocalMesh:
        if self.mesh is None:
            raise RunnerError("the local mesh is not running (open() first)")
        return self.mesh


class LocalRunner(LessonRunner):
    """Runs lessons on real Envoy + the real services (the ``local`` runner)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        time_scale: float = 1.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.rejections: list[ConfigRejectedError] = []
        """Every push an Envoy NACKed in this runner's runs."""
        super().__init__(
            "local",
            lambda: LocalExecutor(
                workdir, time_scale=time_scale, report=report, rejections=self.rejections
            ),
        )


class _Stream:
    """Reads every proxy's access log while a step runs and hands new records to the live views
    every ``STREAM_INTERVAL_S`` (the TUI shows a local step's traffic as it happens)."""

    def __init__(
        self,
        tails: list[AccessLogTail],
        run_started: float,
        ctx: DriveContext,
        clusters: Mapping[Path, str] | None = None,
    ) -> None:
        self.tails = tails
        self.clusters = clusters or {}
        """Each log's cluster (multi-cluster meshes): its records are tagged with it."""
        self.run_started = run_started
        self.ctx = ctx
        self.records: list[RequestRecord] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="meshplay-log-stream", daemon=True)

    def start(self) -> None:
        """Begin tailing in the background."""
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(STREAM_INTERVAL_S):
            self.read()

    def read(self) -> list[RequestRecord]:
        """Parse what was appended since the last read; emit and keep it."""
        batch: list[RequestRecord] = []
        for tail in self.tails:
            new = tail.read(self.run_started)
            cluster = self.clusters.get(tail.path)
            batch.extend(tag_cluster(new, cluster) if cluster else new)
        if batch:
            batch.sort(key=lambda r: r.start_time)
            self.ctx.emit(batch)
            self.records.extend(batch)
        return batch

    def stop(self) -> None:
        """Stop tailing (the last read is the caller's, after the logs are flushed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _to_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")


def _refuse_network_policies(lesson: Lesson) -> None:
    """NetworkPolicy is enforced by the CNI below the sidecar; processes on 127.0.0.1 have none,
    so a lesson that relies on one cannot be graded here (say so, rather than pass vacuously)."""
    for state in lesson_states(lesson):
        policies = [r for r in state.resources if isinstance(r, NetworkPolicy)]
        if policies:
            names = ", ".join(f"{p.namespace}/{p.name}" for p in policies)
            raise RunnerError(
                f"NetworkPolicy {names} needs a CNI to be enforced, which the local runner does "
                "not have; run this lesson with --runner sim (or kube)"
            )


def _refuse_unrunnable_pods(lesson: Lesson) -> None:
    """A pod with neither code of the project's nor a behaviour declaration cannot be started:
    say which and where before anything starts (MPY4005)."""
    problems = unrunnable(lesson.app.resources, lesson.app.behavior)
    if problems:
        raise RunnerError("\n".join(d.render() for d in problems))


def _refuse_tcp_traffic(steps: Sequence[StepPlan]) -> None:
    """The local load generator speaks HTTP only: a step that drives ``protocol: tcp`` traffic
    cannot be run here (say so before starting anything)."""
    for plan in steps:
        if plan.runs and plan.traffic.is_tcp:
            raise RunnerError(
                f'step {plan.index + 1} "{plan.step.name}": protocol: tcp traffic is not carried '
                "by the local runner; run this lesson with --runner sim (or kube)"
            )
