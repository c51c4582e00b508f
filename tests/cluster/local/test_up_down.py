"""``meshplay up`` leaves the mesh running under a detached owner; ``meshplay down`` stops
exactly the recorded processes; ``proxy-status`` reads the live Envoys in between."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.procs import pid_alive
from cluster.local.state import MeshStateFile

pytestmark = pytest.mark.envoy


def meshplay(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    up = meshplay(tmp_path, "up")
    record = MeshStateFile.read(tmp_path / "local.json")
    try:
        assert up.returncode == 0, up.stderr
        assert "api-gateway-v1-0" in up.stdout
        assert record is not None and len(record.alive()) == len(record.processes) > 10
        status = meshplay(tmp_path, "proxy-status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SYNCED") == 18  # CDS and LDS of 9 proxies
        again = meshplay(tmp_path, "up")
        assert again.returncode == 2 and "already up" in again.stderr
    finally:
        down = meshplay(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert not [p.name for p in record.processes if pid_alive(p.pid, p.start_ticks)]
    assert not (tmp_path / "local.json").exists()
