"""``meshplay run``: the report, the exit code and ``--records``, with a runner that replays
fixed records (the runner protocol is all the CLI knows about)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mesh.engine import LessonRunner
from mesh.records import Reporter, RequestRecord
from mesh.runner import StepPlan
from playground.cli import main
from tests.fakes import ScriptedExecutor

ROOT = Path(__file__).resolve().parents[2]
LESSON = str(ROOT / "lessons" / "01-request-routing")


def _record(version: str, path: str) -> RequestRecord:
    return RequestRecord(
        start_time=0.0, duration_ms=3.0, reporter=Reporter.SOURCE, source_workload="api-gateway-v1",
        source_namespace="shop", source_principal="", source_app="api-gateway",
        destination_service="product.shop.svc.cluster.local", destination_workload=f"product-{version}",
        destination_namespace="shop", destination_version=version, path=path, response_code=200,
        upstream_cluster=f"outbound|8080|{version}|product.shop.svc.cluster.local",
    )  # fmt: skip


class ReplayRunner(LessonRunner):
    """The engine on a scripted executor: every catalog request to v1, every item page to
    ``item_version`` (step 1 splits them, step 2 pins everything to v1)."""

    def __init__(self, item_version: str) -> None:
        self.item_version = item_version
        super().__init__("sim", lambda: ScriptedExecutor("sim", script=self.records))

    def records(self, plan: StepPlan, rng: object) -> list[RequestRecord]:
        item = {0: "v2", 1: "v1"}.get(plan.index, self.item_version)
        outside = RequestRecord(
            start_time=0.0,
            duration_ms=5.0,
            reporter=Reporter.DESTINATION,
            source_workload="unknown",
            source_namespace="",
            source_principal="",
            destination_service="api-gateway.shop.svc.cluster.local",
            destination_workload="api-gateway-v1",
            destination_namespace="shop",
            destination_version="v1",
            response_code=200,
        )
        return (
            [_record("v1", "/products")] * 50
            + [_record(item, "/products/grinder")] * 50
            + [outside] * 100
        )


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ReplayRunner:
    chosen = ReplayRunner("v2")
    monkeypatch.setattr("playground.commands.run.get_runner", lambda name: chosen)
    return chosen


def test_passing_run_prints_edges_and_verdicts(
    runner: ReplayRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", LESSON, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Step 3: Item pages go to v2, the catalog stays on v1" in out
    assert "api-gateway->product" in out and "v1:50 v2:50" in out
    assert "\u2714 share(api-gateway->product v2 /products/*) >= 0.999: 1 (n=50) pass" in out
    assert out.rstrip().endswith("PASSED: 7/7 expectations met")


def test_failing_run_exits_1_and_shows_why_and_hints(
    runner: ReplayRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.item_version = "v1"  # the learner's URI rule does not match
    assert main(["run", LESSON, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "\u2718 share(api-gateway->product v2 /products/*) >= 0.999: 0 (n=50) fail" in out
    assert "why: The first rule matches item pages by URI prefix." in out
    assert "hint: A VirtualService rule without `match` matches everything" in out


def test_step_limit_and_records_file(runner: ReplayRunner, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    assert main(["run", LESSON, "--step", "1", "--records", str(out), "--no-progress"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 200
    assert RequestRecord.from_json(json.loads(lines[0])).destination_version == "v1"


def test_unknown_runner_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", LESSON, "--runner", "docker"])
    assert info.value.code == 2


def test_broken_lesson_exits_2_with_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lesson.yaml").write_text("title: x\nsteps: [{name: a, apply: [nope.yaml]}]\n")
    assert main(["run", str(tmp_path)]) == 2
    assert "error[MPY4002]" in capsys.readouterr().err


@pytest.mark.parametrize("step", ["0", "-1", "4", "99"])
def test_a_step_outside_the_lesson_is_a_usage_error_before_running(
    runner: ReplayRunner, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", LESSON, "--step", step, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f'error: --step {step}: lesson "01-request-routing" has 3 steps (choose 1..3)'
    ]


def test_an_unwritable_records_path_is_a_usage_error_before_running(
    runner: ReplayRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "out.jsonl"
    assert main(["run", LESSON, "--records", str(target), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: --records {target}: no such folder {target.parent}"
    ]


def test_config_errors_are_shown_before_the_run_and_flags_are_spelled_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A route to a subset that does not exist: the run still goes ahead on sim (503 NC), but
    the analyzer's IST0101 that explains it comes first, and NC is spelled out."""
    root = tmp_path / "lessons"
    shutil.copytree(LESSON, root / "01-request-routing")
    (root / "apps").symlink_to(ROOT / "lessons" / "apps")
    vs = root / "01-request-routing" / "istio" / "virtual-service-all-v1.yaml"
    vs.write_text(vs.read_text().replace("subset: v1", "subset: v3"))
    assert main(["run", str(root / "01-request-routing"), "--no-progress", "--step", "2"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "meshplay analyze finds 1 problem in this lesson's configuration (1 error); running it anyway:"
    )
    assert (
        'error[IST0101] VirtualService shop/product: Referenced host+subset in destinationrule not found: "product+v3"'
        in captured.err
    )
    assert "  flags: NC = NoClusterFound" in captured.out
    assert "note: the configuration problems reported before the run (IST0101)" in captured.out
