"""The app's Kubernetes manifests keep the contract every runner relies on."""

from __future__ import annotations

from typing import Any

import yaml

from tests.services.stack import PACKAGES, ROOT

FOLDER = ROOT / "lessons/apps/ecommerce/kubernetes"


def _docs() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(FOLDER.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _docs() if d["kind"] == kind}


def test_the_namespace_comes_first_and_has_sidecar_injection() -> None:
    first = yaml.safe_load(sorted(FOLDER.glob("*.yaml"))[0].read_text().split("---", 1)[1])
    assert first["kind"] == "Namespace"
    assert first["metadata"] == {"name": "shop", "labels": {"istio-injection": "enabled"}}
    assert {d["metadata"].get("namespace", "shop") for d in _docs()} == {"shop"}


def test_each_service_has_service_account_and_versioned_deployments() -> None:
    services, accounts, deployments = (
        _by_kind("Service"),
        _by_kind("ServiceAccount"),
        _by_kind("Deployment"),
    )
    versions = {"product": ["v1", "v2"]}
    for name, pkg in PACKAGES.items():
        port = services[name]["spec"]["ports"]
        assert port == [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]
        assert services[name]["spec"]["selector"] == {"app": name}
        assert name in accounts
        for version in versions.get(name, ["v1"]):
            spec = deployments[f"{name}-{version}"]["spec"]
            labels = {"app": name, "version": version}
            assert (
                spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"] == labels
            )
            pod = spec["template"]["spec"]
            assert pod["serviceAccountName"] == name
            (container,) = pod["containers"]
            assert container["image"] == "meshplay/ecommerce:0.1"
            assert container["command"] == ["python", "-m", f"services.{pkg}"]
            env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
            assert (env["VERSION"], env["PORT"]) == (version, "8080")
            # the pod's own name, for the x-served-by header the storefront's mesh panel shows
            assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert set(container["resources"]) == {"requests", "limits"}


def test_postgres_and_redis_stay_out_of_the_mesh() -> None:
    deployments = _by_kind("Deployment")
    images = {"postgres": "postgres:15", "redis": "redis:7"}
    for name, image in images.items():
        template = deployments[name]["spec"]["template"]
        assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
        assert template["spec"]["containers"][0]["image"] == image
        assert name in _by_kind("Service")
