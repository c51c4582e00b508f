"""Where a lesson's app is found: an ``apps/`` folder beside the lesson or above it,
``$MESHPLAY_APP_PATH``, meshplay's own apps, or ``--app``; and a message that says where it
looked when the app is nowhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError
from mesh.lesson import load_lesson
from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "01-request-routing"
APP = ROOT / "lessons" / "apps" / "ecommerce"


@pytest.fixture
def copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lesson 01 copied into a folder of its own, far from lessons/ (and from the cwd)."""
    monkeypatch.delenv("MESHPLAY_APP_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "mine" / "01-request-routing"
    shutil.copytree(LESSON, target)
    return target


def rename_app(lesson: Path, name: str) -> None:
    text = (lesson / "lesson.yaml").read_text()
    (lesson / "lesson.yaml").write_text(text.replace("app: ecommerce", f"app: {name}"))


def test_a_copied_lesson_still_finds_the_built_in_app(copied: Path) -> None:
    from mesh.lesson import app_search_path

    search = [p.resolve() for p in app_search_path(copied)]
    assert search[-1] == APP.parent.resolve()  # meshplay's own apps, searched last
    lesson = load_lesson(copied)
    # the built-in app, unless some apps/ecommerce above the copy (e.g. /tmp/apps) came first
    assert lesson.app.name == "ecommerce" and lesson.app.path.resolve().parent in search
    assert main(["explain", str(copied), "--request", "GET /products"]) == 0


def test_an_unknown_app_says_where_it_looked_and_how_to_point_at_one(
    copied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rename_app(copied, "shop")
    with pytest.raises(DiagnosticError) as caught:
        load_lesson(copied)
    text = "\n".join(d.message + " " + d.hint for d in caught.value.diagnostics)
    assert 'app "shop" not found' in text
    assert str(ROOT / "lessons" / "apps") in text  # where it looked
    assert "--app DIR" in text and "$MESHPLAY_APP_PATH (not set)" in text
    assert "apps found: benchmark, bookinfo, ecommerce, helloworld, httpbin" in text
    assert main(["explain", str(copied), "--request", "GET /products"]) == 2
    assert "--app DIR" in capsys.readouterr().err


def test_app_flag_and_search_path_point_at_an_app(
    copied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rename_app(copied, "shop")
    elsewhere = tmp_path / "my-apps"
    shutil.copytree(APP, elsewhere / "shop")
    # --app takes the folder, or a name looked up like lesson.yaml's app
    assert load_lesson(copied, app=elsewhere / "shop").app.path == elsewhere / "shop"
    assert load_lesson(copied, app="ecommerce").app.name == "ecommerce"
    assert main(["explain", str(copied), "--app", str(elsewhere / "shop"),
                 "--request", "GET /products"]) == 0  # fmt: skip
    monkeypatch.setenv("MESHPLAY_APP_PATH", str(elsewhere))
    assert load_lesson(copied).app.path == elsewhere / "shop"


def test_apps_beside_the_lesson_come_first(copied: Path) -> None:
    local = copied.parent / "apps" / "ecommerce"
    shutil.copytree(APP, local)
    assert load_lesson(copied).app.path == local
