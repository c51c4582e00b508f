"""Lessons on the local runner: every expectation graded from real Envoy access logs.

Lessons whose pending reason still holds are not run (each costs ~15 s of real traffic); a cheap
test checks instead that the reason still holds, so it fails, and reminds us to run the lesson,
as soon as the lesson changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.local import LocalRunner
from cluster.local.apps import ROOT
from mesh.lesson import find_lessons, load_lesson
from mesh.runner import Progress, RunOptions

pytestmark = pytest.mark.envoy

TIME_SCALE = float(os.environ.get("MESHPLAY_LOCAL_TIME_SCALE", "0.7"))
"""Traffic durations are shortened in CI (rates stay); 0.7 keeps every lesson's share bounds
above three standard errors. Set MESHPLAY_LOCAL_TIME_SCALE=1 for the lessons as written."""


def local_lessons() -> list[Path]:
    return [p for p in find_lessons(ROOT / "lessons") if "local" in load_lesson(p).spec.runners]


@pytest.mark.parametrize("folder", local_lessons(), ids=lambda p: p.name)
def test_lesson_meets_its_expectations_on_local(folder: Path, tmp_path: Path) -> None:
    lesson = load_lesson(folder)
    seen: list[Progress] = []
    runner = LocalRunner(tmp_path, time_scale=TIME_SCALE)
    run = runner.run(lesson, RunOptions(seed=1, on_progress=seen.append))
    report = "\n".join(c.describe() for s in run.steps for c in s.checks)
    assert run.passed, report
    assert len(run.steps) == len(lesson.steps)
    assert any(s.records for s in run.steps)  # a STRICT step may log nothing (TLS refused)
    assert not runner.rejections
    assert seen and seen[-1].fraction == 1.0
