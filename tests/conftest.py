"""Test-wide settings: a hypothesis profile that is thorough locally and bounded in CI, and the
grouping rule that lets ``bin/test`` run the suite on two pytest-xdist workers.

``HYPOTHESIS_PROFILE=deep`` runs 2,000 examples per property for a bug hunt.

Parallel runs (``pytest -n 2 --dist loadgroup``, what ``bin/test`` does) follow two rules, both
derived here from what a test uses, so a new test needs no list to be kept:

* every test carrying a marker of :data:`ONE_AT_A_TIME` (it starts real Envoys or Chromium:
  processes whose timing the test measures) joins the ``real-processes`` group, so those run
  one at a time on one worker, as in a serial run, while the other worker runs the simulator,
  unit and property tests;
* tests that share a fixture wider than one test (module, class, package or session scope,
  defined by the project's tests; autouse ones excepted) run on the same worker, one after the
  other in file order, so state such a fixture carries from test to test (a tour's files, a
  running shop) is what it is in a serial run, and an expensive one is set up once.

The two rules are joined: tests linked through a shared fixture or the group end up in one group.
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


ONE_AT_A_TIME = ("envoy", "chromium")
"""Markers of tests that run real Envoys (a local mesh, or single sidecars) or a real browser:
processes whose timing the tests measure, and which a second one beside them would slow."""

_REAL_PROCESSES = "real-processes"
_SHARED_SCOPES = frozenset({"class", "module", "package", "session"})


def _group_keys(item: pytest.Item) -> list[str]:
    """What ties ``item`` to other tests: the real-processes group, shared fixtures."""
    keys = [_REAL_PROCESSES] if any(item.get_closest_marker(m) for m in ONE_AT_A_TIME) else []
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return keys
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        fixture = definitions[-1]
        # baseid "": a plugin's fixture (tmp_path_factory, ...), safe to have one per worker
        if fixture.scope in _SHARED_SCOPES and fixture.baseid and not fixture._autouse:
            keys.append(f"{fixture.baseid}::{fixture.argname}")
    return keys


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test's xdist group (see the module docstring); a no-op without xdist."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    tied = [(item, _group_keys(item)) for item in items]
    for _item, keys in tied:
        for key in keys[1:]:
            a, b = root(keys[0]), root(key)
            if a != b:  # the real-processes group stays the root of whatever joins it
                parent[a if b == _REAL_PROCESSES else b] = b if b == _REAL_PROCESSES else a
    real = root(_REAL_PROCESSES)
    for item, keys in tied:
        if keys:
            group = root(keys[0])
            item.add_marker(pytest.mark.xdist_group(_REAL_PROCESSES if group == real else group))


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress that commands record (``meshplay run``, ``exercise check``) goes to a temporary
    folder, never the user's ``~/.local/share/meshplay``; a test may set its own."""
    if "MESHPLAY_DATA_DIR" not in os.environ:
        monkeypatch.setenv("MESHPLAY_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))
