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
