"""Where lessons and the apps they name are found on disk.

A lesson folder is any folder with a lesson.yaml; the app a lesson names (``app: ecommerce``) is
looked up along :func:`app_search_path`: ``apps/`` folders around the lesson, then
``$MESHPLAY_APP_PATH``, then the apps that come with meshplay.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["APP_PATH_ENV", "BUNDLED_APPS", "app_search_path", "find_app", "find_lessons"]


def find_lessons(root: Path) -> list[Path]:
    """Lesson folders under ``root`` (folders with a lesson.yaml), sorted by name."""
    return sorted(p.parent for p in root.glob("*/lesson.yaml"))


APP_PATH_ENV = "MESHPLAY_APP_PATH"
"""Environment variable: more folders holding apps (``os.pathsep``-separated), searched after the
``apps/`` folders around a lesson."""

BUNDLED_APPS = Path(__file__).resolve().parents[2] / "lessons" / "apps"
"""The apps that come with meshplay (``lessons/apps`` of its source tree)."""


def app_search_path(lesson_dir: Path) -> tuple[Path, ...]:
    """Folders searched, in order, for the app a lesson names (``app: ecommerce`` is
    ``<folder>/ecommerce/behavior.yaml``): an ``apps/`` folder beside the lesson folder or beside
    any folder above it, each folder of ``$MESHPLAY_APP_PATH``, then the apps that come with
    meshplay. A lesson copied anywhere still finds the built-in apps."""
    chain = list(lesson_dir.parents)  # relative stays relative: diagnostics name files as given
    if not lesson_dir.is_absolute():
        chain += Path.cwd().parents
    out = [parent / "apps" for parent in chain]
    out = [folder for folder in out if folder.is_dir()]
    extra = os.environ.get(APP_PATH_ENV, "").split(os.pathsep)
    out += [Path(entry.strip()) for entry in extra if entry.strip()]
    if BUNDLED_APPS.is_dir():
        out.append(BUNDLED_APPS)
    unique: list[Path] = []
    for folder in out:
        if not any(_same(folder, seen) for seen in unique):
            unique.append(folder)
    return tuple(unique)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def find_app(name: str, search: tuple[Path, ...]) -> Path | None:
    """The first ``<folder>/<name>`` of ``search`` that holds a behavior.yaml."""
    for folder in search:
        if (folder / name / "behavior.yaml").is_file():
            return folder / name
    return None
