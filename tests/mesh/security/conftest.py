"""The repository root on ``sys.path`` (the tests share ``tests.mesh.security.harness``) and the
check that no Envoy a test started outlives its module."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster.conftest import children_of  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def no_process_outlives_the_module() -> Iterator[None]:
    """Every Envoy started by a test module is gone when the module ends."""
    before = children_of(os.getpid())
    yield
    left = children_of(os.getpid()) - before
    assert not left, f"processes outlived the tests: {sorted(left)}"
