"""``meshplay tui`` as a process on a pseudo-terminal: it paints, and ``q`` quits; during a local
run ``q`` restores the screen at once and the command leaves no process behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.tui.pty_session import ALT_SCREEN_OFF, ALT_SCREEN_ON, PtySession

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) processes below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in {"Z", "X"}:
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in {"Z", "X"}:
            out.add(pid)
    return out


def test_tui_paints_the_lessons_and_quits_on_q(tmp_path: Path) -> None:
    tui = PtySession(
        PtySession.meshplay("tui", "--runners", "sim"), cwd=ROOT,
        env={"MESHPLAY_DATA_DIR": str(tmp_path)}, size=(80, 24),
    )  # fmt: skip
    try:
        tui.wait_for(ALT_SCREEN_ON, 60)
        tui.wait_for(b"Traces", 30)  # the tab bar: painted before the lessons are read
        tui.wait_for(b"Request routing", 60)  # then lesson 01, in the tree
        mark = len(tui.output)
        tui.type("q")
        tui.wait_for(ALT_SCREEN_OFF, 10, since=mark)
    finally:
        code = tui.finish(30)
    assert code == 0


@pytest.mark.envoy
@pytest.mark.slow
def test_q_during_a_local_run_restores_the_screen_at_once_and_stops_the_run(
    tmp_path: Path,
) -> None:
    env = {"MESHPLAY_DATA_DIR": str(tmp_path), "MESHPLAY_STATE_DIR": str(tmp_path)}
    tui = PtySession(
        PtySession.meshplay("tui", "--runners", "local", "--lesson", "01-request-routing"),
        cwd=ROOT, env=env, size=(100, 30),
    )  # fmt: skip
    try:
        tui.wait_for(ALT_SCREEN_ON, 60)
        tui.wait_for(b"Request routing", 60)
        tui.type("2")
        time.sleep(0.5)
        tui.type("r")
        tui.wait_for(b"running on local", 30)
        time.sleep(8)  # the mesh starts, traffic flows
        started = descendants(tui.proc.pid)
        assert len(started) > 5  # Envoys and services run
        mark = len(tui.output)
        tui.type("q")
        restored = tui.wait_for(ALT_SCREEN_OFF, 10, since=mark)
        tui.wait_for(b"meshplay: stopping the run of 01-request-routing on local", 10, since=mark)
    finally:
        code = tui.finish(60)
    assert code == 0
    assert restored < 1.0, restored  # measured 0.2-0.3 s on a loaded 2-core machine
    assert alive(started) == set(), "processes outlived meshplay tui"
