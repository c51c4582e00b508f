"""The monitoring manifests: the golden-signal alerting rules pass ``promtool check rules`` and
their unit tests (``promtool test rules``: they fire on an error burst, a slow service and
circuit-breaker overflow, stay quiet before, and resolve after); meshplay's own reading of them
agrees; every query of the Grafana dashboard is valid PromQL and answers over a simulated run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cluster.prometheus import find_binary
from cluster.tsdb import RecordedMetricsExecutor
from mesh.engine import run_lesson
from mesh.lesson import load_lesson
from mesh.observe.rules import parse_rules
from mesh.runner import RunOptions
from sim.runner import SimExecutor

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "cluster" / "monitoring" / "prometheus" / "golden-signals.rules.yaml"
TESTS = ROOT / "cluster" / "monitoring" / "prometheus" / "golden-signals.test.yaml"
DASHBOARD = ROOT / "cluster" / "monitoring" / "grafana" / "istio-golden-signals.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_binary("promtool")
    assert binary is not None, "promtool is missing: bin/setup --test installs prometheus"
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULES.parent,
    )


def test_the_rules_load_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_a_broken_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    wrong = TESTS.read_text().replace("eval_time: 45s", "eval_time: 31s", 1)
    (tmp_path / "golden-signals.rules.yaml").write_text(RULES.read_text())
    (tmp_path / "t.yaml").write_text(wrong)
    failed = subprocess.run(
        [str(find_binary("promtool")), "test", "rules", "t.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert failed.returncode != 0 and "FAILED" in failed.stdout + failed.stderr


def test_meshplay_reads_the_same_alerts() -> None:
    rules = {r.name: r for r in parse_rules(RULES.read_text())}
    assert set(rules) == {
        "MeshServiceHighErrorRate",
        "MeshServiceHighLatencyP99",
        "MeshCircuitBreakerOverflow",
    }
    assert rules["MeshServiceHighErrorRate"].for_s == 5.0
    assert rules["MeshCircuitBreakerOverflow"].for_s == 0.0


def test_every_dashboard_query_answers_over_a_simulated_run() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 6
    executor = RecordedMetricsExecutor(SimExecutor())
    run_lesson(
        executor,
        load_lesson(ROOT / "lessons" / "01-request-routing"),
        RunOptions(seed=1, until_step=1),
    )
    try:
        metrics = executor.metrics_of(0)
        answered = 0
        for expr in exprs:
            text = (
                expr.replace("$__rate_interval", "10s")
                .replace('=~"$namespace"', '=~".*"')
                .replace('=~"$service"', '=~".*"')
            )
            result = metrics.query(text)  # raises on invalid PromQL
            answered += bool(result.samples)
        assert answered >= 4  # rate, errors (0 %), latency quantiles, split
    finally:
        executor.close()
