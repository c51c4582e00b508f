"""A replica's environment on the local runner: what the kubelet would give the container."""

from __future__ import annotations

from pathlib import Path

from cluster.local.apps import ROOT, app_env
from mesh.app import load_app
from mesh.model.kubernetes import Deployment
from mesh.topology import build_topology


def test_downward_api_pod_name_is_filled_in_and_other_value_from_left_out(tmp_path: Path) -> None:
    """The manifests set POD_NAME from ``fieldRef: metadata.name``; locally the runner fills it
    in from the pod as the kubelet does, so ``x-served-by`` names the same pod on every runner."""
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    topology = build_topology(app.resources)
    pod = next(p for p in topology.pods if p.workload == "product-v2")
    deployment = next(
        r for r in app.resources if isinstance(r, Deployment) and r.metadata.name == "product-v2"
    )
    container = deployment.spec.template.spec.containers[0]
    common = {"port": 1, "admin_port": 2, "data_dir": tmp_path, "http_proxy": None, "seed": 3}
    env = app_env(container, base={}, pod=pod, **common)
    assert env["POD_NAME"] == pod.name == "product-v2-0"
    assert env["VERSION"] == "v2"
    assert "POD_NAME" not in app_env(container, base={}, **common)


def test_database_and_redis_urls_are_dropped_unless_their_server_runs_here(tmp_path: Path) -> None:
    """PostgreSQL and Redis are not started locally, so ``DATABASE_URL``/``REDIS_URL`` are
    dropped (the service falls back to SQLite and no cache); a server the caller does run
    (``external``) keeps its URL, pointed at the local address, credentials and database kept."""
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    deployment = next(
        r for r in app.resources if isinstance(r, Deployment) and r.metadata.name == "user-v1"
    )
    container = deployment.spec.template.spec.containers[0]
    common = {"port": 1, "admin_port": 2, "data_dir": tmp_path, "http_proxy": None, "seed": 3}
    plain = app_env(container, base={}, **common)
    assert "DATABASE_URL" not in plain and "REDIS_URL" not in plain
    only_pg = app_env(container, base={}, external={"postgres:5432": "127.0.0.1:6543"}, **common)
    assert only_pg["DATABASE_URL"] == "postgresql://shop:shop@127.0.0.1:6543/shop"
    assert "REDIS_URL" not in only_pg
    both = app_env(container, base={}, **common,
                   external={"postgres:5432": "127.0.0.1:6543", "redis:6379": "127.0.0.1:7000"})  # fmt: skip
    assert both["REDIS_URL"] == "redis://127.0.0.1:7000/0"
