"""Diagnostics about lesson.yaml, positioned at the key they concern."""

from __future__ import annotations

from mesh.diagnostics import Diagnostic, format_path
from mesh.model.common import SourceMap

__all__ = ["Where", "lesson_diagnostic"]

Where = tuple[str | int, ...]
"""A field path in lesson.yaml, e.g. ``("steps", 2, "break", 0, "cluster")``."""


def lesson_diagnostic(
    code: str,
    message: str,
    source: SourceMap,
    where: Where,
    lesson: str,
    *,
    hint: str = "",
    path: str | None = None,
) -> Diagnostic:
    """A diagnostic at ``where`` in lesson ``lesson``'s lesson.yaml, reported for
    ``Lesson <name>`` with the field path (or ``path`` when given)."""
    pos = source.position(where)
    return Diagnostic(
        code,
        message,
        file=pos.file,
        line=pos.line,
        column=pos.column,
        resource=f"Lesson {lesson}",
        path=format_path(where) if path is None else path,
        hint=hint,
    )
