"""``meshplay lessons``: list the lessons, by track, with what each runs on."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mesh.diagnostics import DiagnosticError
from mesh.lesson import find_lessons, load_lesson

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``lessons`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("lessons", help="list the lessons")
    p.add_argument("--root", type=Path, default=Path("lessons"), help="lessons folder")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    folders = find_lessons(args.root)
    if not folders:
        print(f"no lessons under {args.root}", file=sys.stderr)
        return 2
    broken = 0
    rows = []
    for folder in folders:
        try:
            lesson = load_lesson(folder)
        except DiagnosticError:
            broken += 1
            rows.append((folder.name, "?", "(does not load: run meshplay analyze on it)", ""))
            continue
        rows.append((lesson.id, lesson.spec.track, lesson.title, ", ".join(lesson.spec.runners)))
    print(f"{'LESSON':<26} {'TRACK':<19} {'TITLE':<50} RUNNERS")
    for lesson_id, track, title, runners in rows:
        short = title if len(title) <= 50 else title[:49] + "\u2026"
        print(f"{lesson_id:<26} {track:<19} {short:<50} {runners}")
    return 2 if broken else 0
