"""``meshplay route-check``: Envoy's router_check_tool test format on meshplay's route matcher.

The corpus under testdata/route_check is the project's own route tests (every route semantic the
simulator models); it must pass on the sim with every route covered. Failing tests print as
Envoy's tool prints them (exit 1); inputs Envoy would refuse, or that meshplay does not model,
are positioned diagnostics (exit 2), pinned in tests/mesh/testdata/diagnostics. Real Envoy's
agreement on the same corpus: tests/cluster/local/test_route_check_envoy.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("tests/playground/testdata/route_check")
DIAG = ROOT / "tests" / "mesh" / "testdata" / "diagnostics"
CORPUS = [
    ("basic.routes.yaml", "basic.tests.yaml", 43, "100%", ""),
    # the runtime_fraction 0 route never matches: no test can cover it
    ("actions.routes.json", "actions.tests.json", 33, "96.1538%", "actions/#22 (prefix /rt-never)"),
]
REFRESH = os.environ.get("REFRESH_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize(("config", "tests", "count", "coverage", "untested"), CORPUS)
def test_the_route_corpus_passes_on_the_sim_with_every_reachable_route_covered(
    config: str, tests: str, count: int, coverage: str, untested: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = main(["route-check", str(DATA / config), str(DATA / tests), "--coverage"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert f"{count}/{count} tests pass" in out
    assert f"Current route coverage: {coverage}" in out
    assert out.rstrip().endswith(untested)


def test_failures_are_printed_like_router_check_tool_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "route-check",
            str(DATA / "bad/ok.routes.yaml"),
            str(DATA / "bad/failing.tests.yaml"),
            "--details",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        "wrong cluster",
        "expected: [other], actual: [default], test type: cluster_name",
        "header expectations",
        "expected: [x-missing: 1], actual: [x-missing: NULL], "
        "test type: request_header_matches.string_match.exact",
        "expected: [has(x-also-missing):true], actual: [has(x-also-missing):false], "
        "test type: request_header_matches.present_match",
    ]
    assert out.splitlines()[:2] == ["passing", "1/3 tests pass on meshplay's route matcher"]


def test_a_changed_expectation_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the corpus is not vacuous: one wrong expected cluster is caught
    text = (ROOT / DATA / "basic.tests.yaml").read_text()
    broken = tmp_path / "broken.tests.yaml"
    broken.write_text(
        text.replace("validate: {cluster_name: w-b}", "validate: {cluster_name: w-a}")
    )
    assert main(["route-check", str(DATA / "basic.routes.yaml"), str(broken)]) == 1
    assert "expected: [w-a], actual: [w-b], test type: cluster_name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "tests", "golden"),
    [
        ("invalid.routes.yaml", "ok.tests.yaml", "route-check-mpy1101.diag"),
        ("not-modelled.routes.yaml", "ok.tests.yaml", "route-check-mpy2101.diag"),
        ("ok.routes.yaml", "schema.tests.yaml", "route-check-mpy1101-tests.diag"),
    ],
)
def test_bad_input_is_a_positioned_diagnostic_and_exit_2(
    config: str, tests: str, golden: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["route-check", str(DATA / "bad" / config), str(DATA / "bad" / tests)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    path = DIAG / golden
    if REFRESH or not path.exists():
        path.write_text(err, encoding="utf-8")
        if not REFRESH:
            pytest.fail(f"{path} did not exist; wrote it - review and commit it")
    assert err == path.read_text(encoding="utf-8")
