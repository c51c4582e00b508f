"""``LocalRunner``: a lesson on real Envoy sidecars and the real services, on this machine.

A run starts the app's pods (:class:`~cluster.local.mesh.LocalMesh`), then per step: applies the
step's resources live (file xDS; a NACK is reported and the previous config keeps serving, as
with istiod), turns the services' knobs for ``break``, drives the step's traffic while firing
its timed ``events``, reads the RequestRecords every proxy logged during the step, and grades
them with :mod:`mesh.checks` exactly as the simulator's records are graded. Every process is
stopped by PID at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cluster.accesslog import AccessLogTail
from cluster.local.envoy import ConfigRejectedError
from cluster.local.mesh import LocalMesh
from cluster.local.procs import terminate_on_signals
from cluster.local.traffic import Target, drive
from mesh.checks import evaluate_all
from mesh.lesson import Event, Lesson, LessonStep, TrafficSpec
from mesh.model import NetworkPolicy
from mesh.records import RequestRecord
from mesh.runner import LessonRun, Progress, RunnerError, RunOptions, StepResult
from mesh.state import MeshState, apply_event, lesson_states, step_state
from mesh.topology import INGRESS_GATEWAY, ProxyKind

__all__ = ["LocalRunner", "traffic_targets"]

SETTLE_MAX_S = 15.0
"""After a step's traffic, how long to wait for requests still in flight in the mesh (a call
delayed downstream after its caller gave up finishes, and is logged, in the same step)."""

LOG_FLUSH_S = 0.35
"""Envoy flushes access logs every 100 ms (``--file-flush-interval-msec``); wait a bit more."""


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
        port = service.port(spec.port or 80) or service.ports[0]
        local = gw.ports.listeners.get(port.target_port)
        if local is None:
            raise RunnerError(f"the ingress gateway has no listener for port {port.port}")
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


class LocalRunner:
    """Runs lessons on real Envoy + the real services (the ``local`` runner)."""

    name = "local"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        time_scale: float = 1.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.time_scale = time_scale
        self.report = report or _to_stderr
        self.rejections: list[ConfigRejectedError] = []
        self.started_s = 0.0

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run the lesson's steps on a fresh local mesh and grade every step."""
        _refuse_network_policies(lesson)
        _refuse_tcp_traffic(lesson, options)
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="meshplay-local-"))
        try:
            with terminate_on_signals(), LocalMesh(workdir, seed=options.seed) as mesh:
                return self._run(mesh, lesson, options)
        finally:
            if self.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _apply(self, mesh: LocalMesh, state: MeshState) -> None:
        try:
            mesh.apply(state.resources)
        except ConfigRejectedError as exc:
            self.rejections.append(exc)
            self.report(str(exc))

    def _run(self, mesh: LocalMesh, lesson: Lesson, options: RunOptions) -> LessonRun:
        state = MeshState(lesson.app.resources)
        mesh.start(state.resources)
        self.started_s = mesh.started_s
        run_started = time.time()
        steps = _steps_to_run(lesson, options)
        results: list[StepResult] = []
        for index, step in enumerate(steps):
            if options.cancel.is_set():
                break
            state = self._change(mesh, lesson, state, step)
            if step.runners and self_name_missing(step):
                continue
            result = self._step(
                mesh, lesson=lesson, index=index, total=len(steps), step=step,
                run_started=run_started, options=options,
            )  # fmt: skip
            results.append(result)
            state = MeshState(mesh.resources)  # includes what timed events applied
        return LessonRun(lesson=lesson, runner=self.name, seed=options.seed, steps=tuple(results))

    def _change(
        self, mesh: LocalMesh, lesson: Lesson, state: MeshState, step: LessonStep
    ) -> MeshState:
        new = step_state(lesson, state, step)
        if new.resources != state.resources:
            self._apply(mesh, new)
        for action in step.break_:
            mesh.break_workload(action)
        for event in step.events:
            if event.at_s <= 0:
                for action in event.break_:
                    mesh.break_workload(action)
        return new

    def _step(
        self,
        mesh: LocalMesh,
        *,
        lesson: Lesson,
        index: int,
        total: int,
        step: LessonStep,
        run_started: float,
        options: RunOptions,
    ) -> StepResult:
        began = time.monotonic()
        spec = mesh.identity.expand(lesson.traffic_of(step))
        if self.time_scale != 1.0 and spec.duration_s is not None:
            spec = replace(spec, duration_s=spec.duration_s * self.time_scale)
        tails = [AccessLogTail(p) for p in mesh.access_logs()]
        for tail in tails:
            tail.skip_to_end()
        timers = self._schedule(mesh, lesson, step)
        traffic_started = time.time()

        def progress(fraction: float, sent: int) -> None:
            if options.on_progress is not None:
                options.on_progress(Progress(index, total, fraction, sent))

        try:
            report = drive(
                spec,
                traffic_targets(mesh, spec),
                random.Random(options.seed * 1000 + index),
                cancel=options.cancel,
                on_progress=progress,
            )
        finally:
            for timer in timers:
                timer.cancel()
        mesh.wait_idle(SETTLE_MAX_S)
        time.sleep(LOG_FLUSH_S)
        cutoff = traffic_started - run_started + spec.warmup_s
        records: list[RequestRecord] = sorted(
            (r for tail in tails for r in tail.read(run_started) if r.start_time >= cutoff),
            key=lambda r: r.start_time,
        )
        if options.on_records is not None:
            options.on_records(index, records)
        duration = max(report.wall_s - spec.warmup_s, 1e-9)
        checks = evaluate_all(step.expect, records, duration)
        return StepResult(
            index=index,
            step=step,
            records=tuple(records),
            checks=checks,
            duration_s=duration,
            wall_s=time.monotonic() - began,
        )

    def _schedule(self, mesh: LocalMesh, lesson: Lesson, step: LessonStep) -> list[threading.Timer]:
        """Timers for the step's events at t > 0 (apply/delete live, break through knobs)."""
        timers = []
        state_box = [MeshState(mesh.resources)]

        def fire(event: Event) -> None:
            try:
                new = apply_event(lesson, state_box[0], event.apply, event.delete)
                if new.resources != state_box[0].resources:
                    self._apply(mesh, new)
                    state_box[0] = new
                for action in event.break_:
                    mesh.break_workload(action)
            except RunnerError as exc:
                self.report(f"event at {event.at_s:g}s failed: {exc}")

        for event in step.events:
            if event.at_s > 0:
                timer = threading.Timer(event.at_s * self.time_scale, fire, args=(event,))
                timer.daemon = True
                timer.start()
                timers.append(timer)
        return timers


def _to_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")


def self_name_missing(step: LessonStep) -> bool:
    """A step restricted to other runners."""
    return "local" not in step.runners


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


def _steps_to_run(lesson: Lesson, options: RunOptions) -> tuple[LessonStep, ...]:
    """The lesson's steps up to ``--step K`` (all without it)."""
    return lesson.steps[: options.until_step] if options.until_step else lesson.steps


def _refuse_tcp_traffic(lesson: Lesson, options: RunOptions) -> None:
    """The local load generator speaks HTTP only: a step that drives ``protocol: tcp`` traffic
    cannot be run here (say so before starting anything)."""
    for index, step in enumerate(_steps_to_run(lesson, options)):
        if step.runners and self_name_missing(step):
            continue
        if lesson.traffic_of(step).is_tcp:
            raise RunnerError(
                f'step {index + 1} "{step.name}": protocol: tcp traffic is not carried by the '
                "local runner; run this lesson with --runner sim (or kube)"
            )
