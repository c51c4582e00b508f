"""The :class:`Diagnostic` value (one finding, where it is, what to do) and its rendering as
``file:line:col: level[CODE] Kind ns/name: message``; :class:`DiagnosticError` carries them all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.diagnostics.catalog import CATALOG
from mesh.diagnostics.code import Level

__all__ = ["Diagnostic", "DiagnosticError", "render"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding, with where it is and what to do about it."""

    code: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    resource: str = ""
    path: str = ""
    hint: str = ""
    level: Level | None = None

    @property
    def severity(self) -> Level:
        """The level: explicit, or the catalog default of the code."""
        if self.level is not None:
            return self.level
        return CATALOG[self.code].level

    @property
    def location(self) -> str:
        """``file:line:col`` (or as much of it as is known)."""
        if not self.file:
            return ""
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Order by file, line, column, code, message."""
        return (self.file, self.line, self.column, self.code, self.message)

    def headline(self) -> str:
        """The first line: ``file:line:col: level[CODE] Kind ns/name: message``."""
        parts = []
        if self.location:
            parts.append(f"{self.location}:")
        parts.append(f"{self.severity.label}[{self.code}]")
        if self.resource:
            parts.append(f"{self.resource}:")
        parts.append(self.message)
        return " ".join(parts)

    def render(self) -> str:
        """Headline plus ``at <field path>`` and ``hint:`` lines."""
        lines = [self.headline()]
        if self.path:
            lines.append(f"    at {self.path}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly dict (``meshplay analyze -o json``)."""
        return {
            "code": self.code,
            "name": CATALOG[self.code].name,
            "level": self.severity.name.capitalize(),
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "resource": self.resource,
            "path": self.path,
            "hint": self.hint,
        }


class DiagnosticError(ValueError):
    """Raised once with every error found, after collecting them all."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        super().__init__(render(self.diagnostics))


def render(diagnostics: Iterable[Diagnostic]) -> str:
    """Render diagnostics sorted by file and line, one block each."""
    return "\n".join(d.render() for d in sorted(diagnostics, key=Diagnostic.sort_key))
