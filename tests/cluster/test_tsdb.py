"""PromQL over a simulated run: its records become a real TSDB (promtool) served by a real
Prometheus, and queries answer what the records say, per step, in well under two seconds."""

from __future__ import annotations

from collections import Counter

import pytest

from cluster.tsdb import RecordedMetricsExecutor
from mesh.engine import run_lesson
from mesh.lesson import load_lesson
from mesh.records import Reporter
from mesh.runner import RunOptions
from sim.runner import SimExecutor

pytestmark = pytest.mark.prometheus

BY_VERSION = (
    "sum by (destination_version) (increase(istio_requests_total"
    '{reporter="source", destination_service_name="product"}[$__range]))'
)


def test_a_query_per_step_counts_exactly_that_steps_requests() -> None:
    lesson = load_lesson("lessons/01-request-routing")
    executor = RecordedMetricsExecutor(SimExecutor())
    run = run_lesson(executor, lesson, RunOptions(seed=1))
    try:
        # how fast the TSDB is built, Prometheus started and answering: a benchmark, not a
        # test (benchmarks/bench_observe.py --only tsdb); a busy machine must not fail CI
        answers = [executor.metrics_of(s.index).query(BY_VERSION) for s in run.steps]
    finally:
        executor.close()
    for step, answer in zip(run.steps, answers, strict=True):
        counted = Counter(
            r.destination_version
            for r in step.records
            if r.reporter is Reporter.SOURCE and r.destination_service_name == "product"
        )
        got = {v: n for v, n in answer.by("destination_version").items() if n}
        assert got == {v: float(n) for v, n in counted.items()}, f"step {step.index + 1}"
    assert executor.tsdb.client is None  # stopped with the executor


def test_the_tsdb_is_built_only_when_asked_and_rebuilt_after_new_steps() -> None:
    lesson = load_lesson("lessons/01-request-routing")
    executor = RecordedMetricsExecutor(SimExecutor())
    try:
        run_lesson(executor, lesson, RunOptions(seed=1, until_step=1))
        assert executor.tsdb.built_steps == -1  # no promql expectation: nothing built
        metrics = executor.step_metrics(0, 0.0, 10.0, 0.0)
        assert metrics is not None and metrics.range_s == 11.0
        total = metrics.query('sum(istio_requests_total{reporter="destination"})').single()
        assert total == sum(
            1 for s in executor.steps for r in s.records if r.reporter is Reporter.DESTINATION
        )
        assert executor.tsdb.built_steps == 1
        executor.driven.append(executor.driven[0])
        executor.metrics_of(0)
        assert executor.tsdb.built_steps == 2 and executor.tsdb.generation == 2
    finally:
        executor.close()


P90 = (
    "histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket"
    '{reporter="destination"}[$__range])))'
)


def test_a_tsdb_holds_the_families_queries_read_and_answers_as_a_full_one() -> None:
    """Only the families a query names are imported (a counter query does not wait for the
    histograms); a query of another family, or one that may read any, rebuilds with more; every
    answer equals the answer of a TSDB holding everything."""
    lesson = load_lesson("lessons/06-retries")
    full = RecordedMetricsExecutor(SimExecutor())
    lazy = RecordedMetricsExecutor(SimExecutor())
    run_lesson(full, lesson, RunOptions(seed=1))
    run_lesson(lazy, lesson, RunOptions(seed=1))
    try:
        last = full.driven[-1][0]
        whole = full.metrics_of(last)
        by_version = lazy.step_metrics(last, 0.0, 0.0, 0.0)
        assert by_version is not None
        assert by_version.query(BY_VERSION).by("destination_version") == whole.query(
            BY_VERSION.replace("$__range", f"{whole.range_s:g}s")
        ).by("destination_version")
        assert lazy.tsdb.families == frozenset({"istio_requests_total"})
        p90 = by_version.query(P90).single()
        assert lazy.tsdb.families == frozenset(
            {"istio_requests_total", "istio_request_duration_milliseconds"}
        )
        assert p90 == whole.query(P90.replace("$__range", f"{whole.range_s:g}s")).single()
        generation = lazy.tsdb.generation
        by_version.query(BY_VERSION)  # held: no rebuild
        assert lazy.tsdb.generation == generation
        anything = 'count({job="istio-proxy"})'
        assert by_version.query(anything).single() == whole.query(anything).single()
        assert lazy.tsdb.families is None  # a selector without a metric name: everything
    finally:
        full.close()
        lazy.close()
