"""``meshplay up`` starts Prometheus, the Istio-metrics exporter and the trace collector with the
mesh; ``query``, ``traces`` and ``logs`` read them while it runs; ``down`` stops them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.monitoring import MonitoringInfo
from cluster.local.procs import pid_alive
from cluster.local.state import MeshStateFile

pytestmark = [pytest.mark.envoy, pytest.mark.prometheus, pytest.mark.slow]


def meshplay(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def send(port: int, count: int) -> list[str]:
    """GET /api/products through the api-gateway's sidecar inbound port; the request ids."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    ids = []
    for i in range(count):
        rid = f"00000000-0000-4000-8000-{i:012d}"
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/products",
            headers={"x-request-id": rid, "host": "api-gateway:8080"},
        )
        with opener.open(req, timeout=10) as resp:
            assert resp.status == 200
        ids.append(rid)
    return ids


def test_up_monitors_the_mesh_and_down_stops_it_all(tmp_path: Path) -> None:
    up = meshplay(tmp_path, "up")
    record = MeshStateFile.read(tmp_path / "local.json")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "prometheus: http://127.0.0.1:" in up.stdout
        info = MonitoringInfo.read(tmp_path / "monitoring.json")
        assert record is not None and info is not None and info.collector
        names = {p.name for p in record.processes}
        assert {"prometheus", "exporter", "collector"} <= names
        gateway = next(p for p in record.pods if p.name.startswith("api-gateway"))
        ids = send(int(gateway.inbound["8080"]), 20)
        time.sleep(3.0)  # two scrapes
        query = meshplay(
            tmp_path,
            "query",
            "-o",
            "json",
            'sum(istio_requests_total{reporter="destination",'
            'destination_service_name="api-gateway"})',
        )
        assert query.returncode == 0, query.stderr
        (sample,) = json.loads(query.stdout)["data"]["result"]
        assert float(sample["value"][1]) == 20
        logs = meshplay(tmp_path, "logs", "--request-id", ids[3])
        assert logs.returncode == 0, logs.stderr
        lines = logs.stdout.splitlines()
        # Envoy writes the sampling decision into the id's version digit (-4xxx- -> -9xxx-)
        assert len(lines) >= 3 and all(ids[3][15:] in line for line in lines if " envoy " in line)
        assert any("api-gateway-v1-0" in line for line in lines)
        assert any(line.split()[1].startswith("product-v") for line in lines)
        time.sleep(6.0)  # Envoy's tracer flushes about every 5 s
        traces = meshplay(tmp_path, "traces", "--slowest", "1")
        assert traces.returncode == 0, traces.stderr
        assert traces.stdout.startswith("20 traces, 60 spans"), traces.stdout
    finally:
        down = meshplay(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert record is not None
    assert not [p.name for p in record.processes if pid_alive(p.pid, p.start_ticks)]
    assert not (tmp_path / "monitoring.json").exists()
