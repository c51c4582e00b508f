"""``meshplay lessons``: the learning path, phase by phase (``lessons/path.yaml``): its lessons
with the runners each runs on, the ones among them that can run here and the ones you have passed
it on (progress kept in the data folder), and each phase's exercises; then the lessons off the
path.

A lesson names its runners (``runners:`` in lesson.yaml, default ``sim, local, kube``); whether a
runner can run on this machine is a separate question: ``sim`` needs nothing, ``local`` needs the
Envoy binary, ``kube`` needs its implementation in this build and a kubeconfig. Titles are never
cut when the output is not a terminal; in a terminal they are cut to its width.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mesh.diagnostics import DiagnosticError, render
from mesh.exercise import load_check, load_exercise
from mesh.lesson import find_lessons, load_lesson
from mesh.path import LearningPath, path_of
from mesh.runner import RunnerError
from playground.runners import RUNNERS, available_runners
from tui.progress import ProgressStore, default_data_dir

__all__ = ["register", "runners_here"]


def register(sub: Any) -> None:
    """Add the ``lessons`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "lessons",
        help="list the lessons and the runners they run on",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", type=Path, default=Path("lessons"), help="lessons folder")
    p.set_defaults(handler=_run)


def runners_here() -> dict[str, str]:
    """Runner name -> why it cannot run on this machine (``""`` when it can)."""
    from playground.commands.tui import kube_configured

    built = set(available_runners())
    out: dict[str, str] = {}
    for name in RUNNERS:
        if name not in built:
            out[name] = "not built yet" if name == "kube" else "not in this build"
        elif name == "local":
            out[name] = _envoy_missing()
        elif name == "kube" and not kube_configured():
            out[name] = "no kubeconfig ($KUBECONFIG or ~/.kube/config)"
        else:
            out[name] = ""
    return out


def _envoy_missing() -> str:
    from cluster.local.envoy import envoy_binary

    try:
        envoy_binary()
    except RunnerError as exc:
        return str(exc)
    return ""


def _width() -> int:
    """The terminal's width, 0 (no limit) when stdout is not a terminal and $COLUMNS is unset."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns


def _run(args: argparse.Namespace) -> int:
    folders = find_lessons(args.root)
    if not folders:
        print(f"no lessons under {args.root}", file=sys.stderr)
        return 2
    here = runners_here()
    progress = ProgressStore(default_data_dir())
    broken = 0
    rows: dict[str, tuple[str, str, str, str, str]] = {}
    for folder in folders:
        try:
            lesson = load_lesson(folder)
        except DiagnosticError:
            broken += 1
            rows[folder.name] = (
                folder.name,
                "?",
                "?",
                "-",
                "(does not load: run meshplay analyze on it)",
            )
            continue
        runs_on = lesson.spec.runners
        usable = [r for r in runs_on if not here.get(r, "unknown runner")]
        passed = progress.passed_on(lesson.id)
        rows[lesson.id] = (
            lesson.id,
            ", ".join(runs_on),
            ", ".join(usable) or "-",
            ", ".join(passed) or "-",
            lesson.title,
        )
    path, problem = _path(args.root, rows)
    if problem:
        print(problem, file=sys.stderr)
        broken += 1
    headers = ("LESSON", "RUNS ON", "RUNS HERE", "PASSED ON", "TITLE")
    names = [f"exercise {e}" for phase in (path.phases if path else ()) for e in phase.exercises]
    widths = [max(len(h), *(len(r[i]) for r in rows.values())) for i, h in enumerate(headers[:-1])]
    widths[0] = max(widths[0], *(len(n) for n in names)) if names else widths[0]
    limit = _width()
    print(_line(headers, widths, limit))
    placed: set[str] = set()
    for phase in path.phases if path is not None else ():
        print(f"\n# {phase.title}" + (f" - {phase.about}" if phase.about else ""))
        for name in phase.lessons:
            placed.add(name)
            print(_line(rows[name], widths, limit))
        for name in phase.exercises:
            exercise = load_exercise(args.root / "exercises" / name)
            runs_on = load_check(exercise, None).spec.runners
            usable = [r for r in runs_on if not here.get(r, "unknown runner")]
            done = ", ".join(progress.passed_on(f"exercise:{name}")) or "-"
            cells = (f"exercise {name}", ", ".join(runs_on), ", ".join(usable) or "-", done,
                     exercise.spec.title)  # fmt: skip
            print(_line(cells, widths, limit))
    rest = [row for name, row in rows.items() if name not in placed]
    if rest and path is not None:
        print("\n# More lessons")
    for row in rest:
        print(_line(row, widths, limit))
    if path is not None:
        print("\nexercises: meshplay exercise start ID [DIR], then meshplay exercise check DIR")
    ready = [name for name, why in here.items() if not why]
    missing = [f"{name} ({why})" for name, why in here.items() if why]
    print(f"\nrunners here: {', '.join(ready) or 'none'}" + (
        f"; not here: {', '.join(missing)}" if missing else ""))  # fmt: skip
    return 2 if broken else 0


def _line(row: tuple[str, ...], widths: list[int], limit: int) -> str:
    """One table line: fixed columns, then the title, cut to the terminal when it has a width."""
    head = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
    title = row[-1]
    room = limit - len(head) - 2
    if limit and len(title) > room > 10:
        title = title[: room - 1] + "\u2026"
    return f"{head}  {title}"


def _path(root: Path, lessons: Iterable[str]) -> tuple[LearningPath | None, str]:
    """The learning path of ``root``, if it has one; or why it does not load."""
    try:
        return path_of(root, lessons), ""
    except DiagnosticError as exc:
        return None, render(exc.diagnostics)
