"""The kube executor grades ``promql:`` and ``alert:`` expectations by asking the cluster's
Prometheus (Service istio-system/prometheus, through the API server's service proxy): here a
fake Prometheus HTTP API behind the in-memory Kubernetes API, which records every question.

What this proves: each step's questions reach Prometheus after the step's traffic plus the
scrape wait, at the end of the step's window, with ``$__range`` standing for that window; the
answers grade the expectations (a value in bounds passes, out of bounds fails); alert rules are
judged from range queries; without a Prometheus the expectations have no data and the run says
why; a dry run writes the questions into its plan. What it cannot prove: what a real cluster's
Prometheus answers (tests/cluster/kube/test_e2e.py on a real cluster).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import Timeouts
from cluster.kube.runner import KubeRunner, dry_run_plan
from mesh.checks import Verdict
from mesh.lesson import Lesson, load_lesson
from mesh.runner import RunOptions
from tests.cluster.kube.dataplane import SimDataPlane
from tests.cluster.kube.fake_api import FakeKube, Obj

ROOT = Path(__file__).resolve().parents[3]
TIMEOUTS = Timeouts(
    rollout_s=3, converge_s=3, generator_start_s=5, settle_s=0.05, cleanup_s=3, poll_s=0.05,
    scrape_s=0.3,
)  # fmt: skip
PROMETHEUS_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "prometheus", "namespace": "istio-system"},
    "spec": {"ports": [{"port": 9090}]},
}


def _on_kube(tmp_path: Path, name: str) -> Lesson:
    """A copy of a lesson that lists the kube runner."""
    root = tmp_path / "lessons"
    shutil.copytree(ROOT / "lessons" / "apps", root / "apps", dirs_exist_ok=True)
    shutil.copytree(ROOT / "lessons" / name, root / name)
    monitoring = tmp_path / "cluster" / "monitoring"  # lesson 19's rules name the golden ones
    shutil.copytree(ROOT / "cluster" / "monitoring", monitoring, dirs_exist_ok=True)
    spec = root / name / "lesson.yaml"
    text = re.sub(r"^runners: \[sim, local\].*$", "runners: [sim, local, kube]",
                  spec.read_text(), flags=re.M)  # fmt: skip
    spec.write_text(text, encoding="utf-8")
    return load_lesson(root / name)


@pytest.fixture
def ready(fake: FakeKube, api: KubeApi) -> FakeKube:
    """The fake cluster after ``meshplay cluster up``."""
    app = load_lesson(ROOT / "lessons" / "01-request-routing").app
    admin.up(api, app, "shop", report=lambda _t: None, timeouts=TIMEOUTS)
    return fake


class FakePrometheus:
    """Prometheus' HTTP API as the tests script it: ``value(promql)`` answers instant queries
    with one sample; range queries answer ``range_value`` at every step; every question is kept
    with the time it arrived on the cluster's ``clock``."""

    def __init__(
        self,
        value: Any,
        range_value: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.value = value
        self.clock = clock
        self.range_value = range_value
        self.asked: list[tuple[str, dict[str, str], float]] = []

    def __call__(self, path: str, query: dict[str, list[str]]) -> Obj:
        params = {k: v[0] for k, v in query.items()}
        self.asked.append((path, params, self.clock()))
        if path == "/api/v1/query_range":
            start, end, step = (float(params[k]) for k in ("start", "end", "step"))
            points = []
            t = start
            while t <= end + 1e-9 and self.range_value is not None:
                points.append([t, str(self.range_value)])
                t += step
            result = [{"metric": {"alertname": "x"}, "values": points}] if points else []
            return {"status": "success", "data": {"resultType": "matrix", "result": result}}
        value = self.value(params["query"])
        result = [] if value is None else [{"metric": {}, "value": [params["time"], str(value)]}]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _red(promql: str) -> float:
    """Lesson 17's first step as a healthy service answers it."""
    if "histogram_quantile" in promql:
        return 12.5
    if 'response_code=~"5.."' in promql:
        return 0.0
    return 30.0


def test_promql_expectations_are_graded_by_the_clusters_prometheus(
    ready: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    lesson = _on_kube(tmp_path, "17-observability-basics")
    ready.data_plane = SimDataPlane(lesson)
    ready.put(PROMETHEUS_SERVICE)
    prometheus = FakePrometheus(_red, clock=ready.clock.time)
    ready.prometheus_http = prometheus
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=TIMEOUTS,
                        report=lambda _t: None)  # fmt: skip
    run = runner.run(lesson, RunOptions(until_step=1))
    (step,) = run.steps
    promql = [c for c in step.checks if c.expectation.promql]
    assert len(promql) == 3 and all(c.verdict is Verdict.PASS for c in promql), [
        c.describe() for c in promql
    ]
    assert [c.value for c in promql] == [30.0, 0.0, 12.5]
    cross_check = "sum by (source_app, destination_service_name)"  # after the run, reported
    graded = [
        (p, q, t)
        for p, q, t in prometheus.asked
        if p == "/api/v1/query" and not q["query"].startswith(cross_check)
    ]
    assert len(graded) == 3
    for _path, params, arrived in graded:
        assert "$__range" not in params["query"]
        window = {
            int(n) / (1000 if unit == "ms" else 1)
            for n, unit in re.findall(r"\[(\d+)(ms|s)\]", params["query"])
        }
        assert len(window) == 1  # one window for every selector
        at = float(params["time"])
        # evaluated at the window's end, asked once Prometheus has scraped it
        assert at + TIMEOUTS.scrape_s <= arrived + 0.05
        # the window: the step's graded traffic and a second after it, as on sim
        assert window.pop() == pytest.approx(
            step.duration_s - lesson.spec.traffic.warmup_s + 1.0, abs=0.5
        )


def test_an_out_of_bounds_answer_fails(ready: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    lesson = _on_kube(tmp_path, "17-observability-basics")
    ready.data_plane = SimDataPlane(lesson)
    ready.put(PROMETHEUS_SERVICE)
    ready.prometheus_http = FakePrometheus(
        lambda q: 0.9 if "5.." in q else 30.0, clock=ready.clock.time
    )
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=TIMEOUTS,
                        report=lambda _t: None)  # fmt: skip
    (step,) = runner.run(lesson, RunOptions(until_step=1)).steps
    verdicts = [c.verdict for c in step.checks if c.expectation.promql]
    assert verdicts == [Verdict.PASS, Verdict.FAIL, Verdict.PASS]  # the error ratio 0.9 is not 0


def test_without_a_prometheus_promql_has_no_data_and_the_run_says_why(
    ready: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    lesson = _on_kube(tmp_path, "17-observability-basics")
    ready.data_plane = SimDataPlane(lesson)
    reports: list[str] = []
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=TIMEOUTS,
                        report=reports.append)  # fmt: skip
    (step,) = runner.run(lesson, RunOptions(until_step=1)).steps
    promql = [c for c in step.checks if c.expectation.promql]
    assert promql and all(c.verdict is Verdict.NO_DATA for c in promql)
    assert any("no Prometheus to grade promql/alert expectations" in r for r in reports)


def test_a_dry_run_plan_lists_the_questions_for_prometheus(tmp_path: Path) -> None:
    lesson = _on_kube(tmp_path, "17-observability-basics")
    plan = dry_run_plan(lesson, RunOptions(until_step=1))
    assert "grade its promql/alert expectations" in plan
    assert (
        "ask the cluster's Prometheus (istio-system/prometheus) at the end of step 1: "
        'sum(rate(istio_requests_total{reporter="destination", '
        'destination_service_name="api-gateway"}[$__range]))'
    ) in plan


@pytest.mark.parametrize(("series", "verdict"), [(None, Verdict.PASS), (0.5, Verdict.FAIL)])
def test_an_alert_is_judged_from_range_queries_over_the_step(
    ready: FakeKube, kubeconfig: Path, tmp_path: Path, series: float | None, verdict: Verdict
) -> None:
    """Lesson 19's first step expects no alert: the rule's expression returning nothing over
    the step passes; a series at every evaluation for the rule's ``for`` fires it (fails)."""
    lesson = _on_kube(tmp_path, "19-alerting")
    ready.data_plane = SimDataPlane(lesson)
    ready.put(PROMETHEUS_SERVICE)
    prometheus = FakePrometheus(lambda _q: series, range_value=series, clock=ready.clock.time)
    ready.prometheus_http = prometheus
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=TIMEOUTS,
                        report=lambda _t: None)  # fmt: skip
    (step,) = runner.run(lesson, RunOptions(until_step=1)).steps
    alerts = [c for c in step.checks if c.expectation.alert]
    assert len(alerts) == 2 and all(c.verdict is verdict for c in alerts)
    ranges = [q for p, q, _ in prometheus.asked if p == "/api/v1/query_range"]
    # a rule whose expression returns nothing now does not fire; one that does is asked
    # whether it held over its ``for``
    assert len(ranges) == (0 if series is None else 2)
    assert all(float(q["step"]) == 1.0 for q in ranges)
