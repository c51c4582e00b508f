"""``meshplay query`` and ``meshplay traces`` on the simulator: PromQL answered by a real
Prometheus over the run's TSDB (a table, or Prometheus' JSON), a refused query is a usage error,
and traces shown as waterfalls and exported as Zipkin v2 or OTLP JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.cli import main

LESSON = str(Path(__file__).resolve().parents[2] / "lessons" / "01-request-routing")
BY_VERSION = (
    "sum by (destination_version) (increase(istio_requests_total"
    '{reporter="source", destination_service_name="product"}[$__range]))'
)


@pytest.mark.prometheus
def test_query_answers_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", BY_VERSION, LESSON, "--step", "2"]) == 0
    out, err = capsys.readouterr()
    header, *rows = out.splitlines()
    assert header.split() == ["DESTINATION_VERSION", "VALUE"]
    values = {row.split()[0]: float(row.split()[1]) for row in rows}
    assert values["v1"] > 300 and values["v2"] == 0  # step 2 pins the catalog to v1
    # the window: 10 s of traffic, one more second when the last request ends after 10 s (the
    # seeded stream decides), and the sample after it
    assert "end of step 2" in err and ("$__range = 12s" in err or "$__range = 11s" in err)
    assert main(["query", BY_VERSION, LESSON, "--step", "2", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["step"] == 2 and doc["data"]["resultType"] == "vector"
    assert "[12s]" in doc["query"] or "[11s]" in doc["query"]


@pytest.mark.prometheus
def test_a_refused_query_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "sum(rate(x[", LESSON, "--step", "1"]) == 2
    assert "parse error" in capsys.readouterr().err


def test_query_without_a_lesson_needs_a_running_mesh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESHPLAY_STATE_DIR", str(tmp_path))
    assert main(["query", "up"]) == 2
    assert "meshplay up" in capsys.readouterr().err


def test_traces_show_waterfalls_and_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zipkin = tmp_path / "spans.json"
    assert (
        main(["traces", LESSON, "--step", "1", "--slowest", "2", "--export", "zipkin", str(zipkin)])
        == 0
    )
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    count = int(first.split()[0])
    assert first.endswith("0 with an error at the root") and count > 300
    assert out.count("<- slowest hop") == 2
    assert "self time of server spans per service" in out
    spans = json.loads(zipkin.read_text())
    assert len(spans) == 3 * count and {s["kind"] for s in spans} == {"CLIENT", "SERVER"}
    otlp = tmp_path / "otlp.json"
    assert main(["traces", LESSON, "--step", "1", "--export", "otlp", str(otlp)]) == 0
    resources = json.loads(otlp.read_text())["resourceSpans"]
    assert sum(len(r["scopeSpans"][0]["spans"]) for r in resources) == len(spans)
