"""PromQL answers, ``$__range``, Prometheus durations, alerting rules and when an alert fires,
and how ``promql:``/``alert:`` expectations are graded (the engine hands the grading a step's
metrics; without any they have no data)."""

from __future__ import annotations

import math

import pytest

from mesh.checks import Verdict, evaluate
from mesh.lesson import Expectation
from mesh.observe.istio_metrics import Labels
from mesh.observe.query import (
    QueryError,
    QueryResult,
    families_read,
    format_duration,
    parse_duration,
    result_from_api,
    substitute,
)
from mesh.observe.rules import AlertRule, RuleError, firing, parse_rules
from tests.fakes import record


def test_vector_and_scalar_answers() -> None:
    vector = result_from_api(
        {
            "resultType": "vector",
            "result": [
                {"metric": {"destination_version": "v2"}, "value": [1, "3"]},
                {"metric": {"destination_version": "v1"}, "value": [1, "7.5"]},
            ],
        }
    )
    assert vector.by("destination_version") == {"v1": 7.5, "v2": 3.0}
    assert math.isnan(vector.single())
    scalar = result_from_api({"resultType": "scalar", "result": [1, "0.25"]})
    assert scalar.single() == 0.25
    assert math.isnan(result_from_api({"resultType": "vector", "result": []}).single())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1m30s", 90), ("250ms", 0.25), ("1h", 3600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")


def test_range_placeholder_becomes_the_window() -> None:
    assert substitute("rate(x[$__range])", 12.0) == "rate(x[12s])"
    assert substitute("rate(x[$__range])", 7.25) == "rate(x[7250ms])"
    assert format_duration(0.0001) == "1ms"


RULES = """
groups:
  - name: g
    rules:
      - record: job:x:rate
        expr: rate(x[1m])
      - alert: Burst
        expr: sum(rate(x[10s])) > 1
        for: 5s
        labels: {severity: page}
      - alert: Now
        expr: vector(1)
"""


def test_rule_files_give_their_alerts() -> None:
    burst, now = parse_rules(RULES)
    assert (burst.name, burst.for_s, dict(burst.labels), burst.group) == (
        "Burst",
        5.0,
        {"severity": "page"},
        "g",
    )
    assert (now.name, now.for_s) == ("Now", 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        "groups: 3",
        "groups: [{name: g}]",
        "groups: [{name: g, rules: [{alert: A}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: x, for: soon}]}]",
    ],
)
def test_broken_rule_files_are_refused(bad: str) -> None:
    with pytest.raises(RuleError):
        parse_rules(bad)


class FakeMetrics:
    """A step's metrics as fixed answers: ``now`` for instant queries, ``history`` for ranges."""

    def __init__(self, now: list[float], history: dict[Labels, list[tuple[float, float]]]) -> None:
        self.now = now
        self.history = history
        self.asked: list[str] = []

    @property
    def range_s(self) -> float:
        return 10.0

    def query(self, expr: str) -> QueryResult:
        self.asked.append(expr)
        data = {
            "resultType": "vector",
            "result": [
                {"metric": {"i": str(i)}, "value": [0, str(v)]} for i, v in enumerate(self.now)
            ],
        }
        return result_from_api(data)

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        return self.history


def test_an_alert_fires_when_its_series_held_for_the_whole_for() -> None:
    rule = AlertRule("Burst", "x > 1", for_s=3.0)
    held = FakeMetrics([2.0], {(("i", "0"),): [(t, 2.0) for t in range(4)]})
    assert firing(rule, held) == (True, 1)
    pending = FakeMetrics([2.0], {(("i", "0"),): [(t, 2.0) for t in range(2, 4)]})
    assert firing(rule, pending) == (False, 1)
    resolved = FakeMetrics([], {})
    assert firing(rule, resolved) == (False, 0)
    assert firing(AlertRule("Now", "vector(1)"), FakeMetrics([1.0], {})) == (True, 1)


def test_promql_and_alert_expectations_are_graded_on_the_steps_metrics() -> None:
    share = Expectation(promql="sum(x)", between=(0.4, 0.6))
    assert evaluate(share, [record()], 10.0, FakeMetrics([0.5], {})).verdict is Verdict.PASS
    assert evaluate(share, [record()], 10.0, FakeMetrics([0.9], {})).verdict is Verdict.FAIL
    two = FakeMetrics([0.5, 0.5], {})
    assert evaluate(share, [record()], 10.0, two).verdict is Verdict.NO_DATA
    assert evaluate(share, [record()], 10.0, None).verdict is Verdict.NO_DATA
    rules = (AlertRule("Now", "vector(1)"),)
    fires = Expectation(alert="Now", equals=1.0)
    assert evaluate(fires, [], 10.0, FakeMetrics([1.0], {}), rules).verdict is Verdict.PASS
    assert evaluate(fires, [], 10.0, FakeMetrics([], {}), rules).value == 0.0


def test_a_refused_query_has_no_data() -> None:
    class Refusing(FakeMetrics):
        def query(self, expr: str) -> QueryResult:
            raise QueryError("parse error")

    exp = Expectation(promql="sum(", at_least=0.0)
    assert evaluate(exp, [], 1.0, Refusing([], {})).verdict is Verdict.NO_DATA


def test_describe_shows_the_query_on_one_line() -> None:
    exp = Expectation(promql="sum(\n  rate(x[$__range])\n)", at_most=3.0)
    assert exp.describe() == "promql(sum( rate(x[$__range]) )) <= 3"
    assert Expectation(alert="Burst", equals=1.0).describe() == "alert(Burst) = 1"


@pytest.mark.parametrize(
    ("expr", "families"),
    [
        ('sum(rate(istio_requests_total{response_code=~"5.."}[1m]))', {"istio_requests_total"}),
        (
            'histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket{path=~"/a{2}"}[1m])))',
            {"istio_request_duration_milliseconds"},
        ),
        (
            "istio_request_bytes_sum / istio_request_bytes_count + istio_tcp_sent_bytes_total",
            {"istio_request_bytes", "istio_tcp_sent_bytes_total"},
        ),
        ('count({job="istio-proxy"})', None),  # a selector without a metric name
        ('sum by (le) ({__name__=~"istio_.*_bucket"})', None),
        ("vector(1)", None),  # names no Istio metric: not narrowed
        ("istio_requests_totally", None),  # a longer name is another metric
    ],
)
def test_the_families_a_query_reads(expr: str, families: set[str] | None) -> None:
    assert families_read(expr) == (None if families is None else frozenset(families))


def test_an_alert_over_a_recorded_series_uses_the_recording_rules_expression() -> None:
    """Recording rules are how real rule files factor a ratio; an alert that names a recorded
    series is graded on that series' expression (chained recordings too), since a TSDB built
    after the run never evaluated the recording rule."""
    text = """
groups:
- name: g
  rules:
  - record: svc:requests:rate10s
    expr: sum(rate(istio_requests_total[10s]))
  - record: svc:errors:ratio
    expr: sum(rate(istio_requests_total{response_code=~"5.."}[10s])) / svc:requests:rate10s
  - alert: Burst
    expr: svc:errors:ratio > 0.1
    for: 2s
"""
    (rule,) = parse_rules(text)
    assert rule.expr == (
        '(sum(rate(istio_requests_total{response_code=~"5.."}[10s])) / '
        "(sum(rate(istio_requests_total[10s])))) > 0.1"
    )


def test_a_recorded_series_with_a_selector_is_refused() -> None:
    """``recorded{label="x"}`` or ``recorded[1m]`` would need the rule's history: a RuleError
    that says so, not a silently wrong alert."""
    text = """
groups:
- name: g
  rules:
  - {record: "r:x", expr: "sum(up)"}
  - {alert: A, expr: 'r:x{job="a"} > 1'}
"""
    with pytest.raises(RuleError, match="selector or range"):
        parse_rules(text)
