"""docs/troubleshooting.md stays true: every concrete command it quotes (a real lesson or app, no
placeholders) runs and answers (exit 0, or 1 where the answer is "no", e.g. authz-check DENY;
the one refusal it quotes on purpose exits 2 with the message it quotes), every diagnostic code
it names exists in the catalog, and every lesson and exercise it sends the reader to practise on
exists - one for each of the four problems."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mesh.diagnostics import CATALOG
from mesh.exercise import find_exercises
from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
REFUSED = {
    # commands the guide quotes for their refusal: the message it quotes with them
    "proxy-config clusters deploy/postgres lessons/22-setting-up-the-mesh": "has no sidecar",
}
SECTIONS = (
    "Sidecar injection failures", "Routing problems", "mTLS and certificate issues",
    "Performance degradation",
)  # fmt: skip
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
    if command in REFUSED:
        assert code == 2 and REFUSED[command] in out.err, out.err[-2000:]
        assert REFUSED[command] in DOC
        return
    assert code in (0, 1) if argv[0] == "authz-check" else code in (0, 79), out.err[-2000:]
    assert out.out.strip() or out.err.strip()


def test_every_code_it_names_exists() -> None:
    named = set(re.findall(r"\b(IST\d{4}|MPY\d{4})\b", DOC))
    assert named and sorted(named - set(CATALOG)) == []


def _section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _without_parentheses(text: str) -> str:
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    return text


@pytest.mark.parametrize("title", SECTIONS)
def test_each_problem_has_lessons_or_exercises_that_exist_to_practise_on(title: str) -> None:
    """The issue's four common problems each end with a lesson or exercise that causes the
    problem on purpose; lesson numbers (``05``, ``01-03``) and exercise ids must exist."""
    lessons = {p.name[:2] for p in (ROOT / "lessons").iterdir() if p.name[:2].isdigit()}
    exercises = {p.name for p in find_exercises(ROOT / "lessons" / "exercises")}
    practise = _section(title).split("**Practise on.**", 1)[1]
    named_lessons: set[str] = set()
    for first, last in re.findall(r"\b(\d{2})(?:-(\d{2}))?\b", _without_parentheses(practise)):
        named_lessons |= {f"{n:02d}" for n in range(int(first), int(last or first) + 1)}
    named_exercises = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", practise))
    assert named_lessons or named_exercises, title
    assert sorted(named_lessons - lessons) == [], title
    assert sorted(named_exercises - exercises) == [], title


def test_every_lesson_folder_it_names_exists() -> None:
    named = set(re.findall(r"\blessons/([a-z0-9-]+)", DOC))
    assert named and sorted(n for n in named if not (ROOT / "lessons" / n).is_dir()) == []
