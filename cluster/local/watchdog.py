"""The watchdog: a tiny process that kills a supervisor's children once the supervisor is gone.

Every :class:`~cluster.local.procs.Supervisor` starts one (lazily, with its first child). The
watchdog is the leader of a new process group, and every child the supervisor starts joins that
group (``Popen(process_group=...)``: the child calls ``setpgid`` itself, between ``fork`` and
``exec``, so it is in the group before the supervisor even learns its PID). The watchdog's stdin
is the read end of a pipe whose only write end the supervisor holds. It never reads any data:
``read`` returns end-of-file exactly when that write end is closed, which happens when

* the supervisor stops everything and releases the watchdog (the group is empty by then), or
* the process holding the supervisor dies, by *any* signal, SIGKILL included: the kernel closes
  a dead process's file descriptors, whichever thread opened them.

Then the watchdog sends SIGTERM (and SIGCONT, for a stopped member) to its group, waits up to a
grace period for every other member to exit, SIGKILLs the group (itself included) if some did
not, and exits. It ignores SIGINT, SIGTERM and SIGHUP: it must outlive whatever kills its parent,
and a Ctrl-C in the terminal must not take it before it has done its job.

The script half of this module (``main``) uses the standard library only and runs as
``python -I -S watchdog.py GRACE_S``, isolated from the project, so it starts in ~15 ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

__all__ = ["DEFAULT_GRACE_S", "Watchdog", "group_members", "main"]

DEFAULT_GRACE_S = 3.0
"""How long the group's members get between SIGTERM and SIGKILL (Envoy and uvicorn need well
under a second to exit on SIGTERM)."""


def group_members(pgid: int, *, exclude: int = 0) -> list[int]:
    """PIDs of the live (non-zombie) processes in process group ``pgid``, read from ``/proc``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == exclude:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # after the command name (which may contain ") "): state, ppid, pgrp, ...
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def _say(text: str) -> None:
    sys.stderr.write(f"watchdog {os.getpid()}: {text}\n")
    sys.stderr.flush()


def sweep(pgid: int, grace_s: float) -> None:
    """SIGTERM the group, wait until it is empty (but for this process), SIGKILL it after
    ``grace_s``."""
    me = os.getpid()
    left = group_members(pgid, exclude=me)
    if left:
        _say(f"parent gone: stopping process group {pgid} ({len(left)} processes)")
    for sig in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
    deadline = time.monotonic() + grace_s
    while left:
        if time.monotonic() >= deadline:
            _say(f"SIGKILL to process group {pgid}: {left} did not exit on SIGTERM")
            os.killpg(pgid, signal.SIGKILL)  # this process is a member: its work ends here
        time.sleep(0.02)
        left = group_members(pgid, exclude=me)


def main(argv: list[str]) -> int:
    """The watchdog process: wait for end-of-file on stdin, then sweep the own process group."""
    grace_s = float(argv[1]) if len(argv) > 1 else DEFAULT_GRACE_S
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(0, 512):
        pass  # nobody writes; b"" means every write end is closed
    sweep(os.getpgrp(), grace_s)
    return 0


class Watchdog:
    """The supervisor's side: starts the watchdog process and holds the pipe's write end.

    ``pgid`` is the process group children must join. :meth:`release` closes the pipe (the
    watchdog sweeps its group and exits) and reaps the watchdog. If the object is dropped or the
    interpreter exits without a release, the pipe is closed all the same.
    """

    def __init__(self, log: Path, grace_s: float = DEFAULT_GRACE_S) -> None:
        read_end, write_end = os.pipe()  # both not inheritable: no other child gets them
        try:
            with log.open("ab") as out:
                self.popen = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(Path(__file__)), f"{grace_s:g}"],
                    stdin=read_end,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    process_group=0,  # a new group, led by the watchdog, in our session
                )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self.grace_s = grace_s
        self._close = weakref.finalize(self, os.close, write_end)

    @property
    def pgid(self) -> int:
        """The process group every supervised child joins (the watchdog's PID)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the watchdog still runs."""
        return self.popen.poll() is None

    def release(self) -> None:
        """Close the pipe and wait for the watchdog: it kills what is left in its group first."""
        self._close()
        try:
            self.popen.wait(timeout=self.grace_s + 5.0)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
