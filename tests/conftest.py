"""Test-wide settings: a hypothesis profile that is thorough locally and bounded in CI.

``HYPOTHESIS_PROFILE=deep`` runs 2,000 examples per property for a bug hunt.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress that commands record (``meshplay run``, ``exercise check``) goes to a temporary
    folder, never the user's ``~/.local/share/meshplay``; a test may set its own."""
    if "MESHPLAY_DATA_DIR" not in os.environ:
        monkeypatch.setenv("MESHPLAY_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))
