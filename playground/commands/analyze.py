"""``meshplay analyze PATH...``: offline checks, like ``istioctl analyze`` without a cluster.

PATH may be lesson folders (the lesson's app plus the state after every step is analyzed), YAML
files or folders (``kubectl apply -f`` input), or ``-`` for stdin. ``--app`` adds an app's
manifests to plain YAML input so references to its services resolve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mesh.analyze import analyze
from mesh.app import load_app
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, render
from mesh.lesson import load_lesson
from mesh.source import load_paths
from mesh.state import MeshState, lesson_states
from playground.inputs import app_dir, is_lesson

__all__ = ["analyze_paths", "register"]

THRESHOLDS = {"info": Level.INFO, "warning": Level.WARNING, "error": Level.ERROR}


def register(sub: Any) -> None:
    """Add the ``analyze`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="check Istio/Kubernetes YAML or lessons for problems, offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="lesson folder, YAML file/folder, or -")
    p.add_argument("--app", help="app folder (or name under lessons/apps) to analyze YAML against")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument(
        "--failure-threshold",
        choices=tuple(THRESHOLDS),
        default="warning",
        help="lowest level that makes the exit code non-zero (default: warning)",
    )
    p.add_argument(
        "--output-threshold",
        choices=tuple(THRESHOLDS),
        default="warning",
        help="lowest level that is printed (default: warning; info shows fields and kinds "
        "that have no effect on the mesh)",
    )
    p.set_defaults(handler=_run)


def analyze_paths(paths: list[str], app: str | None = None) -> list[Diagnostic]:
    """Diagnostics for lesson folders and YAML inputs, loader and analyzer findings together."""
    found: list[Diagnostic] = []
    plain: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw != "-" and is_lesson(path):
            try:
                lesson = load_lesson(path)
            except DiagnosticError as exc:
                found.extend(exc.diagnostics)
                continue
            found.extend(lesson.diagnostics)
            for state in lesson_states(lesson):
                found.extend(analyze(state.resources))
        else:
            plain.append(raw)
    if plain:
        result = load_paths(plain)
        found.extend(result.diagnostics)
        resources = list(result.resources)
        if app:
            try:
                resources = [*load_app(app_dir(app)).resources, *resources]
            except DiagnosticError as exc:
                found.extend(exc.diagnostics)
        # kubectl apply keeps the last of same-named resources: analyze what it would keep
        found.extend(analyze(MeshState().apply(resources).resources))
    unique = {(d.code, d.file, d.line, d.column, d.message): d for d in found}
    return sorted(unique.values(), key=Diagnostic.sort_key)


def _run(args: argparse.Namespace) -> int:
    diagnostics = analyze_paths(args.paths, args.app)
    shown = [d for d in diagnostics if d.severity >= THRESHOLDS[args.output_threshold]]
    if args.output == "json":
        print(json.dumps([d.to_json() for d in shown], indent=2))
    elif shown:
        print(render(shown))
    else:
        print(f"\u2714 No validation issues found when analyzing {', '.join(args.paths)}.")
    hidden = len(diagnostics) - len(shown)
    if hidden and args.output == "text":
        print(f"({hidden} message{'s' if hidden != 1 else ''} below "
              f"{args.output_threshold} hidden; --output-threshold info shows them)")  # fmt: skip
    if any(d.severity is Level.ERROR for d in diagnostics):
        if args.output == "text":
            print(_summary(diagnostics), file=sys.stderr)
        return 2
    if any(d.severity >= THRESHOLDS[args.failure_threshold] for d in diagnostics):
        if args.output == "text":
            print(_summary(diagnostics), file=sys.stderr)
        return 1
    return 0


def _summary(diagnostics: list[Diagnostic]) -> str:
    counts = {level: sum(1 for d in diagnostics if d.severity is level) for level in Level}
    parts = [
        f"{n} {level.label}{'s' if n != 1 else ''}" for level, n in reversed(counts.items()) if n
    ]
    return "Error: Analyzers found issues: " + ", ".join(parts) + "."
