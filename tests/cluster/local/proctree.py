"""Looking at a process tree from outside, through ``/proc`` only: who descends from a PID, which
TCP ports they listen on, and whether any of them (or any of those ports) is still there.

The kill tests use it to find what a ``meshplay`` command started by its parent chain (never by
a process name), to remember each process with its start time (a PID can be reused), and to
check after the kill that none of them runs and none of their ports is still bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GONE_WITHIN_S",
    "Proc",
    "Tree",
    "alive",
    "descendants",
    "listening_ports",
    "ports_still_bound",
    "wait_for",
    "wait_gone",
]


GONE_WITHIN_S = 8.0
"""How long the processes may take to go after the signal (they usually need well under 1 s)."""


@dataclass(frozen=True, slots=True)
class Proc:
    """One process as seen in ``/proc/<pid>/stat``: PID, parent, group and start time."""

    pid: int
    ppid: int
    pgid: int
    start_ticks: int
    state: str


def _stat(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    # after the name: state(3) ppid(4) pgrp(5) ... starttime(22)
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[19]), fields[0])


def _all() -> list[Proc]:
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    return [proc for pid in pids if (proc := _stat(pid)) is not None]


def descendants(root: int) -> list[Proc]:
    """Every live (non-zombie) process below ``root`` in the parent chain, ``root`` excluded."""
    procs = _all()
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.state not in {"Z", "X"}:
                found.append(child)
            todo.append(child.pid)
    return found


def alive(procs: Iterable[Proc]) -> list[Proc]:
    """Those of ``procs`` that still run: same PID *and* same start time, not a zombie."""
    left = []
    for proc in procs:
        now = _stat(proc.pid)
        if now is not None and now.start_ticks == proc.start_ticks and now.state not in {"Z", "X"}:
            left.append(now)
    return left


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _listening() -> dict[str, int]:
    """inode -> local port of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                out[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def listening_ports(procs: Iterable[Proc]) -> set[int]:
    """The TCP ports the given processes listen on right now."""
    listening = _listening()
    ports = set()
    for proc in procs:
        ports |= {listening[i] for i in _socket_inodes(proc.pid) if i in listening}
    return ports


def ports_still_bound(ports: Iterable[int]) -> set[int]:
    """Those of ``ports`` some socket on this machine still listens on."""
    return set(ports) & set(_listening().values())


def wait_for(what: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    """Poll ``what`` until it is true; False when ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def wait_gone(procs: list[Proc], ports: set[int], timeout_s: float) -> tuple[list[Proc], set[int]]:
    """Wait until none of ``procs`` runs and none of ``ports`` is bound; what is left then."""
    wait_for(lambda: not alive(procs) and not ports_still_bound(ports), timeout_s)
    return alive(procs), ports_still_bound(ports)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def reap(popen: subprocess.Popen[bytes] | subprocess.Popen[str], timeout_s: float = 10.0) -> None:
    """Wait for a command the test started (so it is no zombie the module check would count)."""
    try:
        popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=5.0)


class Tree:
    """Everything seen below one root PID, with the ports each process listened on."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[tuple[int, int], Proc] = {}
        self.ports: set[int] = set()

    def look(self, ports: bool = True) -> list[Proc]:
        """Record what runs below the root now: the processes and (unless ``ports`` is false,
        which makes it quicker) the ports they listen on."""
        now = descendants(self.root)
        for proc in now:
            self.seen[(proc.pid, proc.start_ticks)] = proc
        if ports:
            self.ports |= listening_ports(now)
        return now

    def serving(self) -> int:
        """How many processes below the root listen on a port right now."""
        return sum(1 for p in self.look() if listening_ports([p]))

    def watch(self, seconds: float) -> None:
        """Keep recording for a while (what a dying parent still starts is counted too)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.look()
            time.sleep(0.01)

    def assert_gone(self) -> None:
        """No process seen below the root still runs, no port they listened on is bound."""
        left, bound = wait_gone(list(self.seen.values()), self.ports, GONE_WITHIN_S)
        described = [f"{p.pid} {_cmdline(p.pid)}" for p in left]
        for proc in left:  # do not leave them to the next test
            os.kill(proc.pid, signal.SIGKILL)
        assert not described, f"still running after {GONE_WITHIN_S:g}s: {described}"
        assert not bound, f"ports still bound: {sorted(bound)}"
