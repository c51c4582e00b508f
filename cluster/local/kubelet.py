"""The kubelet's restart loop for the local mesh: a container that exits is reported and started
again (``restartPolicy: Always``, the default of a Deployment's pods).

In Kubernetes a pod is a group of containers; when one of them exits (it crashed, the OOM killer
took it, someone ran ``kill -9`` on it) the kubelet records the exit (``lastState.terminated``:
exit code, or the signal as 128 + N), bumps the container's ``restartCount`` and starts the
*same container* again, alone: the app's container when the app died, ``istio-proxy`` when the
sidecar died, the other container of the pod untouched. The first restart is immediate; a
container that keeps dying waits 10 s, 20 s, 40 s ... (capped at 5 min, ``CrashLoopBackOff``),
and the back-off is forgotten once it has run for 10 minutes.

Here a pod is an app process and an Envoy process (:class:`~cluster.local.pods.PodProcesses`);
:class:`Kubelet` polls them from a background thread. A process meshplay stopped on purpose (a
lesson's ``break: {kill: N}``, which leaves the pod down until ``restore``) is marked ``dead`` by
the mesh before it is stopped and is left alone. Any other exit is a death: reported, then
restarted with the same command, environment and ports, and for an Envoy with the same
bootstrap, which reads the xDS files it last accepted (its current config, as istiod would push
it again to a new ``istio-proxy``). The restart is reported once the process is ready again.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mesh.runner import RunnerError

if TYPE_CHECKING:
    from cluster.local.mesh import LocalMesh, PodProcesses

__all__ = ["APP", "BACKOFF_MAX_S", "ISTIO_PROXY", "Kubelet", "describe_exit"]

APP = "app"
ISTIO_PROXY = "istio-proxy"
BACKOFF_MAX_S = 300.0
"""The kubelet's cap on a crash-looping container's restart delay."""
BACKOFF_RESET_S = 600.0
"""A container that ran this long without exiting starts its back-off from zero again."""

EventSink = Callable[[str, str, str], None]
"""(kind, pod, detail): ``pod-died`` or ``pod-restarted``."""


def describe_exit(returncode: int | None) -> str:
    """``exit code 1`` or ``signal 9 (SIGKILL)``, from a Popen return code."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"signal {-returncode} ({name})"
    return f"exit code {returncode}"


@dataclass
class _Container:
    """What the kubelet keeps per container: restarts, and when the next one is due."""

    restarts: int = 0
    started: float = 0.0
    due: float | None = None
    """When a reported death gets its restart (monotonic), None while it runs."""


class Kubelet:
    """Watches every pod's app and sidecar and restarts what exits without being asked to.

    ``backoff_s`` is the delay before the second restart of a container (doubled after each
    further one); the first restart is immediate, as the kubelet's is. Use :meth:`start` and
    :meth:`stop` (which the mesh calls before it stops its processes, so an orderly shutdown is
    not taken for deaths).
    """

    def __init__(
        self,
        mesh: LocalMesh,
        on_event: EventSink,
        *,
        poll_s: float = 0.05,
        backoff_s: float = 10.0,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.mesh = mesh
        self.on_event = on_event
        self.poll_s = poll_s
        self.backoff_s = backoff_s
        self.ready_timeout_s = ready_timeout_s
        self.containers: dict[tuple[str, str], _Container] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="meshplay-kubelet", daemon=True)

    def start(self) -> None:
        """Begin watching in the background."""
        now = time.monotonic()
        for name in self.mesh.pods:
            for container in (APP, ISTIO_PROXY):
                self.containers[(name, container)] = _Container(started=now)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (waits for a restart under way to finish)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def restart_count(self, pod: str, container: str) -> int:
        """How often ``container`` of ``pod`` was restarted (the pod's ``restartCount``)."""
        state = self.containers.get((pod, container))
        return state.restarts if state else 0

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def check(self) -> None:
        """One pass over every pod: report new deaths, restart the ones that are due."""
        with self.mesh.lock:
            for name, pp in self.mesh.pods.items():
                if pp.dead or pp.skipped or self._stop.is_set():
                    continue  # meshplay took it down (a lesson's kill), or never started it
                for container in (APP, ISTIO_PROXY):
                    self._check(name, pp, container)

    def _process_name(self, pp: PodProcesses, container: str) -> str:
        if container == APP:
            return pp.app
        return pp.proxy.process_name if pp.proxy is not None else ""

    def _check(self, name: str, pp: PodProcesses, container: str) -> None:
        pname = self._process_name(pp, container)
        proc = self.mesh.supervisor.procs.get(pname) if pname else None
        if proc is None:
            return
        state = self.containers.setdefault((name, container), _Container(started=time.monotonic()))
        now = time.monotonic()
        if proc.running():
            return
        if state.due is None:  # a new death
            if now - state.started >= BACKOFF_RESET_S:
                state.restarts = 0
            delay = 0.0 if state.restarts == 0 else self.backoff_s * 2 ** (state.restarts - 1)
            delay = min(delay, BACKOFF_MAX_S)
            state.due = now + delay
            wait = f"; back-off {delay:g} s" if delay else ""
            self.on_event(
                "pod-died",
                name,
                f"{container} exited ({describe_exit(proc.popen.returncode)}; pid {proc.pid}"
                f"){wait}",
            )
        if now < state.due:
            return
        began = time.monotonic()
        try:
            if container == APP:
                self.mesh.supervisor.restart(pname)
            else:
                assert pp.proxy is not None
                pp.proxy.restart()
            state.restarts += 1
            state.started = time.monotonic()
            state.due = None
            self.mesh.wait_pod_ready(pp, container == APP, began + self.ready_timeout_s)
        except RunnerError:  # it died again while starting: the next pass reports it
            return
        self.on_event(
            "pod-restarted",
            name,
            f"{container} restarted (restartCount {state.restarts}), ready after "
            f"{time.monotonic() - began:.2f} s",
        )
