"""``compare``'s summary counts an ``info`` row (latency, small or one-sided samples) as info,
never as a metric within tolerance."""

from __future__ import annotations

from pathlib import Path

from mesh.compare import AGREE, DIFFER, INFO, compare_runs, format_comparison
from mesh.lesson import load_lesson
from mesh.runner import RunOptions
from tests.tui.fakes import FakeRunner

ROOT = Path(__file__).resolve().parents[2]


def test_the_summary_counts_info_rows_as_info() -> None:
    lesson = load_lesson(ROOT / "lessons" / "01-request-routing")
    sim = FakeRunner("sim").run(lesson, RunOptions(seed=1))
    local = FakeRunner("local", latency_ms=12.0).run(lesson, RunOptions(seed=1))  # 4x slower
    cmp = compare_runs(sim, local)
    verdicts = [r.verdict for r in cmp.rows]
    assert verdicts.count(INFO) > 0 and verdicts.count(DIFFER) == 0
    last = format_comparison(cmp).splitlines()[-1]
    assert last == (
        f"AGREE: {verdicts.count(AGREE)} agree, {verdicts.count(INFO)} info (not judged), "
        f"0 differ ({len(cmp.rows)} rows)"
    )
