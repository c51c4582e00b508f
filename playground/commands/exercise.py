"""``meshplay exercise``: exercises where you write the Istio YAML and the mesh grades it.

  meshplay exercise list                  the exercises, by phase
  meshplay exercise start ID [DIR]        write a workspace (default ./ID): GOAL.md, starter files
  meshplay exercise check [DIR]           analyze your YAML, run it, grade what the mesh did
  meshplay exercise hint [DIR]            the next hint
  meshplay exercise solution [DIR]        write one reference answer into DIR/solution/

The check grades behaviour, not text: any configuration that makes the mesh do what GOAL.md
asks passes. Checks you have not passed yet stay hidden until you ask for every hint (or the
solution); then they are shown with what was measured. Exit codes: 0 the check passed, 1 it did
not, 2 the YAML could not be loaded or the command was misused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mesh.diagnostics import DiagnosticError, render
from mesh.exercise import (
    EXERCISES,
    PHASES,
    PROGRESS_FILE,
    Exercise,
    Progress,
    check_workspace,
    find_exercises,
    load_exercise,
    next_hint,
    read_progress,
    start_workspace,
    with_pass,
    write_progress,
    write_solution,
)
from mesh.runner import RunnerError
from playground.runners import RUNNERS, get_runner
from tui.progress import ProgressStore, default_data_dir

__all__ = ["open_workspace", "register"]


def register(sub: Any) -> None:
    """Add the ``exercise`` sub-command and its actions."""
    p: argparse.ArgumentParser = sub.add_parser(
        "exercise",
        help="exercises: write the Istio YAML yourself, get it graded by what the mesh does",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the exercises, by phase")
    ls.set_defaults(handler=_list)
    start = actions.add_parser("start", help="write a workspace for an exercise")
    start.add_argument("id", help="the exercise (see `meshplay exercise list`)")
    start.add_argument("dir", nargs="?", type=Path, help="the workspace folder (default ./ID)")
    start.set_defaults(handler=_start)
    check = actions.add_parser("check", help="analyze, run and grade your workspace")
    check.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the workspace")
    check.add_argument("--runner", choices=list(RUNNERS), default="sim")
    check.add_argument("--seed", type=int, default=1)
    check.set_defaults(handler=_check)
    hint = actions.add_parser("hint", help="the next hint")
    hint.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the workspace")
    hint.set_defaults(handler=_hint)
    solution = actions.add_parser("solution", help="write a reference answer into DIR/solution/")
    solution.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the workspace")
    solution.set_defaults(handler=_solution)


def _list(args: argparse.Namespace) -> int:
    exercises = [load_exercise(p) for p in find_exercises()]
    for phase in PHASES:
        mine = sorted((e for e in exercises if e.spec.phase == phase), key=lambda e: e.spec.order)
        if not mine:
            continue
        print(f"{phase}:")
        width = max(len(e.id) for e in mine)
        for e in mine:
            print(f"  {e.id:<{width}}  {e.spec.title}")
    print("\nstart one with: meshplay exercise start ID [DIR]")
    return 0


def _find(exercise_id: str) -> Exercise | None:
    folder = EXERCISES / exercise_id
    if not (folder / "exercise.yaml").is_file():
        known = ", ".join(p.name for p in find_exercises())
        print(f'error: no exercise "{exercise_id}" (exercises: {known})', file=sys.stderr)
        return None
    try:
        return load_exercise(folder)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return None


def open_workspace(folder: Path) -> tuple[Exercise, Progress] | None:
    """The exercise and progress of a workspace, or None after saying why on stderr."""
    progress = read_progress(folder)
    if progress is None:
        print(
            f"error: {folder} is not an exercise workspace (no {PROGRESS_FILE})\n"
            "  hint: start one with `meshplay exercise start ID DIR`",
            file=sys.stderr,
        )
        return None
    exercise = _find(progress.exercise)
    return None if exercise is None else (exercise, progress)


def _start(args: argparse.Namespace) -> int:
    exercise = _find(args.id)
    if exercise is None:
        return 2
    folder: Path = args.dir or Path(exercise.id)
    try:
        start_workspace(exercise, folder)
    except (FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{exercise.spec.title}\n")
    print(exercise.spec.goal.strip())
    print(f"\nworkspace: {folder}  (goal in {folder / 'GOAL.md'})")
    for wanted in exercise.spec.write:
        print(f"  write: {folder / wanted}")
    print(f"then: meshplay exercise check {folder}")
    return 0


def _check(args: argparse.Namespace) -> int:
    found = open_workspace(args.dir)
    if found is None:
        return 2
    exercise, progress = found
    print(f"{exercise.spec.title}  (runner {args.runner}, seed {args.seed})")
    try:
        runner = get_runner(args.runner)
        report, diagnostics = check_workspace(
            exercise, args.dir, runner, args.seed, progress.revealed(len(exercise.spec.hints))
        )
    except RunnerError as exc:
        print(f"error: runner {args.runner} failed: {exc}", file=sys.stderr)
        return 2
    if report is None:
        print("\n".join(diagnostics), file=sys.stderr)
        return 2
    if diagnostics:
        print("analysis of your configuration:")
        print("\n".join("  " + line for line in diagnostics))
    print("\n".join(report.lines()))
    ProgressStore(default_data_dir()).record(
        f"exercise:{exercise.id}", args.runner, passed=report.passed, seed=args.seed
    )
    if report.passed:
        write_progress(args.dir, with_pass(progress, args.runner))
        return 0
    return 1


def _hint(args: argparse.Namespace) -> int:
    found = open_workspace(args.dir)
    if found is None:
        return 2
    exercise, progress = found
    total = len(exercise.spec.hints)
    already = progress.hints_shown >= total
    shown, last = next_hint(exercise, args.dir, progress)
    for i, text in enumerate(shown, 1):
        print(f"hint {i}/{total}: {text}")
    if already:
        print("no more hints: `meshplay exercise solution` writes one answer")
    elif last:
        print("that was the last hint: `meshplay exercise check` now shows the failed checks")
    return 0


def _solution(args: argparse.Namespace) -> int:
    found = open_workspace(args.dir)
    if found is None:
        return 2
    exercise, progress = found
    try:
        files = write_solution(exercise, args.dir, progress)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = args.dir / "solution"
    print(f"one answer is in {where} (yours is graded, not this one; other answers pass too):")
    for path in files:
        print(f"  {path}")
    print(f"try it: copy it over your files and run `meshplay exercise check {args.dir}`")
    return 0
