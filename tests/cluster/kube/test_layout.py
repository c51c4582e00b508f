"""The manifests a user applies by hand: generated, valid, buildable, and what the runner applies.

* the committed kustomize files equal what :func:`cluster.kube.layout.render_layout` writes
  (``REFRESH_GOLDEN=1`` rewrites them);
* ``kubectl kustomize`` builds every overlay, and what it builds is, object for object, what
  ``meshplay cluster up`` applies through the API;
* every Kubernetes object (the app, the monitoring stack, the lessons' NetworkPolicies, a load
  generator pod) validates against the Kubernetes OpenAPI schemas (``kubernetes-validate``);
  the Istio ones load through meshplay's own loader without an error;
* the mesh-config providers carry exactly the access-log keys ``record_from_access_log`` reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cluster.kube.layout import istio_manifests, layout_dir, monitoring_manifests, render_layout
from cluster.kube.manifests import Manifest, app_manifests, stamp
from cluster.kube.telemetry import (
    access_log_labels,
    extension_providers,
    istio_operator,
    merge_mesh_config,
    telemetry_resource,
    unmerge_mesh_config,
)
from mesh.app import load_app
from mesh.envoy.accesslog import LogIdentity, json_format
from mesh.lesson import load_lesson
from mesh.records import Reporter
from mesh.source import load_text
from mesh.state import lesson_states

ROOT = Path(__file__).resolve().parents[3]
APP = load_app(ROOT / "lessons/apps/ecommerce")
K8S_VERSION = "1.31.0"
KUBECTL = shutil.which("kubectl")


def test_committed_layout_is_what_the_code_generates() -> None:
    """Every generated file is committed as generated (REFRESH_GOLDEN=1 rewrites them)."""
    files = render_layout(APP)
    if os.environ.get("REFRESH_GOLDEN"):
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    stale = [
        str(p.relative_to(ROOT))
        for p, text in files.items()
        if not p.is_file() or p.read_text() != text
    ]
    assert not stale, f"regenerate with REFRESH_GOLDEN=1: {stale}"


def _build(overlay: str) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(layout_dir(APP) / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    return (body["kind"], body["metadata"].get("namespace", ""), body["metadata"]["name"])


def _normal(body: dict[str, Any]) -> str:
    """A body as JSON text with the env values' types as kustomize writes them."""
    return yaml.safe_dump(yaml.safe_load(yaml.safe_dump(body)), sort_keys=True)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ["base", "istio", "monitoring"])
def test_kubectl_kustomize_builds_each_overlay_into_what_the_runner_applies(overlay: str) -> None:
    """``kubectl kustomize`` builds the overlay, and its objects are exactly those
    ``meshplay cluster up`` applies for that part, field for field."""
    built = {_key(b): b for b in _build(overlay)}
    expected: list[Manifest] = []
    if overlay in ("base", "istio"):
        expected += [stamp(m, "app") for m in app_manifests(APP)]
    if overlay == "istio":
        expected += [stamp(m, "mesh") for m in istio_manifests("shop")]
    if overlay == "monitoring":
        expected += [stamp(m, "monitoring") for m in monitoring_manifests()]
    assert sorted(built) == sorted(m.key for m in expected)
    for m in expected:
        assert _normal(built[m.key]) == _normal(m.body), m.ref


def _validate(body: dict[str, Any]) -> None:
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)


def test_every_kubernetes_object_validates_against_the_schemas() -> None:
    """The app (with the knob port), the monitoring stack and the lessons' Kubernetes objects
    validate against the Kubernetes schemas, with no unknown field."""
    bodies = [m.body for m in app_manifests(APP)] + [m.body for m in monitoring_manifests()]
    for lesson_dir in sorted((ROOT / "lessons").glob("*/lesson.yaml")):
        lesson = load_lesson(lesson_dir.parent)
        for state in lesson_states(lesson):
            for r in state.resources:
                if (
                    r.source.origin.file.startswith(str(lesson.path))
                    and "istio.io" not in r.api_version
                ):
                    from cluster.kube.manifests import manifest_of

                    bodies.append(manifest_of(r).body)
    assert len(bodies) > 30
    for body in bodies:
        _validate(body)


def test_the_validator_catches_what_a_cluster_would_refuse() -> None:
    """The schema check is not vacuous: a wrong type and an unknown field fail it."""
    deployment = next(m.body for m in app_manifests(APP) if m.kind == "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


def test_istio_objects_load_through_meshplays_loader() -> None:
    """The Telemetry the istio overlay applies loads without an error (meshplay does not model
    telemetry.istio.io, so it says so as a warning, never silently)."""
    result = load_text(yaml.safe_dump(telemetry_resource()), "telemetry.yaml")
    assert not result.errors, [str(d) for d in result.errors]


def test_providers_log_every_key_record_from_access_log_reads() -> None:
    """The two providers are generated from mesh.envoy.accesslog.json_format: every key the
    local runner's format has, the Istio one has too (plus ``protocol``), with the reporter
    as a literal; the pod's own app/version are left to the reader."""
    me = LogIdentity("w", "ns", "app", "v1", "spiffe://x")
    for reporter in Reporter:
        local = json_format(reporter, me)
        istio = access_log_labels(reporter)
        assert istio["reporter"] == reporter.value
        assert set(istio) - set(local) == {"protocol"}
        assert set(local) - set(istio) <= {"destination_service"}
        for key, value in istio.items():
            if key not in ("protocol", "source_workload", "source_namespace", "source_app", "source_version",
                           "source_principal", "destination_workload"):  # fmt: skip
                assert value == local[key], key
    providers = {p["name"]: p for p in extension_providers()}
    assert set(providers) == {"meshplay-source", "meshplay-destination"}
    assert (
        providers["meshplay-source"]["envoyFileAccessLog"]["logFormat"]["labels"]["source_workload"]
        == "%ENVIRONMENT(ISTIO_META_WORKLOAD_NAME)%"
    )
    assert istio_operator()["spec"]["meshConfig"]["extensionProviders"] == extension_providers()


def test_mesh_config_merge_keeps_everything_else_and_is_undone_by_down() -> None:
    """Merging adds (or replaces) meshplay's providers and trace sampling, keeps the rest;
    unmerging removes exactly the providers."""
    original = "accessLogFile: /dev/stdout\nextensionProviders:\n- name: otel\n  opentelemetry: {service: c, port: 4317}\n"
    merged = yaml.safe_load(merge_mesh_config(original))
    assert merged["accessLogFile"] == "/dev/stdout"
    assert [p["name"] for p in merged["extensionProviders"]] == [
        "otel",
        "meshplay-source",
        "meshplay-destination",
    ]
    assert merged["defaultConfig"]["tracing"]["sampling"] == 100.0
    assert yaml.safe_load(merge_mesh_config(merge_mesh_config(original))) == merged
    back = yaml.safe_load(unmerge_mesh_config(yaml.safe_dump(merged)))
    assert [p["name"] for p in back["extensionProviders"]] == ["otel"]
