"""A step's ``compare`` tolerances in lesson.yaml: read as written, out-of-range values rejected at
their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError
from mesh.lesson import CompareTolerance, load_lesson

APPS = Path(__file__).parent / "testdata" / "lessons" / "apps"


def lesson(tmp_path: Path, compare: str) -> Path:
    (tmp_path / "apps").symlink_to(APPS)
    folder = tmp_path / "hash"
    folder.mkdir()
    (folder / "lesson.yaml").write_text(
        f"title: Hash\napp: mini\nsteps:\n  - name: pinned\n    compare: {compare}\n",
        encoding="utf-8",
    )
    return folder


def test_a_steps_compare_tolerance_is_read_with_its_reason(tmp_path: Path) -> None:
    loaded = load_lesson(lesson(tmp_path, "{share: 0.5, why: users hash to pods by address}"))
    assert loaded.steps[0].compare == CompareTolerance(
        share=0.5, why="users hash to pods by address"
    )


def test_a_tolerance_outside_0_1_is_an_error_at_its_key(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        load_lesson(lesson(tmp_path, "{share: 50}"))
    text = "\n".join(d.render() for d in err.value.diagnostics)
    assert "lesson.yaml:5:" in text and "error[MPY4001]" in text
    assert "compare.share is a tolerance on a proportion: 0..1, got 50" in text
