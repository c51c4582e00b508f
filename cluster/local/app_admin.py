"""Talking to a pod's app on its knob port (``ADMIN_PORT``): whether it is ready (``/readyz``)
and turning its knobs (``PUT /admin/knobs``: latency, errors, refusing connections), never
through an ``HTTP_PROXY`` of the environment."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from cluster.local.pods import PodProcesses
from cluster.local.ports import LOOPBACK
from cluster.local.procs import Supervisor
from mesh.runner import RunnerError

__all__ = ["RESET_KNOBS", "app_ready", "put_knobs"]

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
RESET_KNOBS = {"latency_ms": 0.0, "error_rate": 0.0, "refuse": False, "drop_trace_headers": False}
"""The knobs a ``restore`` puts back."""


def app_ready(supervisor: Supervisor, pp: PodProcesses) -> bool:
    """Whether the pod's app answers ``/readyz`` with 200; RunnerError when it exited."""
    proc = supervisor.procs[pp.app]
    if not proc.running():
        raise RunnerError(
            f"app of pod {pp.pod.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}"
        )
    try:
        url = f"http://{LOOPBACK}:{pp.knob_port}/readyz"
        with _NO_PROXY_OPENER.open(url, timeout=1.0) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def put_knobs(pp: PodProcesses, knobs: dict[str, Any]) -> None:
    """``PUT /admin/knobs`` on one replica."""
    req = urllib.request.Request(
        f"http://{LOOPBACK}:{pp.knob_port}/admin/knobs",
        data=json.dumps(knobs).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    try:
        with _NO_PROXY_OPENER.open(req, timeout=5.0) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RunnerError(f"cannot set knobs of {pp.pod.name}: {exc}") from exc
