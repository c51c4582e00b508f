"""``meshplay run LESSON --runner kube --dry-run``: the whole plan, without a cluster.

The plan of every lesson that lists ``kube`` is pinned as a golden file
(``testdata/plans/<lesson>.txt``; ``REFRESH_GOLDEN=1`` rewrites them), every YAML document in it
loads through meshplay's loader without an error, and every load generator pod validates against
the Kubernetes schemas.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from cluster.kube import dry_run_plan
from cluster.kube.multicluster import declared_clusters
from mesh.lesson import load_lesson
from mesh.runner import RunOptions
from mesh.source import load_text
from playground.cli import main

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "testdata" / "plans"
KUBE_LESSONS = sorted(
    p.parent.name
    for p in (ROOT / "lessons").glob("*/lesson.yaml")
    if "kube" in load_lesson(p.parent).spec.runners
)


CONTEXTS = {"cluster1": "kind-east", "cluster2": "kind-west"}
"""The kube contexts of a multi-cluster lesson's plan (two kind clusters, east and west)."""


def _plan(name: str) -> str:
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in the plan relative to the repository, as a user runs it
    try:
        lesson = load_lesson(Path("lessons") / name)
        contexts = CONTEXTS if declared_clusters(lesson) is not None else None
        return dry_run_plan(lesson, RunOptions(), contexts=contexts)
    finally:
        os.chdir(cwd)


def _documents(plan: str) -> list[dict[str, object]]:
    """The YAML documents of the plan (indented between ``---`` lines)."""
    blocks = re.findall(r"^  ---\n(.*?)^  ---$", plan, flags=re.S | re.M)
    return [yaml.safe_load("\n".join(line[2:] for line in b.splitlines())) for b in blocks]


@pytest.mark.parametrize("name", KUBE_LESSONS)
def test_plan_is_pinned(name: str) -> None:
    """The plan of each kube lesson equals its golden file."""
    plan = _plan(name)
    path = GOLDEN / f"{name}.txt"
    if not path.exists() and not os.environ.get("REFRESH_GOLDEN"):
        pytest.fail(f"no pinned plan for {name}: REFRESH_GOLDEN=1 writes {path.name}, read it")
    if os.environ.get("REFRESH_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan, encoding="utf-8")
    assert plan == path.read_text(encoding="utf-8"), (
        f"plan of {name} changed; REFRESH_GOLDEN=1 rewrites it"
    )


@pytest.mark.parametrize("name", KUBE_LESSONS)
def test_every_document_of_the_plan_is_valid(name: str) -> None:
    """The lesson's resources load without an error; the generator pods pass the schemas."""
    docs = _documents(_plan(name))
    assert docs
    pods = [d for d in docs if d.get("kind") == "Pod"]
    others = [d for d in docs if d.get("kind") != "Pod"]
    for doc in others:
        result = load_text(yaml.safe_dump(doc), f"{name} plan")
        assert not result.errors, [str(e) for e in result.errors]
    for pod in pods:
        kubernetes_validate.validate(pod, "1.31.0", strict=True)


def test_plan_shows_applies_deletes_waits_breaks_and_traffic() -> None:
    """A lesson with breaks and changing resources: every kind of action is in the plan, in
    the engine's order (configuration and breaks, then the step's traffic)."""
    plan = _plan("06-retries")
    steps = plan.split("\n== step ")
    assert len(steps) == 5
    first = steps[1]
    assert first.index("knobs 15999 '{\"error_rate\": 0.3}'") < first.index(
        "apply Pod shop/meshplay-loadgen-dry-run-s1"
    )
    assert "python -m cluster.kube.loadgen" in first and "MESHPLAY_TRAFFIC" in first
    assert "apply VirtualService shop/product (server-side, field manager meshplay)" in steps[2]
    assert "wait until the config reached the proxies" in steps[2]
    assert (
        "${jwt:alice@shop.example}" in steps[3]
        and "http://user.shop.svc.cluster.local:8080" in steps[3]
    )
    assert "delete VirtualService shop/product" in plan.split("== close")[1]


def test_cli_prints_the_plan_without_a_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kubeconfig is read: the command works with none."""
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.chdir(ROOT)
    assert main(["run", "lessons/01-request-routing", "--runner", "kube", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out == _plan("01-request-routing")


def test_dry_run_is_refused_for_other_runners(capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run plans a cluster run: with sim it is a usage error (exit 2)."""
    assert main(["run", str(ROOT / "lessons/01-request-routing"), "--dry-run"]) == 2
    assert "--runner kube" in capsys.readouterr().err


def test_namespace_moves_the_plan() -> None:
    """``--namespace store`` rewrites where everything goes, hosts and principals included."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        plan = dry_run_plan(
            load_lesson("lessons/12-http-authorization"), RunOptions(), namespace="store"
        )
    finally:
        os.chdir(cwd)
    assert "shop" not in plan.replace("@shop.example", "")
    assert "cluster.local/ns/store/sa/" in plan


def _install_documents(plan: str) -> list[dict[str, object]]:
    """The install section's YAML documents (indented by four, between ``---`` lines)."""
    blocks = re.findall(r"^    ---\n(.*?)^    ---$", plan, flags=re.S | re.M)
    return [yaml.safe_load("\n".join(line[4:] for line in b.splitlines())) for b in blocks]


def test_multicluster_plan_is_per_context() -> None:
    """Lesson 24 on two contexts: the multi-primary install per context (network label,
    istiod's cluster name and network, one east-west gateway per network, one root of trust,
    remote secrets both ways), each Deployment only where the lesson places it and the Services
    in both, the lesson's Istio resources in every cluster, the generator in curl's cluster."""
    plan = _plan("24-multicluster-load-balancing")
    east, west = "[cluster1: kind-east] ", "[cluster2: kind-west] "
    lines = plan.splitlines()
    docs = _install_documents(plan)
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert [n["metadata"]["labels"] for n in namespaces] == [  # type: ignore[index]
        {"topology.istio.io/network": "network1"},
        {"topology.istio.io/network": "network2"},
    ]
    for ns in namespaces:
        kubernetes_validate.validate(ns, "1.31.0", strict=True)
    operators = [d for d in docs if d["kind"] == "IstioOperator"]
    primaries = [o["spec"]["values"]["global"] for o in operators if "profile" not in o["spec"]]  # type: ignore[index]
    assert primaries == [
        {"meshID": "mesh1", "multiCluster": {"clusterName": "cluster1"}, "network": "network1"},
        {"meshID": "mesh1", "multiCluster": {"clusterName": "cluster2"}, "network": "network2"},
    ]
    gateways = [
        o["spec"]["components"]["ingressGateways"][0] for o in operators if "profile" in o["spec"]
    ]  # type: ignore[index]
    assert [g["k8s"]["env"] for g in gateways] == [
        [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": n}]
        for n in ("network1", "network2")
    ]
    assert all({"name": "tls", "port": 15443, "targetPort": 15443} in g["k8s"]["service"]["ports"]
               for g in gateways)  # fmt: skip
    assert f"{east}istioctl create-remote-secret --context=kind-west --name=cluster2" in plan
    assert f"{west}istioctl create-remote-secret --context=kind-east --name=cluster1" in plan
    assert plan.count("create secret generic cacerts") == 2
    assert "Makefile.selfsigned.mk root-ca" in plan
    # the app: Deployments where placed, Services everywhere
    assert f"{east}apply Deployment sample/helloworld-v1" in plan
    assert f"{west}apply Deployment sample/helloworld-v2" in plan
    assert f"{east}apply Deployment sample/helloworld-v2" not in plan
    assert f"{west}apply Deployment sample/helloworld-v1" not in plan
    assert f"{east}apply Service sample/helloworld" in plan
    assert f"{west}apply Service sample/helloworld" in plan
    step2 = plan.split("== step 2:")[1].split("== step 3:")[0]
    for prefix in (east, west):
        assert f"{prefix}apply Gateway istio-system/cross-network-gateway" in step2
        assert f"{prefix}wait until the config reached the proxies" in step2
    generators = [line for line in lines if "apply Pod sample/meshplay-loadgen" in line]
    assert len(generators) == 4 and all(line.startswith(east) for line in generators)
    pods = [d for d in _documents(plan) if d.get("kind") == "Pod"]
    assert {p["spec"]["serviceAccountName"] for p in pods} == {"curl"}  # type: ignore[index]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"meshplay/ecommerce:0.1"}  # type: ignore[index]
    assert "kind load docker-image meshplay/ecommerce:0.1" in plan
    assert "source_cluster" in plan


def test_multicluster_lesson_without_a_context_per_cluster_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2, naming the clusters that have no context; a plain --context is refused too."""
    monkeypatch.chdir(ROOT)
    lesson = ["run", "lessons/24-multicluster-load-balancing", "--runner", "kube", "--dry-run"]
    assert main([*lesson, "--context", "cluster1=kind-east"]) == 2
    err = capsys.readouterr().err
    assert "no kube context for cluster2" in err and "--context cluster2=CONTEXT" in err
    assert main(lesson) == 2
    assert "no kube context for cluster1, cluster2" in capsys.readouterr().err
    assert main([*lesson, "--context", "kind-east"]) == 2
    assert "give each its kube context" in capsys.readouterr().err
    assert main([*lesson, "--context", "cluster1=a", "--context", "cluster3=b"]) == 2
    assert "declares no cluster cluster3" in capsys.readouterr().err
    assert main([*lesson, "--context", "cluster1=a", "--context", "cluster2=a"]) == 2
    assert "both context a" in capsys.readouterr().err
    real = ["run", "lessons/24-multicluster-load-balancing", "--runner", "kube"]
    assert main([*real, "--context", "cluster2=kind-west"]) == 2  # a real run: before any API
    assert "no kube context for cluster1" in capsys.readouterr().err


def test_cli_prints_the_multicluster_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--context cluster1=kind-east --context cluster2=kind-west`` prints the pinned plan."""
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.chdir(ROOT)
    args = ["run", "lessons/24-multicluster-load-balancing", "--runner", "kube", "--dry-run",
            "--context", "cluster1=kind-east", "--context", "cluster2=kind-west"]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out == _plan("24-multicluster-load-balancing")


def test_single_cluster_lesson_refuses_cluster_contexts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLUSTER=CONTEXT on a one-cluster lesson is a usage error (exit 2)."""
    monkeypatch.chdir(ROOT)
    args = ["run", "lessons/01-request-routing", "--runner", "kube", "--dry-run",
            "--context", "cluster1=kind-east"]  # fmt: skip
    assert main(args) == 2
    assert "runs on one cluster" in capsys.readouterr().err


def test_an_app_without_a_meshplay_image_runs_the_generator_in_meshplays_image() -> None:
    """bookinfo's images hold no meshplay: the plan says the generator pod runs meshplay's
    services image, and what must be built and loaded for it (the pod uses that image)."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        plan = dry_run_plan(load_lesson("lessons/bookinfo-01-routing"), RunOptions())
    finally:
        os.chdir(cwd)
    assert "# load generator: the app bookinfo has no image with meshplay's generator" in plan
    assert "kind load docker-image meshplay/ecommerce:0.1" in plan
    pods = [d for d in _documents(plan) if d.get("kind") == "Pod"]
    assert pods and {p["spec"]["containers"][0]["image"] for p in pods} == {
        "meshplay/ecommerce:0.1"
    }  # type: ignore[index]
