"""The learning path: four phases, each an ordered list of lessons and exercises.

``lessons/path.yaml`` places the lessons and exercises in the order a learner should take them::

    phases:
      - id: foundation
        title: Foundation
        about: Set up the mesh, see what a sidecar does, route, observe.
        lessons: [01-request-routing, 17-observability-basics]
        exercises: [pin-product-v1, payment-error-alert]

Lessons not on the path stay available (``meshplay lessons`` lists them after it, as more
lessons). The path is checked against the folders it names: an unknown lesson or exercise, or one
placed twice, is a positioned MPY6002.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mesh.diagnostics import Diagnostic, DiagnosticError, Level, did_you_mean
from mesh.exercise import find_exercises
from mesh.model.common import SourceMap
from mesh.source.decode import MISSING, Decoder
from mesh.source.yaml_nodes import parse_documents

__all__ = ["PATH_FILE", "LearningPath", "Phase", "load_path", "path_of"]

PATH_FILE = "path.yaml"
"""The path's file in a lessons folder."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One phase of the path."""

    YAML_KEYS: ClassVar[str] = "snake"

    id: str
    title: str
    about: str = ""
    lessons: tuple[str, ...] = ()
    exercises: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LearningPath:
    """The phases in order."""

    YAML_KEYS: ClassVar[str] = "snake"

    phases: tuple[Phase, ...] = ()

    def phase_of(self, lesson_or_exercise: str) -> Phase | None:
        """The phase that places a lesson or exercise (by folder name), if any."""
        for phase in self.phases:
            if lesson_or_exercise in phase.lessons or lesson_or_exercise in phase.exercises:
                return phase
        return None

    @property
    def lessons(self) -> tuple[str, ...]:
        """Every lesson on the path, in path order."""
        return tuple(name for phase in self.phases for name in phase.lessons)


def load_path(file: Path, lessons: Iterable[str], exercises: Iterable[str]) -> LearningPath:
    """Read ``file`` and check every name against the lesson and exercise folders that exist.
    Raises DiagnosticError (MPY6002) listing every problem."""
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = f"cannot read the path: {exc}"
        raise DiagnosticError([Diagnostic("MPY6002", message, file=shown)]) from exc
    docs, diagnostics = parse_documents(text, shown)
    if not docs:
        raise DiagnosticError(diagnostics or [Diagnostic("MPY6002", "empty path", file=shown)])
    source = SourceMap(docs[0].origin, docs[0].positions)
    decoder = Decoder(source, "LearningPath", "MPY6002")
    path = decoder.dataclass(LearningPath, docs[0].data, ())
    diagnostics.extend(decoder.diagnostics)
    if path is MISSING:
        raise DiagnosticError(diagnostics)
    known = {"lessons": sorted(lessons), "exercises": sorted(exercises)}
    seen: set[str] = set()
    for i, phase in enumerate(path.phases):
        for kind in ("lessons", "exercises"):
            for j, name in enumerate(getattr(phase, kind)):
                where: tuple[str | int, ...] = ("phases", i, kind, j)
                problem = ""
                if name not in known[kind]:
                    problem = f'no {kind[:-1]} "{name}"'
                elif name in seen:
                    problem = f'"{name}" is placed twice on the path'
                seen.add(name)
                if problem:
                    pos = source.position(where)
                    hint = did_you_mean(name, known[kind]) or f"{kind}: {', '.join(known[kind])}"
                    diagnostics.append(
                        Diagnostic(
                            "MPY6002",
                            problem,
                            file=pos.file,
                            line=pos.line,
                            column=pos.column,
                            resource="LearningPath",
                            path=f"phases[{i}].{kind}[{j}]",
                            hint=hint,
                        )
                    )
    if any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return path


def path_of(root: Path, lessons: Iterable[str]) -> LearningPath | None:
    """The learning path of a lessons folder (its ``path.yaml``, checked against ``lessons`` and
    the exercises under ``root/exercises``); None when it has none. Raises DiagnosticError."""
    file = root / PATH_FILE
    if not file.is_file():
        return None
    return load_path(file, lessons, [p.name for p in find_exercises(root / "exercises")])
