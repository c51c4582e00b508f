"""The bad-input corpus: every diagnostic code, rendered exactly as users see it.

Each ``testdata/diagnostics/<code>-<case>.yaml`` is analyzed together with ``_context.yaml`` (a
small app) and must produce exactly the text in the matching ``.diag`` file; each lesson case under
``testdata/lessons/`` must fail to load with the text in its ``expected.diag``. Refresh on purpose
with ``REFRESH_GOLDEN=1 pytest tests/mesh/test_diagnostics_corpus.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mesh.diagnostics import CATALOG, DiagnosticError, render
from mesh.lesson import load_lesson
from playground.commands.analyze import analyze_paths

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path("tests/mesh/testdata/diagnostics")
LESSONS = Path("tests/mesh/testdata/lessons")
REFRESH = os.environ.get("REFRESH_GOLDEN") == "1"

CASES = sorted(p.name for p in (ROOT / CORPUS).glob("*.yaml") if not p.name.startswith("_"))
LESSON_CASES = sorted(
    p.name for p in (ROOT / LESSONS).iterdir() if p.is_dir() and p.name.startswith("mpy")
)


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _compare(actual: str, golden: Path) -> None:
    if REFRESH or not golden.exists():
        golden.write_text(actual, encoding="utf-8")
        if not REFRESH:
            pytest.fail(f"{golden} did not exist; wrote it - review and commit it")
    assert actual == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_renders_pinned_diagnostics(case: str) -> None:
    """Each bad input yields its code(s) at the right file:line:col with message, path and hint."""
    path = CORPUS / case
    found = [
        d for d in analyze_paths([str(CORPUS / "_context.yaml"), str(path)]) if d.file == str(path)
    ]
    code = case.split("-", 1)[0].upper()
    assert any(d.code == code for d in found), f"{case} should produce {code}"
    _compare(render(found) + "\n", path.with_suffix(".diag"))


@pytest.mark.parametrize("case", LESSON_CASES)
def test_bad_lesson_renders_pinned_diagnostics(case: str) -> None:
    """Broken lessons fail to load with every problem reported at once."""
    with pytest.raises(DiagnosticError) as info:
        load_lesson(LESSONS / case)
    code = case.split("-", 1)[0].upper()
    assert any(d.code == code for d in info.value.diagnostics)
    _compare(render(info.value.diagnostics) + "\n", LESSONS / case / "expected.diag")


def test_good_lesson_loads_clean() -> None:
    """The control case: the same app and format without mistakes loads with no diagnostics."""
    lesson = load_lesson(LESSONS / "good")
    assert lesson.title == "A lesson that loads"
    assert lesson.diagnostics == ()


def test_every_catalog_code_is_covered_by_the_corpus() -> None:
    """A code without a bad-input case is a code nobody has seen rendered."""
    text = "".join(p.read_text() for p in (ROOT / CORPUS).glob("*.diag"))
    text += "".join(p.read_text() for p in (ROOT / LESSONS).glob("*/expected.diag"))
    # runner codes (MPY5xxx) need a running Envoy: their pinned text lives in the real-Envoy tests
    text += "".join(p.read_text() for p in (ROOT / "tests" / "cluster" / "local").glob("test_*.py"))
    # exercise codes (MPY6xxx) are pinned where exercises are tested
    text += (ROOT / "tests" / "playground" / "test_exercise.py").read_text()
    text += (ROOT / "tests" / "playground" / "test_lessons_cli.py").read_text()
    seen = set(re.findall(r"\[((?:IST|MPY)\d{4})\]", text))
    assert sorted(set(CATALOG) - seen) == []


def test_every_catalog_code_is_documented() -> None:
    """docs/diagnostics.md has a section per code, with the catalog's name."""
    doc = (ROOT / "docs" / "diagnostics.md").read_text()
    for code, entry in CATALOG.items():
        assert f"### {code} {entry.name}" in doc, f"{code} missing from docs/diagnostics.md"
