"""The exercise screen in the TUI: the learner's whole flow with Textual's Pilot - read the goal,
check a wrong answer (hidden checks), ask for hints, see what failed, fix it, check again."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Markdown, Static

from mesh.exercise import EXERCISES, load_exercise, read_progress, start_workspace
from tests.tui.pilot_helpers import wait_loaded
from tui.app import MeshplayApp
from tui.exercise_view import ExerciseScreen

sim = pytest.importorskip("sim")

ANSWERS = Path(__file__).resolve().parents[1] / "playground" / "testdata" / "exercises"


def _text(app: MeshplayApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def _wait_checked(pilot: Pilot[None], timeout_s: float = 60.0) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ExerciseScreen)
    await pilot.pause()
    deadline = time.monotonic() + timeout_s
    while screen.checking:
        assert time.monotonic() < deadline, "check did not finish"
        await pilot.pause(0.05)
    await pilot.pause()


async def test_the_learner_checks_gets_hints_and_passes_in_the_tui(
    tmp_path: Path, make_app: Callable[..., MeshplayApp]
) -> None:
    exercise = load_exercise(EXERCISES / "pin-product-v1")
    ws = tmp_path / "ws"
    start_workspace(exercise, ws)
    shutil.copytree(ANSWERS / "pin-product-v1" / "bad-only-api-gateway", ws, dirs_exist_ok=True)
    app = make_app({"sim": sim.SimRunner}, exercise=(exercise, ws))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        assert isinstance(app.screen, ExerciseScreen)
        goal = app.screen.query_one("#ex-goal", Markdown)
        assert "Pin product to v1 for every caller" in goal.source

        await pilot.press("c")
        await _wait_checked(pilot)
        report = _text(app, "#ex-report")
        assert "step 2/2  order reserves stock on v1 only  FAIL" in report
        assert "a hidden check" in report and "share(order->product" not in report
        assert "not yet" in _text(app, "#ex-status")

        for _ in exercise.spec.hints:
            await pilot.press("h")
        await pilot.pause()
        assert f"hint {len(exercise.spec.hints)}/{len(exercise.spec.hints)}" in _text(
            app, "#ex-report"
        )
        await pilot.press("c")
        await _wait_checked(pilot)
        assert "FAIL  share(order->product v1) >= 0.999" in _text(app, "#ex-report")

        shutil.rmtree(ws / "routing")
        shutil.copytree(ANSWERS / "pin-product-v1" / "good-fqdn-stable" / "routing", ws / "routing")
        await pilot.press("c")
        await _wait_checked(pilot)
        assert "PASSED: all 2 steps" in _text(app, "#ex-report")
        assert "PASSED on sim" in _text(app, "#ex-status")
        progress = read_progress(ws)
        assert progress is not None and progress.passed == ("sim",)

        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ExerciseScreen)


async def test_yaml_that_does_not_load_runs_nothing_and_says_where(
    tmp_path: Path, make_app: Callable[..., MeshplayApp]
) -> None:
    exercise = load_exercise(EXERCISES / "pin-product-v1")
    ws = tmp_path / "ws"
    start_workspace(exercise, ws)
    (ws / "routing" / "vs.yaml").write_text("kind: VirtualService\nspec: [\n")
    app = make_app({"sim": sim.SimRunner}, exercise=(exercise, ws))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("c")
        await _wait_checked(pilot)
        assert "did not load" in _text(app, "#ex-status")
        assert f"{ws / 'routing' / 'vs.yaml'}:" in _text(app, "#ex-report")


async def test_the_path_in_the_lessons_tree_opens_an_exercise(
    data_dir: Path, make_app: Callable[..., MeshplayApp]
) -> None:
    """With the repository's lessons the tree shows the path's phases; choosing an exercise
    starts its workspace in the data folder and opens the exercise screen; passing it marks it."""
    from textual.widgets import Tree

    from tests.tui.conftest import LESSONS

    app = make_app({"sim": sim.SimRunner}, root=LESSONS)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        tree = app.query_one("#lesson-tree", Tree)
        phases = [str(node.label) for node in tree.root.children]
        assert phases[:4] == ["Foundation", "Traffic management", "Security", "Advanced"]
        foundation = [str(n.label) for n in tree.root.children[0].children]
        assert any("✎ pin-product-v1" in label for label in foundation)
        node = next(n for n in tree.root.children[0].children if n.data == "ex:pin-product-v1")
        tree.select_node(node)
        await pilot.pause()
        assert isinstance(app.screen, ExerciseScreen)
        ws = data_dir / "exercises" / "pin-product-v1"
        assert (ws / "GOAL.md").is_file()
        shutil.copytree(ANSWERS / "pin-product-v1" / "good-fqdn-stable" / "routing", ws / "routing",
                        dirs_exist_ok=True)  # fmt: skip
        await pilot.press("c")
        await _wait_checked(pilot)
        assert "PASSED on sim" in _text(app, "#ex-status")
        await pilot.press("escape")
        await pilot.pause()
        tree = app.query_one("#lesson-tree", Tree)
        node = next(n for n in tree.root.children[0].children if n.data == "ex:pin-product-v1")
        assert "(sim)" in str(node.label)


async def test_the_whole_flow_with_the_solution_in_the_tui(
    tmp_path: Path, make_app: Callable[..., MeshplayApp]
) -> None:
    """open-the-front-door from an empty workspace: the goal, a check with nothing written
    (hidden checks), every hint, ``s`` writes the reference answer beside the learner's folder
    (never over it), the answer copied in passes, and progress records the solution was seen."""
    exercise = load_exercise(EXERCISES / "open-the-front-door")
    ws = tmp_path / "ws"
    start_workspace(exercise, ws)
    app = make_app({"sim": sim.SimRunner}, exercise=(exercise, ws))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        assert isinstance(app.screen, ExerciseScreen)
        goal = app.screen.query_one("#ex-goal", Markdown)
        assert "shop.example.com" in goal.source

        await pilot.press("c")
        await _wait_checked(pilot)
        report = _text(app, "#ex-report")
        assert "step 1/2  shop.example.com reaches the storefront through the mesh  FAIL" in report
        assert "a hidden check" in report and "destination) >= 60" not in report

        for _ in exercise.spec.hints:
            await pilot.press("h")
        await pilot.pause()
        assert "no more hints" in _text(app, "#ex-report")

        await pilot.press("s")
        await pilot.pause()
        assert "one answer (yours is graded, not this one):" in _text(app, "#ex-report")
        assert (ws / "solution" / "front-door" / "shop.yaml").is_file()
        assert not any((ws / "front-door").glob("*.yaml"))  # the learner's folder is untouched
        await pilot.press("s")
        await pilot.pause()
        assert "one answer" not in _text(app, "#ex-report")  # refused: it would overwrite

        shutil.copytree(ws / "solution" / "front-door", ws / "front-door", dirs_exist_ok=True)
        await pilot.press("c")
        await _wait_checked(pilot)
        assert "PASSED: all 2 steps" in _text(app, "#ex-report")
        progress = read_progress(ws)
        assert progress is not None and progress.passed == ("sim",) and progress.solution_shown
