"""Helpers for the tests that start a real Envoy 1.40 process: wait for its admin ``/ready``,
read its JSON access log."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def wait_ready(admin: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the admin listener on ``admin`` says ready; the tail of stderr if Envoy exits."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"envoy exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=0.5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise AssertionError("envoy did not become ready in time")


def read_log(path: Path, expected: int, deadline: float) -> list[dict[str, Any]]:
    """The first ``expected`` or more JSON lines of an access log, once Envoy has flushed them."""
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= expected:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: fewer than {expected} access-log lines")
