"""What a command's PATH arguments mean: the mesh configuration to inspect.

A PATH is a lesson folder (the app plus what its steps applied, after ``step``, default the last),
an app folder (its ``kubernetes/`` manifests; its ``behavior.yaml`` is not Kubernetes input) or
``kubectl apply -f`` input (files, folders, ``-``), optionally on top of an app's manifests
(``app``: a folder, or an app name looked up as lessons look theirs up). With a lesson, ``app``
replaces the app its lesson.yaml names. Used by ``proxy-config`` and ``authz-check``; ``analyze``
checks every step of a lesson instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mesh.app import load_app
from mesh.diagnostics import Diagnostic, DiagnosticError, render
from mesh.lesson import Lesson, app_search_path, find_app, load_lesson
from mesh.model import Resource
from mesh.source import load_paths
from mesh.state import MeshState, lesson_states

__all__ = [
    "InputError",
    "app_dir",
    "is_app",
    "is_lesson",
    "lesson_for_runner",
    "mesh_resources",
    "step_index",
]


class InputError(ValueError):
    """A command-line argument that names nothing (an unknown step, ...)."""


def lesson_for_runner(path: str | Path, runner: str, app: str | None = None) -> Lesson | None:
    """The lesson at ``path`` when it loads and lists ``runner``; otherwise None, after printing
    the diagnostics or the runners it does list (the command then exits 2)."""
    try:
        lesson = load_lesson(path, app=app)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return None
    if runner not in lesson.spec.runners:
        print(f'lesson "{lesson.id}" does not run on "{runner}" (it runs on: '
              f'{", ".join(lesson.spec.runners)})', file=sys.stderr)  # fmt: skip
        return None
    return lesson


def app_dir(value: str) -> Path:
    """``--app``: a folder, or the name of an app (``lessons/apps/<name>`` from here, then the
    search path lessons use: ``$MESHPLAY_APP_PATH``, meshplay's own apps)."""
    path = Path(value)
    if path.is_dir():
        return path
    found = find_app(value, app_search_path(Path.cwd() / "lessons" / "_"))
    return found if found is not None else Path("lessons") / "apps" / value


def is_app(path: Path) -> bool:
    """Whether PATH is an app folder (``behavior.yaml`` and ``kubernetes/``)."""
    return (path / "behavior.yaml").is_file() and (path / "kubernetes").is_dir()


def is_lesson(path: Path) -> bool:
    """Whether PATH is a lesson folder (or its lesson.yaml)."""
    return (path / "lesson.yaml").is_file() or path.name == "lesson.yaml"


def step_index(lesson: Lesson, step: str | int | None) -> int:
    """0-based index of ``--step`` (a 1-based number or a step name; default the last step)."""
    count = len(lesson.steps)
    if step is None:
        return count - 1
    text = str(step)
    if text.isdigit() and 1 <= int(text) <= count:
        return int(text) - 1
    names = [s.name for s in lesson.steps]
    if text in names:
        return names.index(text)
    raise InputError(f"--step {text!r}: the lesson has steps 1..{count} ({'; '.join(names)})")


def mesh_resources(
    paths: Sequence[str], *, app: str | None = None, step: str | int | None = None
) -> tuple[tuple[Resource, ...], list[Diagnostic]]:
    """The applied resources PATHs describe (``kubectl apply`` keeps the last of same-named ones),
    and every diagnostic found loading them. Raises InputError for an unknown ``step``."""
    resources: list[Resource] = []
    found: list[Diagnostic] = []
    plain: list[str] = []
    lessons = False
    for raw in paths:
        if raw != "-" and is_app(Path(raw)):
            try:
                resources.extend(load_app(Path(raw)).resources)
            except DiagnosticError as exc:
                found.extend(exc.diagnostics)
            continue
        if raw == "-" or not is_lesson(Path(raw)):
            plain.append(raw)
            continue
        lessons = True
        try:
            lesson = load_lesson(raw, app=app)
        except DiagnosticError as exc:
            found.extend(exc.diagnostics)
            continue
        states = lesson_states(lesson)
        resources.extend(
            states[step_index(lesson, step)].resources if states else lesson.app.resources
        )
    if plain:
        result = load_paths(plain)
        found.extend(result.diagnostics)
        resources.extend(result.resources)
    if app and not lessons:
        try:
            resources = [*load_app(app_dir(app)).resources, *resources]
        except DiagnosticError as exc:
            found.extend(exc.diagnostics)
    return MeshState().apply(resources).resources, found
