"""Test-wide settings: a hypothesis profile that is thorough locally and bounded in CI, and the
grouping rule that lets ``bin/test`` run the suite on several pytest-xdist workers.

``HYPOTHESIS_PROFILE=deep`` runs 2,000 examples per property for a bug hunt.

Parallel runs (``pytest -n 2 --dist loadgroup``, what ``bin/test`` does) follow two rules, both
derived here from what a test uses, so a new test needs no list to be kept:

* tests that share a fixture wider than one test (module, class, package or session scope,
  defined by the project's tests; autouse ones excepted) run on the same worker, one after the
  other in file order, so state such a fixture carries from test to test (a tour's files, a
  running shop) is what it is in a serial run, and an expensive one is set up once;
* every test carrying a marker of :data:`ONE_AT_A_TIME` (it starts real Envoys or Chromium:
  processes whose timing the test measures), with whatever it shares a fixture with, joins one
  of :data:`LANES` groups (``real-processes``, or ``real-processes-0`` ...), so no more than
  ``LANES`` of them run at once, each lane one test at a time as in a serial run, while the
  remaining worker runs the simulator, unit and property tests.
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

LANES = int(os.environ.get("MESHPLAY_TEST_LANES", "1"))
"""How many of those may run at once: 1 (default) puts them all in one group; N > 1 spreads
them over N groups (``real-processes-0`` ..., e.g. 2 lanes with 3 workers): they mostly
wait on traffic at real time (a local mesh uses about a quarter of a core), so two lanes beside
one CPU-bound worker fit two cores; a timing-sensitive test then shares the machine with one
other real mesh."""

SOLO_WEIGHT = 10
_REAL_PROCESSES = "real-processes"
_SHARED_SCOPES = frozenset({"class", "module", "package", "session"})


def _shared_fixtures(item: pytest.Item) -> list[str]:
    """The fixtures wider than one test that ``item`` uses (the project's own, not autouse)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    keys = []
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        fixture = definitions[-1]
        # baseid "": a plugin's fixture (tmp_path_factory, ...), safe to have one per worker
        if fixture.scope in _SHARED_SCOPES and fixture.baseid and not fixture._autouse:
            keys.append(f"{fixture.baseid}::{fixture.argname}")
    return keys


def _weight(tests: list[pytest.Item]) -> int:
    """A rough cost of a component of real-process tests, to balance the lanes: a test on its
    own starts its processes itself (a local mesh takes tens of seconds with its traffic), a
    test sharing a fixture mostly reuses what the fixture started; ``slow`` ones cost more."""
    if len(tests) == 1:
        return SOLO_WEIGHT
    return sum(SOLO_WEIGHT if t.get_closest_marker("slow") else 1 for t in tests)


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

    # tests joined through shared fixtures form one component (union-find on fixture keys)
    for item in items:
        keys = [item.nodeid, *_shared_fixtures(item)]
        for key in keys[1:]:
            a, b = root(keys[0]), root(key)
            if a != b:
                parent[b] = a
    members: dict[str, list[pytest.Item]] = {}
    for item in items:
        members.setdefault(root(item.nodeid), []).append(item)
    lanes = [0] * max(1, LANES)
    for component, tests in members.items():  # in collection order
        if any(t.get_closest_marker(m) for t in tests for m in ONE_AT_A_TIME):
            if len(lanes) == 1:
                group = _REAL_PROCESSES
            else:  # to the least loaded lane
                lane = min(range(len(lanes)), key=lanes.__getitem__)
                lanes[lane] += _weight(tests)
                group = f"{_REAL_PROCESSES}-{lane}"
        elif len(tests) > 1 or _shared_fixtures(tests[0]):
            group = component
        else:
            continue
        for test in tests:
            test.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress that commands record (``meshplay run``, ``exercise check``) goes to a temporary
    folder, never the user's ``~/.local/share/meshplay``; a test may set its own."""
    if "MESHPLAY_DATA_DIR" not in os.environ:
        monkeypatch.setenv("MESHPLAY_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))
