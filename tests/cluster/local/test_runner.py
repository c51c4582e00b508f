"""Lessons on the local runner: every expectation graded from real Envoy access logs, and the
simulator's run of the same lesson agreeing with it (``mesh.compare``: traffic shares, success
rates and flag mix within tolerance; latency is information only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.monitored import MonitoredLocalRunner
from mesh.compare import Comparison, Tolerances, compare_runs, format_comparison
from mesh.engine import LessonRunner
from mesh.lesson import find_lessons, load_lesson
from mesh.runner import Progress, RunOptions
from playground.observed import ObservedSimRunner
from playground.pool_calibration import calibrate_from_local

pytestmark = pytest.mark.envoy

TIME_SCALE = float(os.environ.get("MESHPLAY_LOCAL_TIME_SCALE", "0.7"))
"""Traffic durations are shortened in CI (rates stay); 0.7 keeps every lesson's share bounds
above three standard errors. Set MESHPLAY_LOCAL_TIME_SCALE=1 for the lessons as written."""


CI_TOLERANCES = Tolerances(sigmas=4.5)
"""The suite compares ~100 proportions that are not degenerate (14 lessons, several steps and
edges each) against one random local run: at compare's 3 standard errors (right for one
lesson at the command line) about one CI run in seven would fail by chance somewhere. 4.5
standard errors keeps the whole family's chance failure well under 1 %, and still catches a
simulator that is off by ~0.1-0.2 on a share of a few hundred requests."""

COMPARED = frozenset({"share", "success", "flag"})
"""The metrics the simulator must reproduce; latency rows are a model against a 2-core machine."""

SIM_DIFFERS: dict[str, str] = {}
"""Lessons whose sim run genuinely differs from real Envoy (a simulator bug being worked on):
lesson folder -> the metric and the numbers. The comparison must still differ (so the entry is
removed once the simulator is fixed)."""


RACES: dict[str, tuple[frozenset[int], str]] = {}
"""Steps (0-based) whose success and response-flag shares are a race whose real outcome depends
on the machine in a way the simulator cannot be calibrated for: compared and printed, not
asserted (the lesson's own expectations are graded on local all the same)."""

POOL_CALIBRATED = frozenset({"bookinfo-05-breakers"})
"""Lessons whose closed-loop clients race one connection and one pending slot
(``maxRequestsPerConnection: 1``): real Envoy's 503 ``UO`` share depends on the machine's speed and
load (two clients: 0.15-0.55 measured here), so the simulator they are compared with runs with the
race's delays measured on this local run, as ``meshplay compare`` does
(``playground.pool_calibration``, docs/simulator.md, issue 13 item 4), and then must agree like
any other lesson. Every lesson goes through the same calibration; these must get a timing."""


def local_lessons() -> list[Path]:
    return [p for p in find_lessons(ROOT / "lessons") if "local" in load_lesson(p).spec.runners]


def differing(cmp: Comparison, races: frozenset[int] = frozenset()) -> list[str]:
    """The share/success/flag rows that differ beyond tolerance, with their numbers (success and
    flag rows of the ``races`` steps left out)."""
    return [
        f"step {r.step + 1} {r.metric} {r.subject}: {cmp.runner_a} {r.a:.3f} (n={r.n_a}) vs "
        f"{cmp.runner_b} {r.b:.3f} (n={r.n_b}), tolerance {r.tolerance:.3f}"
        for r in cmp.differing
        if r.metric in COMPARED and not (r.step in races and r.metric in {"success", "flag"})
    ]


@pytest.mark.parametrize("folder", local_lessons(), ids=lambda p: p.name)
def test_lesson_meets_its_expectations_on_local(folder: Path, tmp_path: Path) -> None:
    lesson = load_lesson(folder)
    seen: list[Progress] = []
    # the local runner as the CLI runs it: Prometheus next to the mesh when the lesson grades
    # promql:/alert: expectations
    runner = MonitoredLocalRunner(tmp_path, time_scale=TIME_SCALE)
    run = runner.run(lesson, RunOptions(seed=1, on_progress=seen.append))
    report = "\n".join(c.describe() for s in run.steps for c in s.checks)
    assert run.passed, report
    assert len(run.steps) == len(lesson.steps)
    assert any(s.records for s in run.steps)  # a STRICT step may log nothing (TLS refused)
    assert not runner.rejections
    assert seen and seen[-1].fraction == 1.0
    sim_runner: LessonRunner = ObservedSimRunner()
    simulated = lesson
    calibration = calibrate_from_local(lesson, run, tmp_path)
    if calibration is not None:
        print(f"pool calibration: {calibration.describe()}")
        print(f"measured: {calibration.samples.describe()}")
        if calibration.timing is not None:
            sim_runner = ObservedSimRunner(calibration.timing, calibration.step_timing)
            simulated = calibration.lesson
    if folder.name in POOL_CALIBRATED:
        assert calibration is not None and calibration.timing is not None
    sim_run = sim_runner.run(simulated, RunOptions(seed=1))
    comparison = compare_runs(sim_run, run, CI_TOLERANCES)
    races, why = RACES.get(folder.name, (frozenset(), ""))
    differs = differing(comparison, races)
    if races:
        raced = [d for d in differing(comparison) if d not in differs]
        print(f"not asserted ({why}):", *raced, sep="\n  ")
    known = SIM_DIFFERS.get(folder.name)
    if known is None:
        assert not differs, "\n".join(differs) + "\n\n" + format_comparison(comparison)
    else:
        assert differs, f"sim now agrees with local: remove {folder.name} from SIM_DIFFERS"
        pytest.xfail(f"{known}; this run: " + "; ".join(differs))
