"""Dashboard panels: Grafana's dashboard model read for its PromQL, and ``panel:`` expectations
graded against the truth measured from the records."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from mesh.checks import Verdict, evaluate
from mesh.lesson import Expectation, PanelSelector, Selector
from mesh.model import FrozenMap
from mesh.observe.panels import DashboardError, Panel, panel_query, parse_dashboard
from mesh.observe.query import QueryResult, Sample
from tests.fakes import record

GRAFANA_EXPORT = """{"dashboard": {"title": "t", "panels": [
  {"type": "row", "title": "Errors", "panels": [
    {"type": "timeseries", "title": "Error ratio", "targets": [{"refId": "A", "expr": "errors"}]}]},
  {"type": "timeseries", "title": "p99", "targets": [{"refId": "A", "expr": ""}, {"expr": "q[$__rate_interval]"}]}
]}}"""


def test_a_grafana_export_loads_with_rows_flattened_and_the_first_query_kept() -> None:
    panels = parse_dashboard(GRAFANA_EXPORT, "d.json")
    assert panels == (
        Panel("Error ratio", "errors", "d.json"),
        Panel("p99", "q[$__rate_interval]", "d.json"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("panels: [{title: a, targets: [{expr: ''}]}]", 'panel "a" has no query'),
        ("panels: [{targets: [{expr: up}]}]", "the panel has no title"),
        ("title: no panels", "a dashboard is a mapping with a list of panels"),
        (
            "panels: [{title: a, targets: [{expr: x}]}, {title: a, targets: [{expr: y}]}]",
            "two panels are titled a",
        ),
    ],
)
def test_a_dashboard_without_usable_panels_is_refused_with_the_reason(
    text: str, message: str
) -> None:
    with pytest.raises(DashboardError, match=message):
        parse_dashboard(text)


def test_grafanas_interval_variables_stand_for_the_step() -> None:
    assert panel_query("rate(x[$__rate_interval]) + rate(y[$__interval])") == (
        "rate(x[$__range]) + rate(y[$__range])"
    )


class _Metrics:
    """A step's metrics that answer every query with the same samples."""

    range_s = 10.0

    def __init__(self, *samples: Sample) -> None:
        self.samples = samples
        self.asked: list[str] = []

    def query(self, expr: str) -> QueryResult:
        self.asked.append(expr)
        return QueryResult("vector", self.samples, {})

    def query_range(self, expr: str, span_s: float, step_s: float) -> dict[object, object]:
        raise NotImplementedError


def _v(version: str, value: float) -> Sample:
    return Sample((("destination_version", version),), value)


def test_a_panel_passes_when_it_shows_the_truth_of_the_records() -> None:
    """Four requests, one a 500: the truth is 0.25. The panel's v1 line is compared with it;
    a panel without that line, or with several matching lines, is no data, never a pass."""
    records = [record(start=float(i), code=500 if i == 0 else 200) for i in range(4)]
    panel = PanelSelector(
        title="errors",
        series=FrozenMap({"destination_version": "v1"}),
        truth="rate",
        of=Selector(status_class="5xx"),
    )
    exp = Expectation(panel=panel, tolerance=0.05)
    panels = [Panel("Errors", "ratio[$__rate_interval]")]

    def grade(*samples: Sample) -> tuple[Verdict, float | None]:
        metrics = _Metrics(*samples)
        result = evaluate(exp, records, 4.0, metrics, panels=panels)  # type: ignore[arg-type]
        assert metrics.asked == ["ratio[$__range]"]
        return result.verdict, result.truth

    assert grade(_v("v1", 0.27), _v("v2", 0.9)) == (Verdict.PASS, 0.25)
    assert grade(_v("v1", 0.4)) == (Verdict.FAIL, 0.25)
    assert grade(Sample((), 0.25))[0] is Verdict.NO_DATA  # not split by version
    assert evaluate(exp, records, 4.0, None, panels=panels).verdict is Verdict.NO_DATA
    assert evaluate(exp, records, 4.0, _Metrics(_v("v1", 0.25))).verdict is Verdict.NO_DATA  # type: ignore[arg-type]


def test_a_quantile_panel_is_compared_within_a_ratio_of_the_truth() -> None:
    """A dashboard's quantile comes from Istio's histogram buckets, so the truth is what
    ``histogram_quantile`` makes of the records' durations (90 at 2 ms and 10 at 8 ms: exact p99
    8 ms, but 9.5 ms from the (5, 10] bucket); ``ratio`` widens the comparison in proportion to
    the truth; a median panel (3.2 ms from the buckets) falls outside it."""
    records = [
        replace(record(start=float(i)), duration_ms=2.0 if i < 90 else 8.0) for i in range(100)
    ]
    exp = Expectation(
        panel=PanelSelector(title="p99", truth="latency_p99_ms", of=Selector(), ratio=0.5)
    )
    panels = [Panel("p99", "q")]
    near = evaluate(exp, records, 1.0, _Metrics(Sample((), 9.5)), panels=panels)  # type: ignore[arg-type]
    median = evaluate(exp, records, 1.0, _Metrics(Sample((), 3.22)), panels=panels)  # type: ignore[arg-type]
    assert near.truth == pytest.approx(9.5) and near.verdict is Verdict.PASS
    assert median.verdict is Verdict.FAIL
    assert not math.isnan(median.value)
    assert 'panel("p99") ~ latency_p99_ms() +- 50%' in near.describe()
