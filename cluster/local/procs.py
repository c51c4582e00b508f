"""The process supervisor: every Envoy and every service replica is a child tracked by its PID,
and none of them outlives the process that started it, whatever ends that process.

In Kubernetes the kubelet owns a pod's containers and kills them when the pod goes away. Here
the supervisor plays that part, with three layers:

1. **Orderly stop.** :meth:`Supervisor.stop_all` runs on normal exit, on an exception and on
   SIGINT/SIGTERM (the context manager and :func:`terminate_on_signals`, which turns SIGTERM and
   SIGHUP into the same ``KeyboardInterrupt`` as Ctrl-C): SIGTERM to every child by PID, newest
   first, SIGKILL after a grace period, then every child is reaped.
2. **One process group per supervisor, led by a watchdog.** A supervisor starts a watchdog
   (:mod:`cluster.local.watchdog`) with its first child; each child joins the watchdog's process
   group in the forked child before ``exec`` (``Popen(process_group=...)``), so it is in the
   group before ``Popen`` returns and no signal can fall between "started" and "known". The
   group is not the terminal's foreground group: a Ctrl-C reaches meshplay only, which stops its
   children in order. The group also holds whatever a child forks (a server's worker
   processes), so one ``killpg`` reaches them too.
3. **A supervisor pipe for deaths that run no code.** SIGKILL (the OOM killer, a CI job
   cancelled, ``kill -9``) runs no ``finally``. The watchdog holds the read end of a pipe whose
   only write end the supervisor's process holds; the kernel closes it when that process dies,
   by any signal, so the watchdog reads end-of-file, SIGTERMs the group, SIGKILLs what is left
   after a grace period, and exits. :meth:`Supervisor.stop_all` closes the pipe too, after its
   orderly stop, so the same sweep catches a child a signal interrupted mid-``Popen``.

Why not ``prctl(PR_SET_PDEATHSIG)``: the kernel sends that signal when the *thread* that forked
the child exits, not the process. The TUI runs a lesson in a worker thread and a timed ``break:
restore`` restarts pods from a timer thread, so children would die early (or, set from the
main thread only, not at all). Envoy sets it on itself when hot restart is enabled, which is why
every Envoy runs with ``--disable-hot-restart`` (:func:`cluster.local.envoy.envoy_argv`). The pipe
is closed only when the whole process is gone, whichever thread started the child.

Everything is stopped by PID (checked against its start time, so a reused PID is left alone) or
by the supervisor's own process group, never by a process name. ``meshplay up`` keeps a mesh
running on purpose: its detached owner process holds the supervisor (see
``playground/commands/up.py``), so killing the owner takes the mesh with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

from cluster.local.watchdog import Watchdog
from mesh.runner import RunnerError

__all__ = [
    "ManagedProcess",
    "ProcessInfo",
    "Supervisor",
    "pid_alive",
    "process_start_ticks",
    "stop_pid",
    "terminate_on_signals",
]


def process_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Together with the PID it identifies a process even after the PID is reused, which is how
    ``meshplay down`` makes sure it stops exactly what ``meshplay up`` started.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = text.rsplit(")", 1)[-1].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs (and is not a zombie), and is the process that started at
    ``start_ticks`` when given."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    state = text.rsplit(")", 1)[-1].split()[0]
    if state in {"Z", "X"}:
        return False
    return start_ticks is None or process_start_ticks(pid) == start_ticks


def stop_pid(pid: int, start_ticks: int | None = None, timeout_s: float = 5.0) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout_s``, then SIGKILL it.

    Returns True when the process is gone. A PID that no longer names the recorded process
    (different start time) is left alone. Only the process is signalled: what it forked is
    reached by its supervisor's watchdog, which kills the whole process group.
    """
    if not pid_alive(pid, start_ticks):
        return True
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not pid_alive(pid, start_ticks):
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap if it is our child
            if not pid_alive(pid):
                return True
            time.sleep(0.01)
    return not pid_alive(pid)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the state file records about one process."""

    name: str
    pid: int
    start_ticks: int | None
    argv: tuple[str, ...]
    log: str


@dataclass
class ManagedProcess:
    """A started child: its name, Popen handle and log file."""

    name: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log: Path
    env: Mapping[str, str]
    cwd: Path | None
    start_ticks: int | None = None

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.popen.pid

    def running(self) -> bool:
        """Whether the child has not exited."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the child's combined stdout/stderr."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def info(self) -> ProcessInfo:
        """The record written to the state file."""
        return ProcessInfo(self.name, self.pid, self.start_ticks, self.argv, str(self.log))


@dataclass
class Supervisor:
    """Starts children in its watchdog's process group and stops every one of them by PID; use
    it as a context manager. Children die with the process holding the supervisor."""

    log_dir: Path
    stop_timeout_s: float = 5.0
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _watchdog: Watchdog | None = field(default=None, repr=False)

    @property
    def process_group(self) -> int | None:
        """The process group of the children (the watchdog's PID), None before the first."""
        return self._watchdog.pgid if self._watchdog is not None else None

    def _group(self) -> int:
        """The group for the next child: the watchdog's, started now if there is none (or if
        someone killed it: children started from now on are watched again)."""
        if self._watchdog is None or not self._watchdog.alive():
            self._watchdog = Watchdog(self.log_dir / "watchdog.log")
        return self._watchdog.pgid

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` as ``name`` (unique) in the supervisor's process group, output to
        ``<log_dir>/<name>.log``."""
        with self._lock:
            old = self.procs.get(name)
            if old is not None and old.running():
                raise RunnerError(f"process {name} is already running (pid {old.pid})")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            try:
                group = self._group()
            except OSError as exc:
                raise RunnerError(f"cannot start the process watchdog: {exc}") from exc
            log = self.log_dir / f"{name}.log"
            with log.open("ab") as out:
                try:
                    popen = subprocess.Popen(
                        list(argv),
                        env=dict(env),
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        process_group=group,
                    )
                except OSError as exc:
                    raise RunnerError(f"cannot start {name} ({argv[0]}): {exc}") from exc
            proc = ManagedProcess(name, tuple(argv), popen, log, dict(env), cwd)
            proc.start_ticks = process_start_ticks(popen.pid)
            self.procs[name] = proc
            return proc

    def stop(self, name: str) -> None:
        """Stop one child by PID (SIGTERM, then SIGKILL) and reap it."""
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.popen.poll() is None:
            stop_pid(proc.pid, proc.start_ticks, self.stop_timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=1.0)

    def restart(self, name: str) -> ManagedProcess:
        """Stop a child and start it again with the same command, environment and directory."""
        proc = self.procs[name]
        self.stop(name)
        return self.start(name, proc.argv, env=proc.env, cwd=proc.cwd)

    def stop_all(self) -> None:
        """Stop every child, newest first: SIGTERM all, wait, then SIGKILL the stragglers; then
        release the watchdog, which sweeps the group (a child whose ``Popen`` a signal
        interrupted, a child's own children) and exits, and reap what it stopped."""
        procs = list(reversed(self.procs.values()))
        for proc in procs:
            if proc.popen.poll() is None:  # not reaped: the PID is still this child's
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                stop_pid(proc.pid, proc.start_ticks, 0.0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5.0)
        with self._lock:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.release()
            _reap_group(watchdog.pgid)

    def pids(self) -> list[int]:
        """PIDs of the children still running."""
        return [p.pid for p in self.procs.values() if p.running()]

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def _reap_group(pgid: int) -> None:
    """Reap our exited children in process group ``pgid`` that no ``Popen`` waits for."""
    while True:
        try:
            pid, _status = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt while the block runs in the main thread,
    so the same ``finally``/``__exit__`` that handles Ctrl-C stops every child."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
