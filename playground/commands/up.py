"""``meshplay up [PATH]``: start the app on real Envoy sidecars and leave it running.

PATH is an app folder (default ``lessons/apps/ecommerce``) or a lesson folder (its app, with the
resources of steps 1..K applied when ``--step K`` is given). Every replica runs as a process with
its own Envoy sidecar, plus the ingress gateway, on allocated 127.0.0.1 ports. The PIDs, ports
and admin URLs go to a state file (``$MESHPLAY_STATE_DIR``, default ``~/.local/state/meshplay``)
so ``meshplay down`` stops exactly those processes and ``meshplay proxy-status`` finds the
Envoys. ``--foreground`` keeps the command attached and stops everything on Ctrl-C.

Without ``--foreground``, ``up`` starts a detached owner (``up --foreground`` in a new session)
that holds the mesh's process supervisor, waits until the owner reports the mesh ready, and
returns, leaving the owner running until ``meshplay down``. Until that hand-over, the mesh
belongs to this command: Ctrl-C or SIGTERM stops the owner and everything it started so far
(and waits for that), and if this command dies by a signal that runs no code (SIGKILL), the
owner sees its hand-over pipe close without a hand-over and stops itself. After it, the owner
lives on its own; whatever ends the owner ends its mesh (see ``cluster/local/procs.py``).

The owner is also the mesh's kubelet (:mod:`cluster.local.kubelet`): an app or Envoy that exits
without ``meshplay down`` asking (a crash, ``kill -9``) is restarted with the same ports and
config, as Kubernetes restarts a pod's container, and the state file is rewritten with its new
PID. Each death and restart is a line in the owner's log (``up.log`` in the state directory).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from mesh.diagnostics import DiagnosticError, render
from mesh.runner import RunnerError

__all__ = ["register"]

DEFAULT_APP = Path("lessons/apps/ecommerce")


def register(sub: Any) -> None:
    """Add the ``up`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="start an app on real Envoy sidecars (local runner) and leave it running",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="?", type=Path, default=DEFAULT_APP, metavar="PATH")
    p.add_argument("--step", type=int, default=0, metavar="K", help="apply lesson steps 1..K")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C stops every process"
    )
    # the detached owner's end of the hand-over pipe (internal: set by `up` for its owner)
    p.add_argument("--handover-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--no-monitoring",
        action="store_true",
        help="no Prometheus, Istio-metrics exporter or trace collector",
    )
    p.add_argument(
        "--sampling",
        type=float,
        default=100.0,
        metavar="PERCENT",
        help="Envoy's trace sampling (default 100)",
    )
    p.set_defaults(handler=_run)


def _resources(path: Path, step: int) -> tuple[str, tuple[Any, ...], Any]:
    """The name, resources and app behaviour (what pods without code run) of a lesson or app."""
    from mesh.app import load_app
    from mesh.lesson import load_lesson
    from mesh.state import lesson_states

    if (path / "lesson.yaml").is_file():
        lesson = load_lesson(path)
        behavior = lesson.app.behavior
        if step:
            return (
                lesson.id,
                _with_app_istio(lesson.app.path, lesson_states(lesson)[step - 1].resources),
                behavior,
            )
        return lesson.id, _with_app_istio(lesson.app.path, lesson.app.resources), behavior
    app = load_app(path)
    return app.name, _with_app_istio(app.path, app.resources), app.behavior


def _with_app_istio(app_path: Path, resources: tuple[Any, ...]) -> tuple[Any, ...]:
    """The app's own Istio config (``<app>/istio/``, e.g. the shop's Gateway + VirtualService, as
    Istio's samples ship them) applied first, so that the ingress URL serves the app; a resource
    of the same kind and name in ``resources`` wins."""
    from mesh.source import load_paths
    from mesh.state import MeshState

    folder = app_path / "istio"
    if not folder.is_dir():
        return resources
    loaded = load_paths([folder], default_namespace="default")
    if not loaded.ok:
        raise DiagnosticError(loaded.errors)
    return MeshState(loaded.resources).apply(resources).resources


def _already_up(state_file: Path) -> bool:
    from cluster.local.state import MeshStateFile

    existing = MeshStateFile.read(state_file)
    if existing is not None and existing.alive():
        print(f"a local mesh is already up ({len(existing.alive())} processes, "
              f"{state_file}); run meshplay down first", file=sys.stderr)  # fmt: skip
        return True
    return False


HANDOVER = b"keep\n"
"""What ``up`` writes to its owner once the mesh is ready: from then on the owner keeps it."""

OWNER_STOP_S = 20.0
"""How long an interrupted ``up`` waits for its owner to stop the mesh before it SIGKILLs the
owner (whose watchdog then kills the mesh)."""


def _detach(args: argparse.Namespace) -> int:
    """Start ``up --foreground`` as a detached owner process (it holds the supervisor, and the
    mesh dies with it), wait for its state file, print it and hand the mesh over."""
    import subprocess

    from cluster.local.procs import terminate_on_signals
    from cluster.local.state import state_dir

    state_file = state_dir() / "local.json"
    if _already_up(state_file):
        return 2
    state_file.unlink(missing_ok=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    log = state_dir() / "up.log"
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "playground", "up", str(args.path), "--foreground",
            "--step", str(args.step), "--seed", str(args.seed), "--handover-fd", str(read_end),
            "--sampling", str(args.sampling)]  # fmt: skip
    if args.no_monitoring:
        argv.append("--no-monitoring")
    with os.fdopen(write_end, "wb", buffering=0) as handover:
        try:
            with log.open("wb") as out:
                owner = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         pass_fds=(read_end,))  # fmt: skip
        finally:
            os.close(read_end)
        try:
            with terminate_on_signals():
                return _hand_over(owner, handover, state_file, log)
        except KeyboardInterrupt:
            print("stopping what was started so far", file=sys.stderr, flush=True)
            _stop_owner(owner, handover)
            raise


def _hand_over(owner: Any, handover: BinaryIO, state_file: Path, log: Path) -> int:
    """Wait until the owner has written the state file of a ready mesh, then hand it over."""
    from cluster.local.state import MeshStateFile, state_dir

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        record = MeshStateFile.read(state_file)
        if record is not None and record.owner_pid == owner.pid:
            handover.write(HANDOVER)
            print(_table(record, record.ready_s))
            _print_monitoring(state_dir())
            print(f"state: {state_file}   stop with: meshplay down", file=sys.stderr)
            return 0
        if owner.poll() is not None:
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            return 2
        time.sleep(0.1)
    print(f"error: the mesh did not come up in time (see {log})", file=sys.stderr)
    _stop_owner(owner, handover)
    return 2


def _stop_owner(owner: Any, handover: BinaryIO) -> None:
    """Stop an owner that was not handed the mesh, and wait until it has stopped everything.

    Closing the hand-over pipe is the one stop request (a SIGTERM besides it could arrive while
    the owner is already stopping, and end it half-way); an owner that does not finish in time
    is SIGKILLed, and its watchdog then kills what it had started."""
    import subprocess

    handover.close()
    try:
        owner.wait(timeout=OWNER_STOP_S)
    except subprocess.TimeoutExpired:
        owner.kill()
        owner.wait()


def _watch_handover(fd: int) -> None:
    """The owner's side of the hand-over: until ``up`` writes :data:`HANDOVER`, the mesh is
    ``up``'s; if the pipe closes first (``up`` was interrupted or killed), SIGTERM the main
    thread, which stops everything started so far."""
    import signal
    import threading

    def watch() -> None:
        received = b""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(64):
                received += chunk
                if HANDOVER in received:
                    return
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    threading.Thread(target=watch, name="up-handover", daemon=True).start()


def _run(args: argparse.Namespace) -> int:
    if not args.foreground:
        return _detach(args)
    from cluster.local.external import external_ports
    from cluster.local.multicluster import MultiClusterMesh
    from cluster.local.procs import terminate_on_signals
    from cluster.local.state import MeshStateFile, state_dir

    state_file = state_dir() / "local.json"
    if _already_up(state_file):
        return 2
    try:
        name, resources, behavior = _resources(args.path, args.step)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    workdir = state_dir() / "local-run"
    # a LocalMesh unless the lesson declares clusters (docs/multicluster.md)
    mesh = MultiClusterMesh(workdir, seed=args.seed, behavior=behavior)
    mesh.outside = external_ports(resources)  # external ServiceEntry hosts, stood up locally
    monitoring_file = state_dir() / "monitoring.json"
    try:
        with terminate_on_signals():
            if args.handover_fd is not None:
                _watch_handover(args.handover_fd)
            monitored = _monitoring(mesh, args)
            mesh.start(resources)
            if monitored is not None:
                monitored.start()
                monitored.info().write(monitoring_file)
            record = MeshStateFile.of(mesh, name)
            record.write(state_file)
            mesh.watch(_restarts_recorded(mesh, name, record.started_at, state_file))
            print(_table(record, mesh.started_s), flush=True)
            _print_monitoring(state_dir())
            print("running; Ctrl-C (or meshplay down) stops every process", file=sys.stderr)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        mesh.stop()
        state_file.unlink(missing_ok=True)
        monitoring_file.unlink(missing_ok=True)
        print("stopped", file=sys.stderr)
        return 0
    except (RunnerError, OSError) as exc:
        mesh.stop()
        state_file.unlink(missing_ok=True)
        monitoring_file.unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _restarts_recorded(mesh: Any, name: str, started_at: float, state_file: Path) -> Any:
    """The kubelet's event sink under ``up``: each event a line in the owner's log, and after a
    restart the state file again, with the restarted process's new PID (else ``down`` would
    not find it, and ``up`` would not see the mesh as up)."""
    from cluster.local.state import MeshStateFile

    def on_event(kind: str, pod: str, detail: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {kind} {pod}: {detail}", flush=True)
        if kind == "pod-restarted":
            record = MeshStateFile.of(mesh, name)
            record.started_at = started_at
            record.write(state_file)

    return on_event


def _monitoring(mesh: Any, args: argparse.Namespace) -> Any:
    """Prometheus, the exporter and the trace collector for the mesh (prepared before it
    starts: the proxies' tracer names the collector), unless --no-monitoring."""
    if args.no_monitoring:
        return None
    from cluster.local.monitoring import Monitoring

    monitoring = Monitoring(mesh, tracing=args.sampling)
    monitoring.prepare()
    return monitoring


def _print_monitoring(folder: Path) -> None:
    from cluster.local.monitoring import MonitoringInfo

    info = MonitoringInfo.read(folder / "monitoring.json")
    if info is not None:
        print(f"\nprometheus: {info.prometheus}   (meshplay query 'PROMQL')")
        if info.collector:
            print(f"traces:     {info.collector}/api/v2/traces   (meshplay traces)")
        print("logs:       meshplay logs [--request-id ID] [-f]")


def _table(record: Any, started_s: float) -> str:
    lines = [f"{record.app}: {len(record.pods)} pods ready in {started_s:.1f}s", ""]
    lines.append(f"{'POD':<26} {'PROXY':<8} {'APP':>6} {'INBOUND':>8} {'OUTBOUND':>9} {'ADMIN':>6}")
    lines.extend(
        f"{pod.name:<26} {pod.proxy:<8} {_first(pod.app):>6} {_first(pod.inbound):>8} "
        f"{_first(pod.listeners, '8080'):>9} {pod.admin_port or '-':>6}"
        for pod in record.pods
    )
    gateway = next((p for p in record.pods if p.proxy == "router"), None)
    lines.append("")
    if gateway is not None and "8080" in gateway.listeners:
        lines.append(f"ingress: http://127.0.0.1:{gateway.listeners['8080']}/ "
                     "(the storefront, through the ingress gateway)")  # fmt: skip
    logs = {str(Path(p.access_log).parent) for p in record.pods if p.access_log}
    apps = {str(Path(p.log).parent) for p in record.processes if p.name.startswith("app-")}
    lines += [f"access logs: {d}/<pod>.log (Envoy, JSON lines)" for d in sorted(logs)]
    lines += [f"app logs: {d}/app-<pod>.log (Envoy's own: envoy-<pod>.log)" for d in sorted(apps)]
    return "\n".join(lines)


def _first(ports: dict[str, int], key: str = "") -> str:
    if key and key in ports:
        return str(ports[key])
    return str(next(iter(ports.values()))) if ports else "-"
