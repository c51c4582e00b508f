"""docs/troubleshooting.md stays true: every concrete command it quotes (a real lesson or app, no
placeholders) runs and answers (exit 0, or 1 where the answer is "no", e.g. authz-check DENY),
and every diagnostic code it names exists in the catalog."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mesh.diagnostics import CATALOG
from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"\b(LESSON|PATH|POD|ID|W|S|K|PROMQL|LESSON_OR_FILES)\b|'\.\.\.'")


def _commands() -> list[str]:
    quoted = (" ".join(m.split()) for m in re.findall(r"`meshplay ([^`]+)`", DOC))
    return sorted({c for c in quoted if "lessons/" in c and not PLACEHOLDER.search(c)})


COMMANDS = _commands()


def test_the_guide_quotes_runnable_commands() -> None:
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("command", COMMANDS)
def test_a_quoted_command_runs(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    argv = shlex.split(command)
    code = main(argv)
    out = capsys.readouterr()
    assert code in (0, 1) if argv[0] == "authz-check" else code in (0, 79), out.err[-2000:]
    assert out.out.strip() or out.err.strip()


def test_every_code_it_names_exists() -> None:
    named = set(re.findall(r"\b(IST\d{4}|MPY\d{4})\b", DOC))
    assert named and sorted(named - set(CATALOG)) == []
