"""The process supervisor: every Envoy and every service replica is a child tracked by its PID.

In Kubernetes the kubelet owns a pod's containers and kills them when the pod goes away. Here the
supervisor plays that part: it starts each process with ``Popen`` in its own session (so a Ctrl-C
in the terminal reaches only us, and we decide how children stop), remembers its PID and start
time, and stops it by that PID: SIGTERM to its process group, then SIGKILL after a grace period.
``stop_all`` runs on normal exit, on an exception and on SIGINT/SIGTERM (the context manager and
:func:`terminate_on_signals`), so no process outlives a run.
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
    """SIGTERM the process group led by ``pid`` (our children lead their own), wait, then SIGKILL.

    Returns True when the process is gone. A PID that no longer names the recorded process
    (different start time) is left alone.
    """
    if not pid_alive(pid, start_ticks):
        return True
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
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
    """Starts children and stops every one of them by PID; use it as a context manager."""

    log_dir: Path
    stop_timeout_s: float = 5.0
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` as ``name`` (unique) in a new session, output to ``<log_dir>/<name>.log``."""
        with self._lock:
            old = self.procs.get(name)
            if old is not None and old.running():
                raise RunnerError(f"process {name} is already running (pid {old.pid})")
            self.log_dir.mkdir(parents=True, exist_ok=True)
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
                        start_new_session=True,
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
        """Stop every child, newest first: SIGTERM all, wait, then SIGKILL the stragglers."""
        procs = list(reversed(self.procs.values()))
        for proc in procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                stop_pid(proc.pid, proc.start_ticks, 0.0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5.0)

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
