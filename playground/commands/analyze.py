"""``meshplay analyze PATH...``: offline checks, like ``istioctl analyze`` without a cluster.

Each PATH is analyzed as what it is:

* a lesson folder (or its lesson.yaml): its app, then the state after every step;
* an app folder (``behavior.yaml`` + ``kubernetes/``, and ``istio/`` when present): the behaviour
  file is checked, the manifests and the app's own Istio config are analyzed together;
* a folder holding lessons or apps (``lessons``, ``lessons/apps``): each of them as above, and
  any other YAML in it as plain input;
* anything else is ``kubectl apply -f`` input (files, folders, ``-`` for stdin); ``--app`` puts
  an app's manifests under it so references to its services resolve.

Exit codes are istioctl analyze's: 0 nothing at or above ``--failure-threshold`` (default
error), 79 analyzers found issues at or above it, 65 some input could not be read or parsed
(and nothing reached the threshold); 2 is a usage error. Messages at or above
``--output-threshold`` (default info) are printed (meshplay's notes on fields and kinds that do
not affect the mesh only with ``-v``): ``-o text`` (meshplay's ``file:line:col:``
form with field path and hint), ``-o log`` or ``-o istioctl`` (istioctl's own lines,
``Error [IST0101] (VirtualService ns/name file:line) ...``), ``-o json``, ``-o yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh.analyze import analyze
from mesh.app import load_app, load_behavior
from mesh.diagnostics import Diagnostic, DiagnosticError, Level, render
from mesh.lesson import find_lessons, load_lesson
from mesh.path import PATH_FILE, path_of
from mesh.source import load_paths
from mesh.source.load import YAML_SUFFIXES
from mesh.state import MeshState, lesson_states
from mesh.topology import MeshConfig
from playground.inputs import app_dir, is_lesson

__all__ = [
    "EXIT_ISSUES",
    "EXIT_UNREADABLE",
    "NOTE_CODES",
    "PARSE_CODES",
    "analyze_paths",
    "exit_code",
    "istioctl_line",
    "register",
]

EXIT_ISSUES = 79
"""istioctl's ``ExitAnalyzerFoundIssues``: a message at or above ``--failure-threshold``."""
EXIT_UNREADABLE = 65
"""istioctl's ``ExitDataError`` (``FileParseError``): some input could not be read or parsed."""
PARSE_CODES = frozenset({"MPY1001", "MPY1002", "MPY1006", "MPY1008", "MPY1011"})
"""Input that is not a readable Kubernetes document (YAML syntax, no apiVersion/kind, binary or
missing file, duplicate key, YAML bomb). istioctl reports such input as a parse error, not as an
analysis message: it gives exit 65 unless an analysis message already gives 79."""
NOTE_CODES = frozenset({"MPY2002", "MPY2004"})
"""Notes about meshplay's model, not about the configuration: a Kubernetes field or kind that
does not change what the mesh does (probes, resources, ConfigMaps...). Printed with
``--verbose``; never a reason to fail."""

THRESHOLDS = {"info": Level.INFO, "warning": Level.WARNING, "error": Level.ERROR}
FORMATS = ("text", "log", "istioctl", "json", "yaml")
_ISTIO_DOCS = f"https://istio.io/v{MeshConfig().istio_version}/docs/reference/config/analysis"


def register(sub: Any) -> None:
    """Add the ``analyze`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="check Istio/Kubernetes YAML, apps or lessons for problems, offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="lesson folder, app folder, folder of lessons, YAML file/folder, or -",
    )
    p.add_argument("--app", help="app folder (or name under lessons/apps) to analyze YAML against")
    p.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="text",
        help="text (default: file:line:col, field path, hint), log or istioctl (istioctl's "
        "message lines), json, yaml",
    )
    p.add_argument(
        "--failure-threshold",
        choices=tuple(THRESHOLDS),
        default="error",
        help="lowest level that makes the exit code 79 (default: error, as istioctl)",
    )
    p.add_argument(
        "--output-threshold",
        choices=tuple(THRESHOLDS),
        default="info",
        help="lowest level that is printed (default: info, as istioctl)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print meshplay's notes on fields and kinds with no effect on the mesh "
        "(MPY2002, MPY2004)",
    )
    p.set_defaults(handler=_run)


# -- what the PATHs are ----------------------------------------------------------------------


def _is_app(path: Path) -> bool:
    """An app folder: ``behavior.yaml`` beside ``kubernetes/``."""
    return (path / "behavior.yaml").is_file() and (path / "kubernetes").is_dir()


@dataclass
class _Inputs:
    """The PATHs sorted by what they are."""

    lessons: list[Path] = field(default_factory=list)
    apps: list[Path] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    """Learning paths (``path.yaml`` beside lessons)."""


def _collect(folder: Path, into: _Inputs) -> None:
    """Lessons and apps under ``folder`` (not inside one another); other YAML as plain input."""
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if is_lesson(child):
                into.lessons.append(child)
            elif _is_app(child):
                into.apps.append(child)
            else:
                _collect(child, into)
        elif child.name == PATH_FILE:
            into.paths.append(child)
        elif child.suffix in YAML_SUFFIXES:
            into.plain.append(str(child))


def _classify(paths: Sequence[str]) -> _Inputs:
    found = _Inputs()
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            found.plain.append(raw)
        elif is_lesson(path):
            found.lessons.append(path)
        elif _is_app(path):
            found.apps.append(path)
        elif path.is_dir():
            inside = _Inputs()
            _collect(path, inside)
            if inside.lessons or inside.apps:  # a folder of lessons and apps
                found.lessons += inside.lessons
                found.apps += inside.apps
                found.plain += inside.plain
                found.paths += inside.paths
            else:  # a folder of manifests
                found.plain.append(raw)
        else:
            found.plain.append(raw)
    return found


# -- analysis --------------------------------------------------------------------------------


def _lesson(path: Path) -> list[Diagnostic]:
    try:
        lesson = load_lesson(path)
    except DiagnosticError as exc:
        return list(exc.diagnostics)
    found = list(lesson.diagnostics)
    for state in lesson_states(lesson):
        found.extend(analyze(state.resources))
    return found


def _learning_path(file: Path) -> list[Diagnostic]:
    """A learning path, checked against the lessons beside it and its exercises folder."""
    try:
        path_of(file.parent, [p.name for p in find_lessons(file.parent)])
    except DiagnosticError as exc:
        return list(exc.diagnostics)
    return []


def _app(folder: Path) -> list[Diagnostic]:
    """The app as it runs: manifests (namespace from behavior.yaml, as ``load_app`` reads them)
    plus its own Istio config (``istio/``, applied as ``kubectl apply -f`` would)."""
    found: list[Diagnostic] = []
    namespace = "default"
    try:
        namespace = load_behavior(folder / "behavior.yaml").namespace
    except DiagnosticError as exc:
        found.extend(exc.diagnostics)
    manifests = load_paths([folder / "kubernetes"], default_namespace=namespace)
    found.extend(manifests.diagnostics)
    resources = list(manifests.resources)
    if (folder / "istio").is_dir():
        istio = load_paths([folder / "istio"])
        found.extend(istio.diagnostics)
        resources.extend(istio.resources)
    found.extend(analyze(MeshState().apply(resources).resources))
    return found


def _plain(paths: list[str], app: str | None) -> list[Diagnostic]:
    result = load_paths(paths)
    found = list(result.diagnostics)
    resources = list(result.resources)
    if app:
        try:
            resources = [*load_app(app_dir(app)).resources, *resources]
        except DiagnosticError as exc:
            found.extend(exc.diagnostics)
    # kubectl apply keeps the last of same-named resources: analyze what it would keep
    found.extend(analyze(MeshState().apply(resources).resources))
    return found


def analyze_paths(paths: Sequence[str], app: str | None = None) -> list[Diagnostic]:
    """Diagnostics for every PATH (see the module docstring), loader and analyzer findings
    together, de-duplicated (a lesson's app is analyzed with every lesson) and sorted."""
    inputs = _classify(paths)
    found: list[Diagnostic] = []
    for lesson in inputs.lessons:
        found.extend(_lesson(lesson))
    for folder in inputs.apps:
        found.extend(_app(folder))
    for file in inputs.paths:
        found.extend(_learning_path(file))
    if inputs.plain:
        found.extend(_plain(inputs.plain, app))
    unique = {(d.code, d.file, d.line, d.column, d.message): d for d in found}
    return sorted(unique.values(), key=Diagnostic.sort_key)


def exit_code(diagnostics: Iterable[Diagnostic], failure_threshold: Level = Level.ERROR) -> int:
    """istioctl's rule: 79 when a message is at or above the threshold, else 65 when some input
    could not be parsed, else 0. Parse errors are not messages, so they never make it 79;
    meshplay's notes (:data:`NOTE_CODES`) never count."""
    found = [d for d in diagnostics if d.code not in NOTE_CODES]
    if any(d.code not in PARSE_CODES and d.severity >= failure_threshold for d in found):
        return EXIT_ISSUES
    if any(d.code in PARSE_CODES and d.severity is Level.ERROR for d in found):
        return EXIT_UNREADABLE
    return 0


# -- output ----------------------------------------------------------------------------------


def _reference(d: Diagnostic) -> str:
    """istioctl's position: ``file:line`` (no column; no line for .json files)."""
    if d.line <= 0 or d.file.endswith(".json"):
        return d.file
    return f"{d.file}:{d.line}"


def istioctl_line(d: Diagnostic) -> str:
    """One message as ``istioctl analyze`` prints it (``diag.Message.String``):
    ``Error [IST0101] (VirtualService shop/p vs.yaml:8) Referenced host not found: "x"``."""
    origin = " ".join(part for part in (d.resource, _reference(d)) if part)
    level = d.severity.name.capitalize()
    return f"{level} [{d.code}]{f' ({origin})' if origin else ''} {d.message}"


def _as_data(d: Diagnostic) -> dict[str, object]:
    """meshplay's JSON fields plus istioctl's (``origin``, ``reference``, ``documentationUrl``),
    so that tools reading either keep working."""
    data = d.to_json()
    if d.resource:
        data["origin"] = d.resource
    if d.file:
        data["reference"] = _reference(d)
    if d.code.startswith("IST"):
        data["documentationUrl"] = f"{_ISTIO_DOCS}/{d.code.lower()}/?ref=istioctl-analyze"
    return data


def _print(shown: list[Diagnostic], output: str) -> None:
    if output == "json":
        print(json.dumps([_as_data(d) for d in shown], indent=2))
    elif output == "yaml":
        print(yaml.safe_dump([_as_data(d) for d in shown], sort_keys=False), end="")
    elif not shown:
        return
    elif output in ("log", "istioctl"):
        print("\n".join(istioctl_line(d) for d in shown))
    else:
        print(render(shown))


def _counts(diagnostics: Sequence[Diagnostic]) -> str:
    counts = {level: sum(1 for d in diagnostics if d.severity is level) for level in Level}
    return ", ".join(
        f"{n} {level.label}{'s' if n != 1 else ''}" for level, n in reversed(counts.items()) if n
    )


def _run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if p != "-" and not os.path.lexists(p)]
    diagnostics = analyze_paths(args.paths, args.app)
    findings: list[Diagnostic] = []
    notes: list[Diagnostic] = []
    for d in diagnostics:
        (notes if d.code in NOTE_CODES and not args.verbose else findings).append(d)
    shown = [d for d in findings if d.severity >= THRESHOLDS[args.output_threshold]]
    _print(shown, args.output)
    code = exit_code(diagnostics, THRESHOLDS[args.failure_threshold])
    target = ", ".join(args.paths)
    err = sys.stderr
    if hidden := len(findings) - len(shown):
        print(f"({hidden} message{'s' if hidden != 1 else ''} below {args.output_threshold} "
              "hidden; --output-threshold info shows them)", file=err)  # fmt: skip
    if notes:
        print(f"({len(notes)} note{'s' if len(notes) != 1 else ''} on fields and kinds with no "
              "effect on the mesh hidden; -v shows them)", file=err)  # fmt: skip
    if code == EXIT_ISSUES:
        print(f"Error: Analyzers found issues when analyzing {target}: {_counts(findings)}.\n"
              f"See docs/diagnostics.md (MPY codes) and {_ISTIO_DOCS} (IST codes) for more "
              "information about causes and resolutions.", file=err)  # fmt: skip
    elif code == EXIT_UNREADABLE:
        unread = len({d.file for d in diagnostics if d.code in PARSE_CODES})
        print(f"Error: Some files couldn't be parsed ({unread} file{'s' if unread != 1 else ''}"
              f"{'; not found: ' + ', '.join(missing) if missing else ''}).", file=err)  # fmt: skip
    elif not shown:
        print(f"\u2714 No validation issues found when analyzing {target}.", file=err)
    return code
