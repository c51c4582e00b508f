"""A run's records on a time axis: steps end to end on whole seconds, counters sampled every
second as they complete, a zero before each series' first count, OpenMetrics that ends in EOF."""

from __future__ import annotations

from dataclasses import replace

from mesh.observe.openmetrics import EPOCH, GAP_S, StepData, lay_out, openmetrics_text
from tests.fakes import record


def test_steps_are_laid_end_to_end_on_whole_seconds() -> None:
    steps = [
        StepData(0, (record(start=9.7),), duration_s=10.0),
        StepData(1, (), duration_s=4.2, warmup_s=1.5),
    ]
    first, second = lay_out(steps)
    assert first.origin == EPOCH + 1
    assert first.start == first.origin
    # the last request completes at 9.702 s: the step ends on the next whole second, plus one
    assert first.end == first.origin + 10 + 1
    assert second.origin == first.end + GAP_S
    assert second.start == second.origin + 2  # the warm-up rounded up to a sample time
    assert second.range_s == 5 + 1 - 2
    assert all(float(w.end).is_integer() and float(w.start).is_integer() for w in (first, second))


def _points(text: str, prefix: str) -> list[tuple[float, float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(prefix):
            _, value, stamp = line.rsplit(" ", 2)
            out.append((float(stamp), float(value)))
    return out


def test_counters_grow_as_requests_complete_with_a_zero_before_the_first() -> None:
    records = (record(start=0.5), record(start=2.2), replace(record(start=2.3), duration_ms=900))
    text = openmetrics_text([StepData(0, records, duration_s=4.0)])
    assert text.endswith("# EOF\n")
    points = _points(text, "istio_requests_total{")
    origin = EPOCH + 1
    assert points[0] == (origin, 0.0)  # the zero before the request completing at 0.502 s
    assert (origin + 1, 1.0) in points
    assert (origin + 3, 2.0) in points  # 2.302 s done; 3.2 s not yet
    assert points[-1] == (origin + 5, 3.0)
    times = [t for t, _ in points]
    assert times == sorted(times)


def test_series_are_per_reporting_workload_with_target_labels() -> None:
    text = openmetrics_text([StepData(0, (record(), record(client="frontend")), 2.0)])
    lines = [line for line in text.splitlines() if line.startswith("istio_requests_total{")]
    assert any(
        'instance="api-gateway-v1"' in line and 'job="istio-proxy"' in line for line in lines
    )
    assert any('workload="frontend-v1"' in line for line in lines)


def test_families_are_contiguous_and_typed() -> None:
    text = openmetrics_text([StepData(0, (record(), record(version="v2")), 2.0)])
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == [
        "istio_requests_total",
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ]
    assert len(names) == len(set(names))


def test_only_some_families_gives_exactly_their_lines_of_the_whole_text() -> None:
    records = (record(start=0.5), record(version="v2", start=1.2))
    whole = openmetrics_text([StepData(0, records, 3.0)])
    only = openmetrics_text([StepData(0, records, 3.0)], only={"istio_requests_total"})
    wanted = [line for line in whole.splitlines() if "istio_requests_total" in line]
    assert only.splitlines() == [*wanted, "# EOF"]
