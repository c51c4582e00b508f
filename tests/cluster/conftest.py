"""Shared set-up for the cluster tests: the repository root on ``sys.path`` (services run as
``python -m services.<pkg>`` from it) and the check that no process a test started survives it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] not in {"Z", "X"} and int(fields[1]) == pid:
            out.add(int(entry.name))
    return out


@pytest.fixture(autouse=True, scope="module")
def no_process_outlives_the_module() -> Iterator[None]:
    """Every child process started by a test module is gone when the module ends."""
    before = children_of(os.getpid())
    yield
    left = children_of(os.getpid()) - before
    assert not left, f"processes outlived the tests: {sorted(left)}"
