"""Against a mesh ``meshplay up`` started (real Envoys): ``proxy-config`` without PATH reads the
running proxy, each route once; ``proxy-status`` prints istioctl's columns and says STALE when a
proxy does not run the configuration it was last sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def meshplay(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("state")
    up = meshplay(state, "up")
    try:
        assert up.returncode == 0, up.stderr
        yield state
    finally:
        down = meshplay(state, "down")
        assert down.returncode == 0, down.stderr


def test_live_routes_need_no_path_and_list_each_route_once(mesh: Path) -> None:
    out = meshplay(mesh, "pc", "routes", "api-gateway-v1-0")
    assert out.returncode == 0, out.stderr
    rows = [tuple(line.split()) for line in out.stdout.splitlines()[1:] if line.strip()]
    assert any("product.shop.svc.cluster.local:8080" in row for row in rows)
    assert len(rows) == len(set(rows)), out.stdout
    deploy = meshplay(mesh, "pc", "clusters", "deploy/product-v2", "--live")
    assert deploy.returncode == 0, deploy.stderr
    assert "product.shop.svc.cluster.local" in deploy.stdout


def test_proxy_status_has_istioctls_columns_and_states(mesh: Path) -> None:
    status = meshplay(mesh, "proxy-status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert len(rows) == 9 and "product-v1-0.shop" in rows
    for name, cells in rows.items():
        # clusters and listeners are sent and acknowledged; endpoints travel inside clusters,
        # routes inside listeners, and no extension config is sent
        assert cells[2:7] == ["SYNCED", "SYNCED", "NOT_SENT", "NOT_SENT", "NOT_SENT"], name
        assert cells[8].startswith("1.")  # Envoy's version


def test_a_listener_update_envoy_refuses_is_stale(mesh: Path) -> None:
    record = json.loads((mesh / "local.json").read_text())
    lds = Path(record["workdir"]) / "envoy" / "product-v1-0" / "xds" / "lds" / "lds.json"
    sent = json.loads(lds.read_text())
    sent["version_info"] = "999"
    sent["resources"][0]["address"]["socket_address"]["port_value"] = -5  # not a port
    tmp = lds.with_name(".lds.json.tmp")
    tmp.write_text(json.dumps(sent))
    tmp.rename(lds)  # the file xDS channel: Envoy reads the renamed file
    deadline = time.monotonic() + 10
    while True:
        status = meshplay(mesh, "proxy-status")
        row = next(line.split() for line in status.stdout.splitlines()
                   if line.startswith("product-v1-0.shop "))  # fmt: skip
        if "update" in status.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row[2:4] == ["SYNCED", "STALE"], status.stdout
    assert "product-v1-0.shop: LDS: not acknowledged: Envoy refused updates" in status.stdout
