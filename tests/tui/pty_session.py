"""``meshplay tui`` as a person meets it: a real process on a pseudo-terminal of a given size,
keys typed into it and its screen output read back (escape sequences included)."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PtySession"]

ALT_SCREEN_ON = b"\x1b[?1049h"
ALT_SCREEN_OFF = b"\x1b[?1049l"
"""The terminal's alternate screen: a full-screen app enters it first and leaves it last."""


class PtySession:
    """One process on a pseudo-terminal; every byte it wrote is kept in ``output``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (80, 24),
    ) -> None:
        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        environ = {**os.environ, **(env or {}), "TERM": "xterm-256color",
                   "COLUMNS": str(cols), "LINES": str(rows)}  # fmt: skip
        self.proc = subprocess.Popen(
            list(argv), cwd=cwd, env=environ, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.output = b""

    def read(self, timeout_s: float = 0.05) -> bytes:
        """Whatever the process wrote within ``timeout_s``."""
        got = b""
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not ready:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            got += chunk
        self.output += got
        return got

    def wait_for(self, needle: bytes, timeout_s: float, since: int = 0) -> float:
        """Seconds until ``needle`` appears in the output (after byte ``since``)."""
        start = time.monotonic()
        while needle not in self.output[since:]:
            if time.monotonic() - start > timeout_s:
                tail = self.output[-400:].decode("utf-8", "replace")
                raise AssertionError(f"{needle!r} not seen within {timeout_s} s; last: {tail!r}")
            if self.proc.poll() is not None:
                self.read(0.05)
                if needle in self.output[since:]:
                    break
                raise AssertionError(f"process exited ({self.proc.returncode}) before {needle!r}")
            self.read()
        return time.monotonic() - start

    def type(self, keys: str) -> None:
        """Type ``keys`` (a string of characters) into the terminal."""
        os.write(self.master, keys.encode())

    def finish(self, timeout_s: float = 60.0) -> int:
        """Wait for the process to exit (reading its output meanwhile); its exit code."""
        end = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < end:
            self.read(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.read(0.1)
        os.close(self.master)
        return self.proc.returncode

    @staticmethod
    def meshplay(*args: str) -> list[str]:
        """The argv of ``meshplay ARGS`` with this interpreter."""
        return [sys.executable, "-m", "playground", *args]
