"""The engine grades ``promql:`` and ``alert:`` expectations through the executor's step metrics
(the optional :class:`~mesh.observe.query.MetricsExecutor` capability): it asks for them only on
steps that need them, with the step's traffic window, and an executor without the capability
leaves them without data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mesh.checks import Verdict
from mesh.engine import run_lesson
from mesh.lesson import load_lesson
from mesh.observe.istio_metrics import Labels
from mesh.observe.query import QueryResult, StepMetrics, result_from_api
from mesh.runner import RunOptions
from tests.fakes import ScriptedExecutor, record

LESSON = """title: Metrics grading
app: ecommerce
alert_rules: [rules.yaml]
traffic:
  from: api-gateway
  to: product
  requests: [{path: /products}]
  rate_rps: 10
  duration_s: 10
  warmup_s: 2
steps:
  - name: records only
    expect:
      - count: {edge: api-gateway->product}
        at_least: 1
  - name: metrics
    expect:
      - promql: sum(increase(istio_requests_total[$__range]))
        between: [9, 11]
      - alert: Errors
        equals: 0
"""

RULES = """groups:
  - name: g
    rules:
      - alert: Errors
        expr: sum(rate(istio_requests_total{response_code="500"}[$__range])) > 0
"""


@dataclass
class Answers:
    """A step's metrics that answer every query with ``value`` and log what they were asked."""

    value: float
    asked: list[str] = field(default_factory=list)

    @property
    def range_s(self) -> float:
        return 8.0

    def query(self, expr: str) -> QueryResult:
        self.asked.append(expr)
        result = [] if "500" in expr else [{"metric": {}, "value": [0, str(self.value)]}]
        return result_from_api({"resultType": "vector", "result": result})

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        return {}


@dataclass
class MetricsScripted(ScriptedExecutor):
    """The scripted executor, able to answer PromQL."""

    answers: Answers = field(default_factory=lambda: Answers(10.0))
    windows: list[tuple[int, float, float, float]] = field(default_factory=list)

    def step_metrics(
        self, index: int, started_at: float, duration_s: float, warmup_s: float
    ) -> StepMetrics | None:
        self.windows.append((index, started_at, duration_s, warmup_s))
        return self.answers


def lesson(tmp_path: Path) -> Path:
    tmp_path.mkdir()
    (tmp_path / "lesson.yaml").write_text(LESSON)
    (tmp_path / "rules.yaml").write_text(RULES)
    apps = Path(__file__).resolve().parents[3] / "lessons" / "apps"
    (tmp_path.parent / "apps").symlink_to(apps)
    return tmp_path


def script(plan: object, rng: object) -> list[object]:
    return [record(start=float(i)) for i in range(10)]


def test_metric_expectations_are_graded_on_the_executors_step_metrics(tmp_path: Path) -> None:
    folder = lesson(tmp_path / "lesson")
    executor = MetricsScripted(script=script, started_at=3.0)
    run = run_lesson(executor, load_lesson(folder), RunOptions())
    assert run.passed, [c.describe() for s in run.steps for c in s.checks]
    # asked once, for the step with metric expectations, with its traffic window
    assert executor.windows == [(1, 3.0, 10.0, 2.0)]
    promql, alert = run.steps[1].checks
    assert promql.value == 10.0 and alert.value == 0.0
    assert executor.answers.asked[0] == "sum(increase(istio_requests_total[$__range]))"


def test_without_the_capability_they_have_no_data(tmp_path: Path) -> None:
    folder = lesson(tmp_path / "lesson")
    run = run_lesson(ScriptedExecutor(script=script), load_lesson(folder), RunOptions())
    assert [c.verdict for c in run.steps[1].checks] == [Verdict.NO_DATA, Verdict.NO_DATA]
    assert run.steps[0].passed


def test_the_loader_checks_alert_rules_and_tracing(tmp_path: Path) -> None:
    import pytest

    from mesh.diagnostics import DiagnosticError

    folder = lesson(tmp_path / "lesson")
    text = LESSON.replace("alert: Errors", "alert: Erors")
    (folder / "lesson.yaml").write_text(text + "tracing: {sampling: 150}\n")
    with pytest.raises(DiagnosticError) as err:
        load_lesson(folder)
    messages = {d.code: d for d in err.value.diagnostics}
    assert 'no alerting rule "Erors"' in messages["MPY4004"].message
    assert "Errors" in messages["MPY4004"].hint
    assert "0..100" in messages["MPY4001"].message
    (folder / "rules.yaml").write_text("groups: [{name: g, rules: [{alert: Errors}]}]")
    (folder / "lesson.yaml").write_text(LESSON)
    with pytest.raises(DiagnosticError) as err:
        load_lesson(folder)
    assert any("has no expr" in d.message for d in err.value.diagnostics)
