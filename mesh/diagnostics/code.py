"""A diagnostic code: its severity (:class:`Level`) and its catalog entry (:class:`Code`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Code", "Level"]


class Level(IntEnum):
    """Severity, ordered as istioctl orders them (``--failure-threshold`` compares these)."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        """Lower-case name as printed in a diagnostic line."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Code:
    """A catalog entry: the code, its name, default level and what it means."""

    code: str
    name: str
    level: Level
    description: str
