"""``meshplay lessons``: which runners each lesson runs on, which of them can run here, and
whole titles when the terminal has room."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
LESSONS = str(ROOT / "lessons")


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This machine has no cluster: no $KUBECONFIG, no ~/.kube/config."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line[:2].isdigit()}


def test_runs_on_and_runs_here_are_separate_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["lessons", "--root", LESSONS]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert header.split()[:6] == ["LESSON", "RUNS", "ON", "RUNS", "HERE", "PASSED"]
    table = rows(out)
    # 16, observability (17-19), service communication (20), Sidecar scoping (21), set-up (22),
    # egress gateway and TLS origination (23), multi-cluster (24-26), performance tuning (27)
    assert len(table) == 27
    # lesson 15 lists sim and kube; without a cluster only sim can run it here
    assert "sim, kube  " in table["15-network-policy"]
    assert table["15-network-policy"].split("sim, kube", 1)[1].split()[0] == "sim"
    # kube is listed for lesson 01 but is not offered as runnable here
    lesson01 = table["01-request-routing"]
    assert "sim, local, kube  sim, local  " in lesson01
    assert "kube (" in out.splitlines()[-1]  # the footer says why kube is not here


def test_kube_needs_a_kubeconfig_even_once_built() -> None:
    from playground.commands.lessons import runners_here

    why = runners_here()
    assert why["sim"] == ""
    assert why["kube"] != ""  # not built yet, or built without a kubeconfig


def test_titles_are_whole_in_a_wide_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    main(["lessons", "--root", LESSONS])
    table = rows(capsys.readouterr().out)
    assert table["01-request-routing"].endswith(
        "Request routing with VirtualService and DestinationRule"
    )
    assert "consistent hash with one slow pod" in table["04-load-balancing"]
    assert all(len(line) <= 160 for line in table.values())


def test_titles_are_cut_to_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    main(["lessons", "--root", LESSONS])
    table = rows(capsys.readouterr().out)
    assert all(len(line) <= 100 for line in table.values())
    assert table["04-load-balancing"].endswith("\u2026")


def test_the_path_is_listed_phase_by_phase_with_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Phases in path order, each with its lessons then its exercises; a lesson run whole on a
    runner (``meshplay run``) shows that runner under PASSED ON."""
    monkeypatch.setenv("MESHPLAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["run", str(ROOT / "lessons" / "01-request-routing"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["lessons", "--root", LESSONS]) == 0
    out = capsys.readouterr().out
    phases = [line for line in out.splitlines() if line.startswith("# ")]
    assert [p.split(" - ")[0] for p in phases] == [
        "# Foundation", "# Traffic management", "# Security", "# Advanced",
        "# Istio's tasks on Bookinfo",
    ]  # fmt: skip
    foundation = out.split("# Foundation", 1)[1].split("# Traffic management", 1)[0]
    assert foundation.index("01-request-routing") < foundation.index("exercise pin-product-v1")
    assert re.split(r"\s{2,}", rows(out)["01-request-routing"])[3] == "sim"
    assert re.split(r"\s{2,}", rows(out)["02-traffic-shifting"])[3] == "-"
    # an exercise row says where its check runs, where it can run here, and where it passed
    front_door = next(line for line in out.splitlines() if "exercise open-the-front-door" in line)
    assert re.split(r"\s{2,}", front_door)[1:4] == ["sim, local, kube", "sim, local", "-"]


def test_a_path_naming_a_missing_lesson_is_a_positioned_mpy6002(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A typo in path.yaml is reported at its line and column, with a suggestion."""
    root = tmp_path / "lessons"
    (root / "01-request-routing").mkdir(parents=True)
    for name in ("lesson.yaml", "explanation.md"):
        src = ROOT / "lessons" / "01-request-routing" / name
        (root / "01-request-routing" / name).write_text(src.read_text())
    (root / "01-request-routing" / "istio").symlink_to(
        ROOT / "lessons" / "01-request-routing" / "istio"
    )
    (root / "path.yaml").write_text(
        "phases:\n  - id: foundation\n    title: Foundation\n    lessons: [01-request-routin]\n"
    )
    assert main(["lessons", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'path.yaml'}:4:15: error[MPY6002]" in err
    assert "01-request-routing" in err  # did you mean


def test_every_lesson_on_the_path_names_its_istio_page_and_version() -> None:
    """A learner can read the page a lesson mirrors; the version says which istiod it follows."""
    from mesh.lesson import find_lessons, load_lesson
    from mesh.path import path_of

    root = ROOT / "lessons"
    names = [p.name for p in find_lessons(root)]
    path = path_of(root, names)
    assert path is not None
    for name in path.lessons:
        spec = load_lesson(root / name).spec
        assert spec.mirrors.startswith("https://"), name
        assert spec.istio, name
