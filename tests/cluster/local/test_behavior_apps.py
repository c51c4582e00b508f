"""A user-written app (manifests + behavior.yaml, no code) runs on sim and on local.

docs/examples/newsfeed is a lesson on docs/examples/apps/newsfeed, whose Deployments have no
command: on local every replica is the behaviour server behind a real Envoy sidecar. The lesson
passes on both runners and they agree (compare). The app's own marker shows in the records on
both: a degraded page is a 200 of the smaller size. A pod the local runner cannot run is
reported before anything starts, at its container's line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cluster.local.apps import ROOT, unrunnable
from cluster.local.runner import LocalRunner
from mesh.app import load_app
from mesh.compare import Tolerances, compare_runs, format_comparison
from mesh.lesson import load_lesson
from mesh.records import Reporter
from mesh.runner import RunnerError, RunOptions
from sim import SimRunner

LESSON = ROOT / "docs/examples/newsfeed"
APP = ROOT / "docs/examples/apps/newsfeed"


def _pages(run: object, step: int) -> list[tuple[int, int]]:
    records = run.steps[step].records  # type: ignore[attr-defined]
    return [
        (r.response_code, r.bytes_sent)
        for r in records
        if r.reporter is Reporter.DESTINATION and r.destination_service_name == "web"
    ]


@pytest.mark.envoy
def test_the_newsfeed_lesson_passes_on_sim_and_local_and_they_agree(tmp_path: Path) -> None:
    lesson = load_lesson(LESSON)
    sim = SimRunner().run(lesson, RunOptions(seed=1))
    assert sim.passed, "\n".join(c.describe() for s in sim.steps for c in s.checks)
    local = LocalRunner(tmp_path).run(lesson, RunOptions(seed=1))
    assert local.passed, "\n".join(c.describe() for s in local.steps for c in s.checks)
    for run in (sim, local):
        assert set(_pages(run, 0)) == {(200, 6000)}
        assert set(_pages(run, 1)) == {(200, 3000)}, "the feed section left out"
    comparison = compare_runs(sim, local, Tolerances(sigmas=4.5))
    differs = [r for r in comparison.differing if r.metric in {"share", "success", "flag"}]
    assert not differs, format_comparison(comparison)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "examples"
    shutil.copytree(APP, root / "apps" / "newsfeed")
    shutil.copytree(LESSON, root / "newsfeed")
    return root


def test_an_unknown_service_package_is_reported_at_its_command(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    manifest = root / "apps/newsfeed/kubernetes/11-profile.yaml"
    text = manifest.read_text().replace(
        "        image: example.com/newsfeed/profile:1.0\n",
        "        image: example.com/newsfeed/profile:1.0\n"
        "        command: [python, -m, services.profile]\n",
    )
    manifest.write_text(text)
    (problem,) = unrunnable(load_app(root / "apps/newsfeed").resources, load_app(APP).behavior)
    line = text.splitlines().index("        command: [python, -m, services.profile]") + 1
    rendered = problem.render()
    assert rendered.startswith(f"{manifest}:{line}:18: error[MPY4005] Deployment news/profile-v1")
    assert "services.profile, which is not one of the project's services" in rendered


def test_a_meshed_pod_without_code_or_behaviour_stops_the_run_before_it_starts(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    kube = root / "apps/newsfeed/kubernetes"
    # a meshed Service "extra" whose pods have no code and no behaviour declared
    (kube / "14-extra.yaml").write_text((kube / "13-ads.yaml").read_text().replace("ads", "extra"))
    lesson = load_lesson(root / "newsfeed")
    with pytest.raises(RunnerError) as info:
        LocalRunner(tmp_path / "run").run(lesson, RunOptions(seed=1))
    message = str(info.value)
    assert "14-extra.yaml:" in message and "error[MPY4005] Deployment news/extra-v1" in message
    assert 'declares no behaviour for its Service "extra"' in message
    assert not (tmp_path / "run" / "logs").exists(), "nothing was started"


def test_the_shop_is_runnable() -> None:
    app = load_app(ROOT / "lessons/apps/ecommerce")
    assert unrunnable(app.resources, app.behavior) == []


@pytest.mark.envoy
def test_real_envoy_spans_show_the_broken_request_beside_the_stitched_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On local the pieces are real Envoy spans: feed's sidecar starts a new trace for the call
    its app made without trace headers."""
    from playground.cli import main

    code = main(["traces", str(LESSON), "--runner", "local", "--step", "1", "--slowest", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "starting with a client span (pieces?)" in out
    assert "an app did not propagate the trace headers" in out
    assert "the same request stitched back by timing" in out


def test_the_label_runs_the_behaviour_server_even_for_a_pod_with_code(tmp_path: Path) -> None:
    from cluster.local.apps import uses_behavior_server
    from mesh.model.kubernetes import Deployment
    from mesh.topology import build_topology

    root = _copy(tmp_path)
    manifest = root / "apps/newsfeed/kubernetes/10-web.yaml"
    text = manifest.read_text().replace(
        "        image: example.com/newsfeed/web:1.0\n",
        "        image: example.com/newsfeed/web:1.0\n        command: [python, -m, services.product]\n",
    )
    manifest.write_text(text)

    def decision(resources: tuple[object, ...]) -> bool:
        topology = build_topology(resources)  # type: ignore[arg-type]
        pod = next(p for p in topology.pods if p.workload == "web-v1")
        deployment = next(r for r in resources if isinstance(r, Deployment) and r.name == "web-v1")
        return uses_behavior_server(deployment.spec.template.spec.containers[0], pod)

    assert decision(load_app(root / "apps/newsfeed").resources) is False, "it has code"
    manifest.write_text(
        text.replace(
            "        version: v1\n    spec:",
            '        version: v1\n        meshplay.dev/behavior-server: "true"\n    spec:',
        )
    )
    assert decision(load_app(root / "apps/newsfeed").resources) is True
