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


def _plan(name: str) -> str:
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in the plan relative to the repository, as a user runs it
    try:
        return dry_run_plan(load_lesson(Path("lessons") / name), RunOptions())
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
