"""``meshplay route-check --envoy``: real Envoy 1.40 routes the project's route corpus exactly as
meshplay's matcher does.

Every test of tests/playground/testdata/route_check runs on one real Envoy (the route
configuration on a listener, each route instrumented to report what it matched, an echo server
behind every cluster); the run must report zero disagreement. Only the tests whose request meets
a ``runtime_fraction`` strictly between 0 and 100 % are not comparable (Envoy draws its own
random value); they are counted so that the comparison cannot shrink silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.cli import main
from playground.route_check_envoy import compare_with_envoy
from playground.route_tests import load_route_config, load_tests, observe

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "playground" / "testdata" / "route_check"


@pytest.mark.parametrize(
    ("config", "tests", "compared", "not_comparable"),
    [
        ("basic.routes.yaml", "basic.tests.yaml", 43, 0),
        ("actions.routes.json", "actions.tests.json", 31, 2),
    ],
)
def test_real_envoy_agrees_with_meshplay_on_the_route_corpus(
    config: str, tests: str, compared: int, not_comparable: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["route-check", str(DATA / config), str(DATA / tests), "--envoy"])
    out, err = capsys.readouterr()
    assert err == ""
    assert code == 0
    suffix = f" ({not_comparable} not comparable)" if not_comparable else ""
    assert f"Envoy agrees with meshplay on {compared}/{compared} tests{suffix}" in out


def test_a_wrong_matcher_would_be_caught(tmp_path: Path) -> None:
    # the comparison is not vacuous: feed it meshplay answers for another configuration (the
    # weighted split reversed) and Envoy disagrees on exactly the weighted tests
    table, rc, found = load_route_config(str(DATA / "basic.routes.yaml"))
    assert table is not None and not found
    text = (DATA / "basic.routes.yaml").read_text()
    altered = tmp_path / "altered.routes.yaml"
    altered.write_text(text.replace("{name: w-a, weight: 30}", "{name: w-a, weight: 60}"))
    wrong, _, _ = load_route_config(str(altered))
    assert wrong is not None
    tests, _ = load_tests(str(DATA / "basic.tests.yaml"))
    observed = [observe(wrong, t)[0] for t in tests]
    disagreements, skipped = compare_with_envoy(table, rc, tests, observed)
    assert skipped == []
    assert [name for name, _ in disagreements] == [
        "weighted clusters, boundary random value",  # 30 of 130 is w-a, not w-b
        "weighted clusters, random value wraps around the total",  # 129 of 130 is w-b
    ]
