"""The state file of a mesh left running by ``meshplay up``: PIDs, ports and admin URLs.

``meshplay down`` stops exactly the processes listed here (a PID is only signalled while it
still names the process that started at the recorded time), and ``meshplay proxy-status`` /
``proxy-config --live`` find each Envoy's admin port here. The file lives in
``$MESHPLAY_STATE_DIR`` (default ``~/.local/state/meshplay``) as ``local.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cluster.local.admin import AdminClient, AdminError
from cluster.local.mesh import LocalMesh
from cluster.local.procs import ProcessInfo, pid_alive, process_start_ticks, stop_pid

__all__ = [
    "MeshStateFile",
    "PodEntry",
    "ProxyStatus",
    "live_config_dump",
    "proxy_status",
    "state_dir",
    "stop_recorded",
]


def state_dir() -> Path:
    """``$MESHPLAY_STATE_DIR`` or ``~/.local/state/meshplay``."""
    env = os.environ.get("MESHPLAY_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "meshplay"


@dataclass(frozen=True, slots=True)
class PodEntry:
    """One pod of the running mesh as recorded."""

    name: str
    workload: str
    namespace: str
    proxy: str
    admin_port: int
    knob_port: int
    listeners: dict[str, int]
    inbound: dict[str, int]
    app: dict[str, int]
    access_log: str


@dataclass
class MeshStateFile:
    """Everything ``down`` and ``proxy-status`` need."""

    workdir: str
    app: str
    started_at: float
    processes: list[ProcessInfo] = field(default_factory=list)
    pods: list[PodEntry] = field(default_factory=list)
    owner_pid: int = 0
    ready_s: float = 0.0

    @classmethod
    def of(cls, mesh: LocalMesh, app: str) -> MeshStateFile:
        """Record a started mesh."""
        pods = [
            PodEntry(
                name=name,
                workload=pp.pod.workload,
                namespace=pp.pod.namespace,
                proxy=pp.pod.proxy.value,
                admin_port=pp.admin_port,
                knob_port=pp.knob_port,
                listeners={str(k): v for k, v in pp.ports.listeners.items()},
                inbound={str(k): v for k, v in pp.ports.inbound.items()},
                app={str(k): v for k, v in pp.ports.app.items()},
                access_log=str(mesh.access_log(name)) if pp.proxy else "",
            )
            for name, pp in mesh.pods.items()
            if not pp.skipped
        ]
        procs = [p.info() for p in mesh.supervisor.procs.values() if p.running()]
        me = os.getpid()
        owner = ProcessInfo("owner", me, process_start_ticks(me), (), "")
        return cls(str(mesh.workdir), app, time.time(), [owner, *procs], pods, me, mesh.started_s)

    def write(self, path: Path) -> None:
        """Write atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> MeshStateFile | None:
        """The recorded mesh, or None when there is no (readable) state file."""
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        procs = [
            ProcessInfo(p["name"], p["pid"], p.get("start_ticks"), tuple(p["argv"]), p["log"])
            for p in data.get("processes", [])
        ]
        pods = [PodEntry(**p) for p in data.get("pods", [])]
        return cls(
            data["workdir"],
            data["app"],
            data["started_at"],
            procs,
            pods,
            data.get("owner_pid", 0),
            data.get("ready_s", 0.0),
        )

    def alive(self) -> list[ProcessInfo]:
        """Recorded processes that still run."""
        return [p for p in self.processes if pid_alive(p.pid, p.start_ticks)]


def stop_recorded(state: MeshStateFile, timeout_s: float = 5.0) -> tuple[int, list[str]]:
    """Stop every recorded process by PID; returns (stopped, names that would not stop).

    The owner (the ``up`` process holding the supervisor) goes first: on SIGTERM it stops its
    children itself; whatever is still alive afterwards is stopped here, newest first."""
    stopped, stuck = 0, []
    owners = [p for p in state.processes if p.name == "owner"]
    others = [p for p in state.processes if p.name != "owner"]
    for proc in [*owners, *reversed(others)]:
        if not pid_alive(proc.pid, proc.start_ticks):
            continue
        if stop_pid(proc.pid, proc.start_ticks, timeout_s):
            stopped += 1
        else:
            stuck.append(proc.name)
    return stopped, stuck


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """One row of ``meshplay proxy-status``."""

    name: str
    namespace: str
    admin_url: str
    state: str
    lds: str
    cds: str
    rds: str
    sds: str
    version: str


def _sync(stats: dict[str, int], prefix_ok: str, prefix_bad: str) -> str:
    ok = sum(v for k, v in stats.items() if k.endswith(prefix_ok))
    bad = sum(v for k, v in stats.items() if k.endswith(prefix_bad))
    if bad:
        return f"REJECTED({bad})"
    return "SYNCED" if ok else "NOT SENT"


def proxy_status(pod: PodEntry) -> ProxyStatus:
    """Read one proxy's admin endpoint: readiness and, per xDS type, whether every update was
    accepted (``SYNCED``) or one was NACKed (``REJECTED``), like ``istioctl proxy-status``."""
    admin = AdminClient(pod.admin_port, timeout_s=1.0)
    try:
        stats = admin.stats(r"(lds|cds|rds|sds)\..*update_(success|rejected)$|\.rds\.")
        info = admin.server_info()
    except AdminError:
        return ProxyStatus(pod.name, pod.namespace, admin.url, "DOWN", "-", "-", "-", "-", "-")

    def of(pattern: str) -> dict[str, int]:
        return {k: v for k, v in stats.items() if pattern in k}

    version = str(info.get("version", "")).split("/")[1:2]
    return ProxyStatus(
        name=pod.name,
        namespace=pod.namespace,
        admin_url=admin.url,
        state=str(info.get("state", "?")),
        lds=_sync(of("listener_manager.lds."), "update_success", "update_rejected"),
        cds=_sync(of("cluster_manager.cds."), "update_success", "update_rejected"),
        rds=_sync(of(".rds."), "update_success", "update_rejected"),
        sds=_sync(of("sds."), "update_success", "update_rejected"),
        version=version[0] if version else "?",
    )


def live_config_dump(pod: str, resource: str = "") -> dict[str, Any]:
    """``/config_dump`` of the running Envoy of ``pod`` (``meshplay proxy-config --live``).

    ``resource`` narrows it (``dynamic_active_clusters``, ``dynamic_listeners``, ...). Raises
    LookupError when no mesh is up or the pod is unknown, AdminError when Envoy does not answer.
    """
    record = MeshStateFile.read(state_dir() / "local.json")
    if record is None:
        raise LookupError("no local mesh is up: start one with meshplay up")
    entry = next((p for p in record.pods if pod in (p.name, p.workload)), None)
    if entry is None or not entry.admin_port:
        names = ", ".join(p.name for p in record.pods if p.admin_port)
        raise LookupError(f"no running proxy {pod!r}; proxies: {names}")
    return AdminClient(entry.admin_port).config_dump(resource)
