"""``meshplay up`` leaves the mesh running under a detached owner; ``meshplay down`` stops
exactly the recorded processes; ``proxy-status`` reads the live Envoys in between."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.procs import ProcessInfo, pid_alive
from cluster.local.state import MeshStateFile

pytestmark = pytest.mark.envoy


def meshplay(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    """``up`` starts the mesh (with monitoring) and refuses a second ``up``; its owner is the
    mesh's kubelet: ``kill -9`` of a replica's app is reported in the owner's log and the app is
    started again on its ports (ready again), and the state file then names the new PID, so
    ``down`` stops the restarted process too and leaves nothing. (One ``up`` for all of it: each
    costs 20-50 s in CI.)"""
    up = meshplay(tmp_path, "up")
    record = MeshStateFile.read(tmp_path / "local.json")
    seen: list[ProcessInfo] = []
    try:
        assert up.returncode == 0, up.stderr
        assert "api-gateway-v1-0" in up.stdout
        assert record is not None and len(record.alive()) == len(record.processes) > 10
        status = meshplay(tmp_path, "proxy-status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SYNCED") == 18  # CDS and LDS of 9 proxies
        again = meshplay(tmp_path, "up")
        assert again.returncode == 2 and "already up" in again.stderr

        victim = next(p for p in record.processes if p.name == "app-order-v1-0")
        pod = next(p for p in record.pods if p.name == "order-v1-0")
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        restarted = None
        while restarted is None and time.monotonic() < deadline:
            time.sleep(0.2)
            now = MeshStateFile.read(tmp_path / "local.json")
            found = [p for p in now.processes if p.name == victim.name] if now else []
            if found and found[0].pid != victim.pid and pid_alive(found[0].pid, found[0].start_ticks):  # fmt: skip
                restarted = found[0]
        assert restarted is not None, (tmp_path / "up.log").read_text()
        seen.append(restarted)
        assert not pid_alive(victim.pid, victim.start_ticks)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{pod.knob_port}/readyz", timeout=5) as r:
            assert r.status == 200  # the same ports as before
        log = (tmp_path / "up.log").read_text()
        assert "pod-died order-v1-0: app exited (signal 9 (SIGKILL)" in log, log
        assert "pod-restarted order-v1-0: app restarted (restartCount 1)" in log, log
    finally:
        down = meshplay(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert record is not None
    assert not [p.name for p in [*record.processes, *seen] if pid_alive(p.pid, p.start_ticks)]
    assert not (tmp_path / "local.json").exists()
