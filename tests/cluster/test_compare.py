"""compare: two runs of one lesson agree within binomial tolerances, or differ loudly."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from cluster.calibrate import calibrate, write_calibration
from cluster.compare import AGREE, DIFFER, INFO, Tolerances, compare_runs, format_comparison
from mesh.app import load_behavior
from mesh.checks import evaluate_all
from mesh.lesson import Lesson, load_lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import LessonRun, RunOptions, StepResult
from playground.commands.compare import compare

ROOT = Path(__file__).resolve().parents[2]
LESSON = load_lesson(ROOT / "lessons" / "01-request-routing")


def rec(version: str, *, code: int = 200, flags: tuple[str, ...] = (), ms: float = 5.0,
        reporter: Reporter = Reporter.SOURCE, rid: str = "", src_ms: float = 0.0) -> RequestRecord:  # fmt: skip
    return RequestRecord(
        start_time=0.0, duration_ms=src_ms or ms, reporter=reporter,
        source_workload="api-gateway-v1", source_namespace="shop", source_principal="",
        source_app="api-gateway", destination_service="product.shop.svc.cluster.local",
        destination_workload=f"product-{version}", destination_namespace="shop",
        destination_version=version, destination_app="product", path="/products",
        response_code=code, response_flags=flags, request_id=rid,
    )  # fmt: skip


def run(name: str, records: list[RequestRecord], lesson: Lesson = LESSON) -> LessonRun:
    step = lesson.steps[0]
    checks = evaluate_all(step.expect, records, 10.0)
    return LessonRun(lesson, name, 1, (StepResult(0, step, tuple(records), checks, 10.0, 10.0),))


class FakeRunner:
    def __init__(self, name: str, records: list[RequestRecord]) -> None:
        self.name = name
        self.records = records

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        return run(self.name, self.records, lesson)


def test_equal_splits_agree_on_every_metric() -> None:
    a = [rec("v1")] * 100 + [rec("v2")] * 100
    b = [rec("v1")] * 95 + [rec("v2")] * 105
    result, run_a, run_b = compare(LESSON, FakeRunner("sim", a), FakeRunner("local", b),
                                   RunOptions())  # fmt: skip
    assert result.agrees, format_comparison(result)
    assert (run_a.runner, run_b.runner) == ("sim", "local")
    share = next(r for r in result.rows if r.metric == "share" and r.subject.endswith("v2"))
    assert math.isclose(share.delta, 0.025) and share.verdict == AGREE
    assert {r.metric for r in result.rows} >= {"share", "success", "p50 ms", "p99 ms", "expect"}


def test_a_different_split_and_flag_mix_differ_and_expectations_disagree() -> None:
    a = [rec("v1")] * 100 + [rec("v2")] * 100
    b = [rec("v1")] * 180 + [rec("v2", code=503, flags=("UF",))] * 20
    result = compare_runs(run("sim", a), run("local", b))
    verdicts = {(r.metric, r.subject): r.verdict for r in result.rows}
    assert verdicts[("share", "api-gateway->product v1")] == DIFFER
    assert verdicts[("flag", "api-gateway->product UF")] == DIFFER
    assert verdicts[("success", "api-gateway->product")] == DIFFER
    assert any(r.metric == "expect" and r.verdict == DIFFER for r in result.rows)
    assert not result.agrees
    assert "DIFFER" in format_comparison(result)


def test_small_samples_and_latency_are_information_not_disagreement() -> None:
    a = [rec("v1", ms=2.0)] * 5
    b = [rec("v2", ms=40.0)] * 5
    result = compare_runs(run("sim", a), run("local", b), Tolerances(share_tolerance=0.01))
    assert {r.verdict for r in result.rows if r.metric == "share"} == {INFO}
    assert {r.verdict for r in result.rows if r.metric.startswith("p")} == {INFO}
    strict = compare_runs(run("sim", a), run("local", b), Tolerances(strict_latency=True))
    assert {r.verdict for r in strict.rows if r.metric.startswith("p")} == {DIFFER}


def test_calibration_fits_hops_and_service_times_and_rewrites_behavior(tmp_path: Path) -> None:
    app = tmp_path / "ecommerce"
    shutil.copytree(ROOT / "lessons" / "apps" / "ecommerce", app)
    records = []
    for i in range(40):
        rid = f"r{i}"
        records.append(rec("v1", rid=rid, src_ms=9.0))  # client side: 9 ms
        records.append(rec("v1", rid=rid, ms=7.0, reporter=Reporter.DESTINATION))  # server: 7 ms
    behavior = load_behavior(app / "behavior.yaml")
    fit = calibrate(records, behavior)
    assert fit.hop is not None and fit.hop.median_ms == 1.0 and fit.hop.samples == 40
    assert fit.service_times[("product", "GET /products")].median_ms == 7.0
    assert write_calibration(app / "behavior.yaml", fit) == 2
    again = load_behavior(app / "behavior.yaml")
    assert math.isclose(again.network.hop_latency.median.seconds, 0.001)
    product = again.service("product")
    assert product is not None
    endpoint = product.endpoint("GET", "/products")
    assert endpoint is not None and endpoint.service_time is not None
    assert math.isclose(endpoint.service_time.median.seconds, 0.007)
    v2 = product.endpoint("GET", "/products", "v2")
    assert v2 is not None and v2.service_time is not None
    assert math.isclose(v2.service_time.median.seconds, 0.0008)  # version overrides untouched
