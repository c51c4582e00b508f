"""The lesson engine (``mesh.engine.run_lesson``): one definition of a lesson run for every runner.

Every behaviour here is the engine's, proved once through a scripted executor that carries no
traffic: step selection, the runners filter, the accumulated configuration and what is pushed,
breaks, timed events, warm-up, grading, callbacks, cancellation and closing. The executors' own
side of the contract (they apply what they are pushed, at the times they are told) is proved per
executor in ``tests/lessons/test_executor_contract.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mesh.checks import Verdict
from mesh.engine import LessonRunner, plan_steps, run_lesson, step_seed
from mesh.lesson import BreakAction, load_lesson
from mesh.lesson.model import Lesson
from mesh.records import RequestRecord
from mesh.runner import Progress, RunnerError, RunOptions, StepPlan, StepSelectionError
from tests.fakes import ScriptedExecutor, lesson_folder, record

ROOT = Path(__file__).resolve().parents[2]

LESSON = """title: Engine contract
app: ecommerce
traffic:
  from: api-gateway
  to: product
  requests: [{path: /products}]
  rate_rps: 10
  duration_s: 10
steps:
  - name: subsets, v1 slow, then v2 at 4 s
    apply: [istio/dr.yaml]
    break: [{workload: product-v1, latency_ms: 100}]
    events:
      - {at_s: 4, apply: [istio/vs-v2.yaml], break: [{workload: product-v1, restore: true}]}
      - {at_s: 0, apply: [istio/vs-v1.yaml], break: [{workload: product-v2, error_rate: 0.5}]}
      - {at_s: 2, delete: [VirtualService/product]}
    expect:
      - count: {edge: api-gateway->product}
        equals: 10
  - name: only on sim
    runners: [sim]
    apply: [istio/vs-v1.yaml]
    events:
      - {at_s: 3, break: [{workload: product-v2, kill: 1}]}
    expect:
      - count: {edge: api-gateway->product}
        equals: 1
  - name: with a warm-up
    traffic:
      from: api-gateway
      to: product
      requests: [{path: /products}]
      rate_rps: 10
      duration_s: 10
      warmup_s: 2
    expect:
      - share: {edge: api-gateway->product, version: v2}
        at_least: 0.99
      - rps: {edge: api-gateway->product}
        equals: 1.0
        tolerance: 0.001
"""


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    """A lesson in a temporary folder, on the real ecommerce app."""
    return load_lesson(lesson_folder(tmp_path_factory.mktemp("root"), "engine", LESSON))


def _ten(plan: StepPlan, rng: object = None) -> list[RequestRecord]:
    """Ten requests one second apart, all to v2 after step 1."""
    version = "v1" if plan.index == 0 else "v2"
    return [
        record(start=float(i), version=version, request_id=f"{plan.index}-{i}") for i in range(10)
    ]


def _pushed(ex: ScriptedExecutor) -> list[object]:
    return [detail for name, detail in ex.calls if name == "push"]


# -- which steps run -----------------------------------------------------------------------------


@pytest.mark.parametrize("until", [0, -1, 4, 99])
def test_a_step_outside_the_lesson_is_refused_before_anything_starts(
    lesson: Lesson, until: int
) -> None:
    ex = ScriptedExecutor()
    with pytest.raises(
        StepSelectionError, match=rf"--step {until}: lesson \"engine\" has 3 steps \(choose 1..3\)"
    ):
        run_lesson(ex, lesson, RunOptions(until_step=until))
    assert ex.calls == []


def test_until_step_runs_steps_one_to_k(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run = run_lesson(ex, lesson, RunOptions(until_step=1))
    assert [s.index for s in run.steps] == [0]
    assert ex.methods().count("drive") == 1
    assert run.passed and not run.cancelled


def test_a_step_for_other_runners_is_skipped_but_its_changes_still_apply(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run = run_lesson(ex, lesson, RunOptions())
    step2 = run.steps[1]
    assert step2.skipped == "this step runs on sim, not on fake"
    assert step2.records == () and step2.checks == () and step2.passed
    assert ("drive", 1) not in ex.calls
    # its apply and its event's break happened all the same, before step 3's traffic
    i = ex.calls.index(("drive", 2))
    assert ("push", ("DestinationRule/product", "VirtualService/product")) in ex.calls[:i]
    assert ("break", BreakAction(workload="product-v2", kill=1)) in ex.calls[:i]


def test_the_same_step_runs_on_the_runner_it_names(lesson: Lesson) -> None:
    ex = ScriptedExecutor(
        name="sim",
        script=lambda plan, rng: [record(version="v2")] if plan.index == 1 else _ten(plan),
    )
    run = run_lesson(ex, lesson, RunOptions())
    assert not run.steps[1].skipped and run.steps[1].checks[0].verdict is Verdict.PASS


def test_plans_carry_each_steps_own_seed_and_traffic(lesson: Lesson) -> None:
    plans = plan_steps(lesson, RunOptions(seed=7), "local")
    assert [p.seed for p in plans] == [step_seed(7, i) for i in range(3)]
    assert len({p.seed for p in plans}) == 3
    assert [p.runs for p in plans] == [True, False, True]
    assert plans[2].traffic.warmup_s == 2 and plans[0].traffic.warmup_s == 0


# -- configuration, breaks and events -------------------------------------------------------------


def test_the_app_opens_with_its_manifests_then_steps_push_whole_states(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run_lesson(ex, lesson, RunOptions(seed=5))
    assert ex.calls[0] == ("preflight", (0, 1, 2)) and ex.calls[1] == ("open", 5)
    # step 1: the DR and the t=0 event's VirtualService in one push, before its traffic
    assert ex.calls[2] == ("push", ("DestinationRule/product", "VirtualService/product"))
    assert ex.calls[-1] == ("close", None)


def test_breaks_of_the_step_and_of_t0_events_come_before_traffic_in_lesson_order(
    lesson: Lesson,
) -> None:
    ex = ScriptedExecutor(script=_ten)
    run_lesson(ex, lesson, RunOptions(until_step=1))
    before = ex.calls[: ex.calls.index(("drive", 0))]
    assert [d for n, d in before if n == "break"] == [
        BreakAction(workload="product-v1", latency_ms=100),
        BreakAction(workload="product-v2", error_rate=0.5),
    ]


def test_timed_events_are_sorted_and_carry_the_whole_state_they_lead_to(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run_lesson(ex, lesson, RunOptions(until_step=1))
    after = ex.calls[ex.calls.index(("drive", 0)) + 1 :]
    assert after[:5] == [
        ("at", 2),
        ("push", ("DestinationRule/product",)),  # the VirtualService deleted by reference
        ("at", 4),
        ("push", ("DestinationRule/product", "VirtualService/product")),
        ("break", BreakAction(workload="product-v1", restore=True)),
    ]


def test_the_next_step_starts_from_the_state_the_events_left(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run_lesson(ex, lesson, RunOptions(until_step=2))
    # step 2 applies vs-v1 over the events' vs-v2: a change, pushed (not skipped as "same")
    pushes = _pushed(ex)
    assert pushes[-1] == ("DestinationRule/product", "VirtualService/product")
    assert len(pushes) == 4


def test_an_event_that_changes_no_resource_pushes_nothing(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten)
    run_lesson(ex, lesson, RunOptions())
    step2 = ex.calls[ex.calls.index(("drive", 0)) :]
    # step 2's only event is a break: no push between it and the kill
    kill = step2.index(("break", BreakAction(workload="product-v2", kill=1)))
    assert step2[kill - 1][0] == "push"  # the step's own apply, not an event push


# -- warm-up and grading ------------------------------------------------------------------------


def test_warm_up_records_are_kept_apart_and_not_graded(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=_ten, started_at=100.0)
    ex.script = lambda plan, rng: [
        record(start=100.0 + i, version="v1" if i < 2 else "v2") for i in range(10)
    ]
    run = run_lesson(ex, lesson, RunOptions())
    step3 = run.steps[2]
    assert [r.start_time for r in step3.warmup_records] == [100.0, 101.0]
    assert len(step3.records) == 8 and {r.destination_version for r in step3.records} == {"v2"}
    # graded over the 8 s after warm-up: 8 requests in 8 s
    assert step3.duration_s == pytest.approx(8.0)
    assert [c.verdict for c in step3.checks] == [Verdict.PASS, Verdict.PASS]
    assert run.passed


def test_the_warm_up_cut_is_in_the_executors_time_base(lesson: Lesson) -> None:
    ex = ScriptedExecutor(
        script=lambda p, rng: [record(start=5.0 + i) for i in range(10)], started_at=5.0
    )
    run = run_lesson(ex, lesson, RunOptions())
    assert len(run.steps[2].warmup_records) == 2 and len(run.steps[2].records) == 8


def test_a_failed_expectation_fails_the_run(lesson: Lesson) -> None:
    ex = ScriptedExecutor(script=lambda plan, rng: _ten(plan)[:9])
    run = run_lesson(ex, lesson, RunOptions(until_step=1))
    assert not run.passed
    assert run.steps[0].checks[0].value == 9


# -- callbacks, cancellation, errors ---------------------------------------------------------------


@pytest.mark.parametrize("batch", [0, 3])
def test_records_reach_on_records_once_whether_or_not_the_executor_streams(
    lesson: Lesson, batch: int
) -> None:
    got: list[tuple[int, int]] = []
    ex = ScriptedExecutor(script=_ten, batch=batch)
    run_lesson(ex, lesson, RunOptions(on_records=lambda i, rs: got.append((i, len(rs)))))
    per_step = {i: sum(n for j, n in got if j == i) for i in (0, 2)}
    assert per_step == {0: 10, 2: 10}, got
    assert all(i != 1 for i, _ in got)


def test_progress_names_the_step_and_the_total(lesson: Lesson) -> None:
    seen: list[Progress] = []
    ex = ScriptedExecutor(script=_ten, batch=5)
    run_lesson(ex, lesson, RunOptions(on_progress=seen.append))
    assert {(p.step, p.steps) for p in seen} == {(0, 3), (2, 3)}
    assert seen[-1].fraction == 1.0 and all(0.0 <= p.fraction <= 1.0 for p in seen)


def test_cancel_ends_the_current_step_graded_and_starts_no_other(lesson: Lesson) -> None:
    cancel = threading.Event()
    ex = ScriptedExecutor(script=_ten, batch=2, on_drive=lambda plan: cancel.set())
    run = run_lesson(ex, lesson, RunOptions(cancel=cancel))
    assert run.cancelled and [s.index for s in run.steps] == [0]
    assert run.steps[0].records == () and ex.closed


def test_the_executor_is_closed_after_an_error_and_the_error_surfaces(lesson: Lesson) -> None:
    for where in ("open", "push", "drive:2"):
        ex = ScriptedExecutor(script=_ten, fail_in=where)
        with pytest.raises(RunnerError, match=where):
            run_lesson(ex, lesson, RunOptions())
        assert ex.closed, where


def test_a_refusal_in_preflight_starts_nothing(lesson: Lesson) -> None:
    ex = ScriptedExecutor(refuse="no CNI here")
    with pytest.raises(RunnerError, match="no CNI here"):
        run_lesson(ex, lesson, RunOptions())
    assert ex.methods() == ["preflight"]


def test_lesson_runner_uses_a_fresh_executor_per_run(lesson: Lesson) -> None:
    made: list[ScriptedExecutor] = []

    def factory() -> ScriptedExecutor:
        made.append(ScriptedExecutor(script=_ten))
        return made[-1]

    runner = LessonRunner("fake", factory)
    runner.run(lesson, RunOptions(until_step=1))
    runner.run(lesson, RunOptions(until_step=1))
    assert len(made) == 2 and all(ex.closed for ex in made)


GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""


def test_proxy_config_reads_the_ingress_gateway_and_which_pods_have_a_proxy(
    tmp_path: Path,
) -> None:
    """The ingress gateway every install adds can be measured like any proxy: no listener until
    a Gateway selects it (a step applies one), then one; ``proxies`` counts a workload's pods
    that run an Envoy, 0 for one whose template opts out of injection (the shop's postgres),
    and a sidecar's size is no data there rather than 0."""
    folder = lesson_folder(
        tmp_path,
        "gw",
        """title: Gateway
steps:
  - name: before
    expect:
      - proxy_config: {workload: istio-ingressgateway, measure: listeners}
        equals: 0
      - proxy_config: {workload: istio-ingressgateway, measure: proxies}
        equals: 1
      - proxy_config: {workload: product-v1, measure: proxies}
        equals: 1
      - proxy_config: {workload: postgres, measure: proxies}
        equals: 0
      - proxy_config: {workload: postgres, measure: clusters}
        at_least: 0
  - name: after
    apply: [istio/gateway.yaml]
    expect:
      - proxy_config: {workload: istio-ingressgateway, measure: listeners}
        equals: 1
      - proxy_config: {workload: istio-ingressgateway, measure: listeners}
        equals: 0
""",
    )
    (folder / "istio" / "gateway.yaml").write_text(GATEWAY)
    run = run_lesson(ScriptedExecutor(), load_lesson(folder), RunOptions())
    verdicts = [[c.verdict for c in s.checks] for s in run.steps]
    assert verdicts == [
        [Verdict.PASS, Verdict.PASS, Verdict.PASS, Verdict.PASS, Verdict.NO_DATA],
        [Verdict.PASS, Verdict.FAIL],
    ]


def test_proxy_memory_is_the_executors_reading_or_no_data(tmp_path: Path) -> None:
    """``memory_mb`` is asked of the executor (the innermost one under wrappers): the sim's
    model grows with the clusters a Sidecar would remove; an executor that cannot read memory
    (a scripted one here) gives no data rather than a guess."""
    from mesh.engine import ExecutorWrapper
    from sim.runner import SimExecutor

    text = """title: Memory
steps:
  - name: s
    traffic: {from: api-gateway, to: product, count: 1, rate_rps: 10}
    expect:
      - proxy_config: {workload: api-gateway-v1, measure: memory_mb}
        between: [6, 9]
"""
    lesson = load_lesson(lesson_folder(tmp_path, "mem", text))

    class Wrapped(ExecutorWrapper):
        def __init__(self, inner: SimExecutor) -> None:
            self.inner = inner

    for executor, verdict in (
        (SimExecutor(), Verdict.PASS),
        (Wrapped(SimExecutor()), Verdict.PASS),
        (ScriptedExecutor(), Verdict.NO_DATA),
    ):
        run = run_lesson(executor, lesson, RunOptions())
        (check,) = run.steps[0].checks
        assert check.verdict is verdict, (executor, check.describe())
