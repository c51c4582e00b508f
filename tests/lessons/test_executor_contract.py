"""The executors' side of the engine contract, on the real executors (``sim``, and ``local`` on
real Envoy): they run what they are pushed, at the times the timeline says, keep breaks until a
``restore``, skip a step for other runners while its changes still take effect, and report
records in a time base in which the engine's warm-up cut is right.

The engine's own decisions are proved once, through a scripted executor, in
``tests/mesh/test_engine.py``; here one small lesson on the real e-commerce app exercises each
runner end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mesh.engine import LessonRunner
from mesh.lesson import load_lesson
from mesh.lesson.model import Lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import LessonRun, Progress, RunOptions, StepResult
from tests.fakes import lesson_folder

ROOT = Path(__file__).resolve().parents[2]
LOCAL_TIME_SCALE = 1.0

LESSON = """title: Executor contract
app: ecommerce
traffic:
  from: api-gateway
  to: product
  requests: [{path: /products}]
  rate_rps: 20
  duration_s: 2
steps:
  - name: v1, then v2 from 4 s
    apply: [istio/dr.yaml, istio/vs-v1.yaml]
    traffic:
      from: api-gateway
      to: product
      requests: [{path: /products}]
      rate_rps: 20
      duration_s: 8
    events:
      - {at_s: 4, apply: [istio/vs-v2.yaml]}
  - name: v2 fails
    break: [{workload: product-v2, error_rate: 1.0}]
  - name: v2 still fails
  - name: back to v1, healed, on kube only
    runners: [kube]
    apply: [istio/vs-v1.yaml]
    break: [{workload: product-v2, restore: true}]
  - name: after a warm-up
    apply: [istio/vs-v2.yaml]
    traffic:
      from: api-gateway
      to: product
      requests: [{path: /products}]
      rate_rps: 20
      duration_s: 3
      warmup_s: 1
"""


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return load_lesson(lesson_folder(tmp_path_factory.mktemp("root"), "contract", LESSON))


def _calls(step: StepResult) -> list[RequestRecord]:
    """api-gateway's client-side records of its calls to product."""
    return [
        r
        for r in step.records
        if r.reporter is Reporter.SOURCE
        and r.source_app == "api-gateway"
        and r.destination_service.startswith("product.")
    ]


def _share(records: list[RequestRecord], version: str) -> float:
    assert records, "no records"
    return sum(r.destination_version == version for r in records) / len(records)


@dataclass
class Live:
    """What the live callbacks saw: per step, the traffic fraction when each batch arrived."""

    fraction: float = 0.0
    batches: dict[int, list[tuple[float, int]]] = field(default_factory=dict)

    def on_progress(self, p: Progress) -> None:
        self.fraction = p.fraction

    def on_records(self, step: int, records: Sequence[RequestRecord]) -> None:
        self.batches.setdefault(step, []).append((self.fraction, len(records)))


def _run(name: str, lesson: Lesson, tmp_path: Path, live: Live) -> tuple[LessonRun, float]:
    """The run, and the factor by which its traffic times are scaled."""
    options = RunOptions(seed=3, on_progress=live.on_progress, on_records=live.on_records)
    runner: LessonRunner
    if name == "sim":
        from sim import SimRunner

        return SimRunner().run(lesson, options), 1.0
    from cluster.local import LocalRunner

    runner = LocalRunner(tmp_path, time_scale=LOCAL_TIME_SCALE)
    return runner.run(lesson, options), LOCAL_TIME_SCALE


@pytest.mark.parametrize(
    "name", ["sim", pytest.param("local", marks=[pytest.mark.envoy, pytest.mark.slow])]
)
def test_executor_honours_pushes_timeline_breaks_skips_and_warm_up(
    name: str, lesson: Lesson, tmp_path: Path
) -> None:
    live = Live()
    run, scale = _run(name, lesson, tmp_path, live)
    assert not run.cancelled and len(run.steps) == 5
    first, fails, still, skipped, warm = run.steps

    # every record of a step reached the live views once (warm-up included), none of a skipped one
    for step in run.steps:
        seen = sum(n for _, n in live.batches.get(step.index, []))
        assert seen == len(step.records) + len(step.warmup_records), step.step.name
    if name == "local":  # a real runner streams records while the traffic runs
        assert any(fraction < 0.9 for fraction, _ in live.batches[0]), live.batches[0]

    # the timeline: a push at 4 s moves traffic from v1 to v2 mid-step
    calls = _calls(first)
    switch = first.started_at + 4 * scale
    settle = 2.0  # wall-clock: translate, write the xDS files, every Envoy reloads them
    before = [r for r in calls if r.start_time < switch]
    after = [r for r in calls if r.start_time > switch + settle]
    assert len(before) >= 20 and len(after) >= 20, (len(before), len(after))
    assert _share(before, "v1") == 1.0
    last_v1 = max(r.start_time for r in calls if r.destination_version == "v1") - switch
    assert _share(after, "v2") == 1.0, f"last v1 request {last_v1:.2f} s after the push"

    # the runner reports when the lesson event took effect, in the records' time base
    (event,) = first.events
    assert (event.kind, event.subject, event.detail) == (
        "event",
        "at 4 s",
        "apply istio/vs-v2.yaml",
    )
    assert abs(event.at - switch) < (0.5 if name == "local" else 1e-9), event.at - switch

    # a break holds until restored, across steps
    for step in (fails, still):
        codes = {r.response_code for r in _calls(step)}
        assert codes == {500}, (step.step.name, codes)

    # a step for other runners: skipped, its apply and restore still in effect afterwards
    assert skipped.skipped and skipped.records == () and skipped.checks == ()
    graded = _calls(warm)
    assert {r.response_code for r in graded} == {200}
    assert _share(graded, "v2") == 1.0  # step 5 re-applied v2 over the skipped step's v1

    # warm-up: the first second of traffic is kept apart, in the records' own time base
    cutoff = warm.started_at + 1.0
    assert warm.warmup_records and all(r.start_time < cutoff for r in warm.warmup_records)
    assert all(r.start_time >= cutoff for r in warm.records)
    assert len(_calls(warm)) > 2 * len([r for r in warm.warmup_records if r in set(_calls(warm))])
