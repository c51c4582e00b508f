"""``meshplay up [PATH]``: start the app on real Envoy sidecars and leave it running.

PATH is an app folder (default ``lessons/apps/ecommerce``) or a lesson folder (its app, with the
resources of steps 1..K applied when ``--step K`` is given). Every replica runs as a process with
its own Envoy sidecar, plus the ingress gateway, on allocated 127.0.0.1 ports. The PIDs, ports
and admin URLs go to a state file (``$MESHPLAY_STATE_DIR``, default ``~/.local/state/meshplay``)
so ``meshplay down`` stops exactly those processes and ``meshplay proxy-status`` finds the
Envoys. ``--foreground`` keeps the command attached and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

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
    p.set_defaults(handler=_run)


def _resources(path: Path, step: int) -> tuple[str, tuple[Any, ...]]:
    from mesh.app import load_app
    from mesh.lesson import load_lesson
    from mesh.state import lesson_states

    if (path / "lesson.yaml").is_file():
        lesson = load_lesson(path)
        if step:
            return lesson.id, _with_app_istio(
                lesson.app.path, lesson_states(lesson)[step - 1].resources
            )
        return lesson.id, _with_app_istio(lesson.app.path, lesson.app.resources)
    app = load_app(path)
    return app.name, _with_app_istio(app.path, app.resources)


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


def _detach(args: argparse.Namespace) -> int:
    """Run ``up --foreground`` as a detached owner process (Envoy stops when its parent exits,
    so the parent must outlive this command), wait for its state file and print it."""
    import subprocess

    from cluster.local.state import MeshStateFile, state_dir

    state_file = state_dir() / "local.json"
    if _already_up(state_file):
        return 2
    state_file.unlink(missing_ok=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    log = state_dir() / "up.log"
    argv = [sys.executable, "-m", "playground", "up", str(args.path), "--foreground",
            "--step", str(args.step), "--seed", str(args.seed)]  # fmt: skip
    with log.open("wb") as out:
        owner = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        record = MeshStateFile.read(state_file)
        if record is not None and record.owner_pid == owner.pid:
            print(_table(record, record.ready_s))
            print(f"state: {state_file}   stop with: meshplay down", file=sys.stderr)
            return 0
        if owner.poll() is not None:
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            return 2
        time.sleep(0.1)
    from cluster.local.procs import stop_pid

    stop_pid(owner.pid)
    print(f"error: the mesh did not come up in time (see {log})", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    if not args.foreground:
        return _detach(args)
    from cluster.local.mesh import LocalMesh
    from cluster.local.procs import terminate_on_signals
    from cluster.local.state import MeshStateFile, state_dir

    state_file = state_dir() / "local.json"
    if _already_up(state_file):
        return 2
    try:
        name, resources = _resources(args.path, args.step)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    workdir = state_dir() / "local-run"
    mesh = LocalMesh(workdir, seed=args.seed)
    try:
        with terminate_on_signals():
            mesh.start(resources)
            record = MeshStateFile.of(mesh, name)
            record.write(state_file)
            print(_table(record, mesh.started_s), flush=True)
            print("running; Ctrl-C (or meshplay down) stops every process", file=sys.stderr)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        mesh.stop()
        state_file.unlink(missing_ok=True)
        print("stopped", file=sys.stderr)
        return 0
    except (RunnerError, OSError) as exc:
        mesh.stop()
        state_file.unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2


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
