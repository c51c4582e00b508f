"""The TUI on the real simulator: run lesson 01 and read its verdicts; keys during a long run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.tui.conftest import LESSONS
from tests.tui.pilot_helpers import key_latency, wait_loaded, wait_run
from tests.tui.test_pilot import column
from tui.app import MeshplayApp

sim = pytest.importorskip("sim")


def big_lesson_root(tmp: Path, rate_rps: int) -> Path:
    """A copy of lesson 01 (and its app) whose traffic runs at ``rate_rps`` for its 10 s."""
    root = tmp / "lessons"
    shutil.copytree(LESSONS / "apps", root / "apps")
    shutil.copytree(LESSONS / "01-request-routing", root / "01-request-routing")
    spec = root / "01-request-routing" / "lesson.yaml"
    text = spec.read_text(encoding="utf-8")
    assert "rate_rps: 40\n" in text
    spec.write_text(text.replace("rate_rps: 40\n", f"rate_rps: {rate_rps}\n"), encoding="utf-8")
    return root


async def test_run_lesson_on_sim_and_see_the_verdicts(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app({"sim": sim.SimRunner})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        status = app.query_one("#run-status").content
        assert "PASSED: 7/7 expectations met on sim" in str(status)
        verdicts = column(app.query_one("#checks", DataTable), "VERDICT")
        assert verdicts == ["✔ pass"] * 3


async def test_keys_pressed_during_a_6000_request_simulation_are_handled_before_it_ends(
    make_app: Callable[..., MeshplayApp], tmp_path: Path
) -> None:
    root = big_lesson_root(tmp_path, rate_rps=200)  # 3 steps x 10 s x 200/s = 6,000 requests
    app = make_app({"sim": sim.SimRunner}, root=root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter")
        await key_latency(app, "r", lambda: app.run_pane.running)
        seen = []
        for key, tab in (("3", "topology"), ("5", "traces"), ("2", "run")):
            done = app.handled + 1  # the view switched and refreshed
            latency = await key_latency(app, key, lambda done=done: app.handled >= done)
            assert app.active_tab == tab
            seen.append((key, latency, app.run_pane.running))
        await key_latency(app, "left_square_bracket", lambda: not app.run_pane.follow)
        still_running = app.run_pane.running
        await wait_run(pilot)
        live = app.run_pane.live
        assert live is not None and live.result is not None
        outside = [
            r for r in live.result.records
            if r.reporter.value == "destination" and r.source_workload == "unknown"
        ]  # fmt: skip
        assert len(outside) >= 5_700  # about 6,000 requests entered the mesh
    assert all(running for _, _, running in seen), f"keys handled after the run ended: {seen}"
    assert still_running
    # benchmarks/bench_tui.py measures the latency; here only a generous bound for shared CI
    assert max(latency for _, latency, _ in seen) < 2.0, seen
