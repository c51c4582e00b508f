"""Fixtures for the TUI tests: the repository's lessons, a private data dir, app builders."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mesh.runner import Runner
from tests.tui.fakes import FakeRunner
from tui.app import MeshplayApp

REPO = Path(__file__).resolve().parents[2]
LESSONS = REPO / "lessons"


@pytest.fixture(scope="session")
def lesson01_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lessons folder with lesson 01 and its app only, so views and snapshots do not change
    when other lessons are added."""
    root = tmp_path_factory.mktemp("lessons01") / "lessons"
    shutil.copytree(LESSONS / "apps", root / "apps")
    shutil.copytree(LESSONS / "01-request-routing", root / "01-request-routing")
    return root


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Progress goes to a temporary directory, never the user's."""
    folder = tmp_path / "data"
    monkeypatch.setenv("MESHPLAY_DATA_DIR", str(folder))
    return folder


def fake_factories(delay_s: float = 0.0) -> dict[str, Callable[[], Runner]]:
    """A "sim" and a "local" fake that differ in latency and failures, as sim and real do."""
    return {
        "sim": lambda: FakeRunner("sim", delay_s=delay_s),
        "local": lambda: FakeRunner("local", delay_s=delay_s, latency_ms=6.0, fail_every=10),
    }


@pytest.fixture
def make_app(data_dir: Path, lesson01_root: Path) -> Callable[..., MeshplayApp]:
    """Build the app on the repository's lessons with the given runner factories."""

    def build(
        factories: Mapping[str, Callable[[], Runner]] | None = None,
        root: Path | None = None,
        **kwargs: object,
    ) -> MeshplayApp:
        return MeshplayApp(
            root or lesson01_root,
            factories or fake_factories(),
            data_dir,
            **kwargs,  # type: ignore[arg-type]
        )  # type: ignore[arg-type]

    return build
