"""``meshplay tui`` wiring: arguments, runner factories, errors before the app starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from playground.commands import tui as command
from tests.pool_race import PoolRaceRunner


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    return parser.parse_args(["tui", *argv])


def test_tui_command_parses_its_options() -> None:
    args = parse(["--root", "x", "--lesson", "01-request-routing", "--runners", "sim"])
    assert args.root == Path("x") and args.lesson == "01-request-routing"
    assert args.runners == "sim" and args.handler is not None


def test_factories_build_runners_only_when_called() -> None:
    factories = command.runner_factories(("sim", "kube"))
    assert set(factories) == {"sim", "kube"}  # nothing imported or connected yet
    assert callable(factories["kube"])


def test_kube_is_offered_only_with_a_kubeconfig(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert "kube" not in command.default_runners()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    assert command.kube_configured()


def test_unknown_runner_and_missing_root_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["--runners", "warp"]).handler(parse(["--runners", "warp"])) == 2
    assert "unknown runner" in capsys.readouterr().err
    args = parse(["--root", "/nonexistent/lessons"])
    assert args.handler(args) == 2
    assert "no lessons folder" in capsys.readouterr().err


def test_an_unknown_lesson_is_an_error_before_the_app_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = Path(__file__).resolve().parents[2] / "lessons"
    args = parse(["--root", str(root), "--lesson", "08-circuit-breakin"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "no lesson '08-circuit-breakin'" in err and "08-circuit-breaking" in err


BUILT: list[dict[str, object]] = []


def recording_runner(**options: object) -> PoolRaceRunner:
    """A runner target for ``playground.runners.RUNNERS`` that lists the options it was built
    with."""
    BUILT.append(options)
    return PoolRaceRunner("sim", **options)  # type: ignore[arg-type]


def test_the_app_compares_through_run_pair_and_its_factories_pass_the_options_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``meshplay tui`` gives the Compare view the function ``meshplay compare`` runs its sides
    with (pool calibration included), and runner factories that hand a comparison's options
    (``workdir``; ``pool_timing``, ``step_timing``) to the runner they build."""
    from playground.compare_pair import run_pair
    from playground.runners import RUNNERS
    from tui.app import MeshplayApp

    opened: list[MeshplayApp] = []
    monkeypatch.setattr(MeshplayApp, "run", lambda self, *a, **k: opened.append(self))
    root = Path(__file__).resolve().parents[2] / "lessons"
    args = parse(["--root", str(root), "--runners", "sim,local"])
    assert args.handler(args) == 0
    assert opened and opened[0].session.pair_runner is run_pair
    monkeypatch.setitem(RUNNERS, "sim", f"{__name__}:recording_runner")
    timing = object()
    runner = opened[0].session.runner_factories["sim"](pool_timing=timing, step_timing={})
    assert isinstance(runner, PoolRaceRunner) and runner.pool_timing is timing
    assert BUILT[-1] == {"pool_timing": timing, "step_timing": {}}
