"""compare: two runs of one lesson agree within binomial tolerances, or differ loudly; shares count
only the requests sent upstream; a handful of records seen on one side only is information."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from mesh.checks import Verdict, evaluate_all
from mesh.compare import (
    AGREE,
    DIFFER,
    INFO,
    SHARE_NOTE,
    Tolerances,
    compare_runs,
    format_comparison,
    sent_upstream,
)
from mesh.lesson import CompareTolerance, Lesson, LessonStep, load_lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import LessonRun, StepResult

ROOT = Path(__file__).resolve().parents[2]
LESSON = load_lesson(ROOT / "lessons" / "01-request-routing")


def rec(version: str, *, code: int = 200, flags: tuple[str, ...] = (), ms: float = 5.0,
        client: str = "api-gateway", service: str = "product") -> RequestRecord:  # fmt: skip
    return RequestRecord(
        start_time=0.0, duration_ms=ms, reporter=Reporter.SOURCE,
        source_workload=f"{client}-v1", source_namespace="shop", source_principal="",
        source_app=client, destination_service=f"{service}.shop.svc.cluster.local",
        destination_workload=f"{service}-{version}", destination_namespace="shop",
        destination_version=version, destination_app=service, path="/products",
        response_code=code, response_flags=flags,
    )  # fmt: skip


def run(
    name: str, records: list[RequestRecord], lesson: Lesson = LESSON, step: LessonStep | None = None
) -> LessonRun:
    step = step or lesson.steps[0]
    checks = evaluate_all(step.expect, records, 10.0)
    return LessonRun(lesson, name, 1, (StepResult(0, step, tuple(records), checks, 10.0, 10.0),))


def test_equal_splits_agree_on_every_metric() -> None:
    a = [rec("v1")] * 100 + [rec("v2")] * 100
    b = [rec("v1")] * 95 + [rec("v2")] * 105
    result = compare_runs(run("sim", a), run("local", b))
    assert result.agrees, format_comparison(result)
    assert (result.runner_a, result.runner_b) == ("sim", "local")
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
    same = compare_runs(run("sim", a), run("local", a))  # too few to judge, even when equal
    assert {r.verdict for r in same.rows if r.metric in ("share", "success")} == {INFO}
    assert {r.verdict for r in result.rows if r.metric.startswith("p")} == {INFO}
    strict = compare_runs(run("sim", a), run("local", b), Tolerances(strict_latency=True))
    assert {r.verdict for r in strict.rows if r.metric.startswith("p")} == {DIFFER}


def test_shares_leave_out_local_replies_whatever_version_the_log_names() -> None:
    # Lesson 08's overflow step: ~99 % of requests are 503 UO answered by the client sidecar;
    # real Envoy names an upstream host for some of them and not others, in bursts.
    sent = [rec("v1")] * 20 + [rec("v2")] * 20
    uo_a = [rec("unknown", code=503, flags=("UO",))] * 900 + [
        rec("v1", code=503, flags=("UO",))
    ] * 60
    uo_b = [rec("v2", code=503, flags=("UO",))] * 660 + [
        rec("unknown", code=503, flags=("UO",))
    ] * 300
    result = compare_runs(run("sim", sent + uo_a), run("local", sent + uo_b))
    shares = {r.subject: r for r in result.rows if r.metric == "share"}
    assert set(shares) == {"api-gateway->product v1", "api-gateway->product v2"}
    assert all(r.verdict == AGREE and (r.n_a, r.n_b) == (40, 40) for r in shares.values())
    flag = next(r for r in result.rows if r.metric == "flag")
    assert flag.subject.endswith("UO") and flag.verdict == AGREE and flag.n_a == 1000
    assert result.agrees, format_comparison(result)
    assert SHARE_NOTE in format_comparison(result)


def test_requests_that_went_upstream_keep_their_share_even_when_they_failed() -> None:
    assert not sent_upstream(rec("v1", code=500, flags=("DI", "FI")))
    assert not any(sent_upstream(rec("v1", code=503, flags=(f,))) for f in ("NR", "NC", "UH", "RL"))
    assert all(sent_upstream(rec("v1", code=503, flags=(f,))) for f in ("URX", "UT", "UF", "DI"))
    a = [rec("v1")] * 100 + [rec("v2")] * 100
    b = [rec("v1")] * 100 + [rec("v2", code=504, flags=("UT",))] * 100
    result = compare_runs(run("sim", a), run("local", b))
    share = next(r for r in result.rows if r.subject == "api-gateway->product v2")
    assert share.verdict == AGREE and share.n_b == 200
    assert next(r for r in result.rows if r.metric == "success").verdict == DIFFER


def test_an_edge_seen_on_one_side_with_a_handful_of_records_is_information() -> None:
    # Lesson 06: order fetched user's JWKS once on sim; the real service had it cached.
    base = [rec("v1")] * 100 + [rec("v2")] * 100
    jwks = [rec("v1", client="order", service="user")]
    result = compare_runs(run("sim", base + jwks), run("local", base))
    one_sided = [r for r in result.rows if r.subject.startswith("order->user")]
    assert one_sided and {r.verdict for r in one_sided} == {INFO}
    assert result.agrees, format_comparison(result)
    many = [rec("v1", client="order", service="user")] * 40
    assert not compare_runs(run("sim", base + many), run("local", base)).agrees


def test_a_real_split_difference_still_differs_beside_local_replies() -> None:
    uo = [rec("unknown", code=503, flags=("UO",))] * 100
    a = [rec("v1")] * 150 + [rec("v2")] * 50 + uo
    b = [rec("v1")] * 100 + [rec("v2")] * 100 + uo
    result = compare_runs(run("sim", a), run("local", b))
    share = next(r for r in result.rows if r.subject == "api-gateway->product v1")
    assert share.verdict == DIFFER and math.isclose(share.delta, -0.25)
    assert not result.agrees


def test_a_steps_own_compare_tolerance_replaces_the_floor() -> None:
    a = [rec("v1")] * 150 + [rec("v2")] * 50
    b = [rec("v1")] * 100 + [rec("v2")] * 100
    loose = dataclasses.replace(
        LESSON.steps[0], compare=CompareTolerance(share=0.3, why="hashing"), expect=()
    )
    result = compare_runs(run("sim", a, step=loose), run("local", b, step=loose))
    shares = [r for r in result.rows if r.metric == "share"]
    assert {r.tolerance for r in shares} == {0.3} and {r.verdict for r in shares} == {AGREE}
    success = next(r for r in result.rows if r.metric == "success")
    assert success.tolerance == 0.05


def test_expectation_verdicts_are_compared_with_each_runners_grade() -> None:
    a = [rec("v1")] * 100 + [rec("v2")] * 100
    b = [rec("v1")] * 200
    rows = [r for r in compare_runs(run("sim", a), run("local", b)).rows if r.metric == "expect"]
    share = next(r for r in rows if r.subject.startswith("share"))
    assert (share.verdict_a, share.verdict_b, share.verdict) == (Verdict.PASS, Verdict.FAIL, DIFFER)
    nothing = [
        r for r in compare_runs(run("sim", a), run("local", [])).rows if r.metric == "expect"
    ]
    assert {r.verdict for r in nothing} == {INFO}  # no data on local


def test_steps_are_paired_by_index_when_a_runner_skips_one() -> None:
    records = [rec("v1")] * 100 + [rec("v2")] * 100
    two = LESSON.steps[:2]
    results = tuple(
        StepResult(i, s, tuple(records), evaluate_all(s.expect, records, 10.0), 10.0, 10.0)
        for i, s in enumerate(two)
    )
    a = LessonRun(LESSON, "sim", 1, results)
    b = LessonRun(LESSON, "local", 1, results[1:])
    result = compare_runs(a, b)
    assert {r.step for r in result.rows} == {1}
    assert result.titles == ((1, two[1].name),)
    assert f"Step 2: {two[1].name}" in format_comparison(result)
