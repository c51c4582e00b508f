"""The Compare view calibrates the simulator's connection-pool race as ``meshplay compare`` does
(``playground.compare_pair.run_pair``, the same function): on lesson bookinfo-05-breakers, sim
against local, the local side runs first in a work folder the comparison owns; its client
sidecar answered 503 ``UO`` in steps 2 and 3, so the sim side is built with the pool timing
measured from the access logs it left there (per step too) and runs the lesson with httpbin's
measured service time; a line under the status says so. The ``pool calib.`` checkbox turns it
off, and a finished run that needs nothing special is reused.

The runners are :class:`tests.pool_race.PoolRaceRunner` doubles (the lesson engine on scripted
records; the local one writes the access-log lines Envoy writes), so this needs no Envoy."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable

from mesh.runner import Runner
from playground.compare_pair import run_pair
from sim.pool_timing import PoolTiming
from tests.pool_race import SERVER_US, PoolRaceRunner
from tests.tui.conftest import LESSONS
from tests.tui.pilot_helpers import wait_compare, wait_loaded
from tests.tui.test_pilot import text_of
from tui.app import MeshplayApp

LESSON = "bookinfo-05-breakers"


@pytest.fixture
def breakers_root(tmp_path: Path) -> Path:
    """A lessons folder with bookinfo-05-breakers and the apps only."""
    root = tmp_path / "lessons"
    shutil.copytree(LESSONS / "apps", root / "apps")
    shutil.copytree(LESSONS / LESSON, root / LESSON)
    return root


def recording_factories(built: list[PoolRaceRunner]) -> dict[str, Callable[..., Runner]]:
    """A "sim" and a "local" factory that build :class:`PoolRaceRunner` with the options the
    comparison hands them, and list every runner built, in order."""

    def factory(name: str) -> Callable[..., Runner]:
        def build(**options: object) -> Runner:
            runner = PoolRaceRunner(name, **options)  # type: ignore[arg-type]
            built.append(runner)
            return runner

        return build

    return {"sim": factory("sim"), "local": factory("local")}


def httpbin_get_ms(runner: PoolRaceRunner) -> float:
    """The service time of ``GET /get`` in the lesson ``runner`` last ran, in milliseconds."""
    httpbin = runner.lessons[-1].app.behavior.service("httpbin")
    get = httpbin.endpoint("GET", "/get") if httpbin else None
    assert get is not None and get.service_time is not None
    return get.service_time.median.seconds * 1e3


async def test_compare_runs_local_first_and_the_sim_with_the_measured_pool_timing(
    make_app: Callable[..., MeshplayApp], breakers_root: Path
) -> None:
    built: list[PoolRaceRunner] = []
    app = make_app(
        recording_factories(built), root=breakers_root, lesson=LESSON, pair_runner=run_pair
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        await wait_compare(pilot)
        assert [r.name for r in built] == ["local", "sim"]  # local first, though it is B
        local, sim = built
        assert local.workdir is not None and local.pool_timing is None
        assert isinstance(sim.pool_timing, PoolTiming) and sim.workdir is None
        assert sim.step_timing is not None and set(sim.step_timing) == {1, 2}
        assert math.isclose(httpbin_get_ms(sim), SERVER_US / 1e3)  # measured 2.6, declared 2
        assert math.isclose(httpbin_get_ms(local), 2.0)  # local ran the lesson as written
        line = text_of(app, "#cmp-calibration")
        assert app.query_one("#cmp-calibration").display
        assert line.startswith(
            "pool calibration: pool race of steps 2, 3 (fortio-deploy's sidecar): "
            "sim used the delays measured on local: reconnect "
        )
        assert "httpbin GET /get 2.60 ms (declared 2.00 ms)" in line
        assert "sim vs local" in text_of(app, "#cmp-status")
        assert app.query_one("#cmp-table", DataTable).row_count > 0
        assert (LESSON, "local") in app.session.runs  # a plain local run: kept for the views
        assert (LESSON, "sim") not in app.session.runs  # the calibrated sim's is not what r runs

        # off: the sim keeps its default timing and the lesson as written; the local run of
        # the first comparison needs no access logs now, so it is reused
        app.query_one("#cmp-calibrate", Checkbox).value = False
        await pilot.press("m")
        await wait_compare(pilot)
        assert [r.name for r in built] == ["local", "sim", "sim"]
        assert built[-1].pool_timing is None and built[-1].step_timing is None
        assert math.isclose(httpbin_get_ms(built[-1]), 2.0)
        off = text_of(app, "#cmp-calibration")
        assert off == "pool calibration off: the sim ran with its default pool timing"


async def test_without_a_pool_race_the_line_says_why_the_sim_kept_its_timing(
    make_app: Callable[..., MeshplayApp], breakers_root: Path
) -> None:
    built: list[PoolRaceRunner] = []
    factories = recording_factories(built)
    quiet = {
        **factories,
        "local": lambda **options: PoolRaceRunner("local", cycles=0, **options),
    }
    app = make_app(quiet, root=breakers_root, lesson=LESSON, pair_runner=run_pair)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        await wait_compare(pilot)
        assert [r.name for r in built] == ["sim"] and built[0].pool_timing is None
        assert text_of(app, "#cmp-calibration") == (
            "pool calibration: no client sidecar answered 503 UO on local (no pool race to "
            "measure), sim used its default pool timing"
        )


async def test_without_a_pair_runner_there_is_no_checkbox_and_no_line(
    make_app: Callable[..., MeshplayApp], breakers_root: Path
) -> None:
    built: list[PoolRaceRunner] = []
    app = make_app(recording_factories(built), root=breakers_root, lesson=LESSON)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        await wait_compare(pilot)
        assert [r.name for r in built] == ["sim", "local"]  # A then B, as before
        assert not app.query("#cmp-calibrate")
        assert not app.query_one("#cmp-calibration").display
