"""A learner's progress: which lessons passed on which runner, kept in the user's data directory.

The file is ``progress.json`` under ``$MESHPLAY_DATA_DIR``, else ``$XDG_DATA_HOME/meshplay``, else
``~/.local/share/meshplay`` (the XDG default). A lesson counts as passed on a runner once one
run of all its steps met every expectation; a later failing run does not take that away, just as
a passed exercise stays passed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProgressStore", "RunnerProgress", "default_data_dir"]

FILE_NAME = "progress.json"


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where meshplay keeps the learner's data (see the module docstring)."""
    environ = os.environ if env is None else env
    explicit = environ.get("MESHPLAY_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "meshplay"


@dataclass(frozen=True, slots=True)
class RunnerProgress:
    """One lesson on one runner: passed ever, the last outcome and how many runs."""

    passed: bool = False
    last_passed: bool = False
    runs: int = 0
    seed: int = 1


class ProgressStore:
    """Lesson progress per runner, read once and written atomically after each run."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._data: dict[str, dict[str, RunnerProgress]] = self._read()

    def _read(self) -> dict[str, dict[str, RunnerProgress]]:
        try:
            raw: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        lessons = raw.get("lessons", {}) if isinstance(raw, dict) else {}
        out: dict[str, dict[str, RunnerProgress]] = {}
        for lesson, runners in lessons.items():
            if not isinstance(runners, dict):
                continue
            out[lesson] = {
                name: RunnerProgress(
                    passed=bool(p.get("passed")),
                    last_passed=bool(p.get("last_passed")),
                    runs=int(p.get("runs", 0)),
                    seed=int(p.get("seed", 1)),
                )
                for name, p in runners.items()
                if isinstance(p, dict)
            }
        return out

    def get(self, lesson: str, runner: str) -> RunnerProgress:
        """Progress of a lesson on a runner (not started: all false)."""
        return self._data.get(lesson, {}).get(runner, RunnerProgress())

    def passed_on(self, lesson: str) -> tuple[str, ...]:
        """Runners the lesson has passed on, sorted."""
        return tuple(sorted(r for r, p in self._data.get(lesson, {}).items() if p.passed))

    def record(self, lesson: str, runner: str, *, passed: bool, seed: int) -> RunnerProgress:
        """Remember one complete run and save the file."""
        before = self.get(lesson, runner)
        now = RunnerProgress(
            passed=before.passed or passed, last_passed=passed, runs=before.runs + 1, seed=seed
        )
        self._data.setdefault(lesson, {})[runner] = now
        self._write()
        return now

    def _write(self) -> None:
        payload = {
            "version": 1,
            "lessons": {
                lesson: {
                    name: {
                        "passed": p.passed,
                        "last_passed": p.last_passed,
                        "runs": p.runs,
                        "seed": p.seed,
                    }
                    for name, p in sorted(runners.items())
                }
                for lesson, runners in sorted(self._data.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.write("\n")
        Path(tmp).replace(self.path)
