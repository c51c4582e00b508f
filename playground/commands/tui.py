"""``meshplay tui``: the terminal app (lessons, live runs, topology, compare, traces).

The TUI never builds runners itself: this command hands it one factory per runner name from
``playground.runners``; a runner whose implementation is missing from the build fails when it is
run, with the reason shown in the app. Its Compare view runs both sides through
``playground.compare_pair.run_pair``, as ``meshplay compare`` does (pool calibration included).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mesh.runner import Runner
from playground.runners import RUNNERS, available_runners, get_runner

__all__ = [
    "default_runners",
    "finish_background_work",
    "kube_configured",
    "register",
    "runner_factories",
]


def kube_configured() -> bool:
    """A kubeconfig exists ($KUBECONFIG or ~/.kube/config): the ``kube`` runner may reach a
    cluster."""
    if os.environ.get("KUBECONFIG"):
        return True
    return (Path.home() / ".kube" / "config").is_file()


def default_runners() -> tuple[str, ...]:
    """Runners this build can offer: available ones, ``kube`` only when configured."""
    names = available_runners() or list(RUNNERS)
    return tuple(n for n in names if n != "kube" or kube_configured())


def runner_factories(names: tuple[str, ...] = tuple(RUNNERS)) -> dict[str, Any]:
    """``{"sim": <factory>, ...}``: each factory builds its runner when the TUI runs it (with
    the options a comparison hands it: ``workdir``, ``pool_timing``, ``step_timing``)."""

    def factory(name: str) -> Any:
        def build(**options: object) -> Runner:
            return get_runner(name, **options)

        return build

    return {name: factory(name) for name in names}


def register(sub: Any) -> None:
    """Add the ``tui`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "tui",
        help="open the terminal app: lessons, live runs, topology, sim-vs-real compare, traces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", type=Path, default=Path("lessons"), help="lessons folder")
    p.add_argument("--lesson", default="", help="lesson to open (folder name)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the runs")
    p.add_argument(
        "--exercise",
        type=Path,
        default=None,
        metavar="DIR",
        help="open an exercise workspace (see `meshplay exercise start`): goal, check, hints",
    )
    p.add_argument(
        "--runners",
        default="",
        help="comma-separated runners to offer (default: those in this build; kube when a "
        "kubeconfig exists)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where progress is kept (default: $MESHPLAY_DATA_DIR or $XDG_DATA_HOME/meshplay)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from playground.compare_pair import run_pair
    from tui.app import MeshplayApp

    names = tuple(n.strip() for n in args.runners.split(",") if n.strip()) or default_runners()
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        print(
            f"error: unknown runner(s) {', '.join(unknown)}: choose from {', '.join(RUNNERS)}",
            file=sys.stderr,
        )
        return 2
    if not args.root.is_dir():
        print(f"error: no lessons folder at {args.root}", file=sys.stderr)
        return 2
    if args.lesson and not (args.root / args.lesson / "lesson.yaml").is_file():
        known = ", ".join(p.parent.name for p in sorted(args.root.glob("*/lesson.yaml")))
        print(f"error: no lesson {args.lesson!r} in {args.root}; lessons: {known}", file=sys.stderr)
        return 2
    exercise = None
    if args.exercise is not None:
        from playground.commands.exercise import open_workspace

        found = open_workspace(args.exercise)
        if found is None:
            return 2
        exercise = (found[0], args.exercise)
    app = MeshplayApp(
        args.root,
        runner_factories(names),
        args.data_dir,
        pair_runner=run_pair,
        seed=args.seed,
        lesson=args.lesson,
        exercise=exercise,
    )
    app.run()
    finish_background_work(app.session.cancel_all())
    return 0


def finish_background_work(work: list[Any]) -> None:
    """After the screen is gone: wait for cancelled runs to stop (a local run stops its
    processes), saying so, so that no process outlives the command."""
    for item in work:
        if item.thread.is_alive():
            print(f"meshplay: stopping {item.name}…", file=sys.stderr, flush=True)
            item.thread.join()
