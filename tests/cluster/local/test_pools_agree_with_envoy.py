"""The simulator's connection pools against real Envoy 1.40 (issue 13 item 4).

Istio's circuit-breaking task (``maxConnections: 1``, ``http1MaxPendingRequests: 1``,
``maxRequestsPerConnection: 1``; ``fortio load -c 2 -n 20`` and ``-c 3 -n 30``) runs trial after
trial on the local runner (real sidecars, the real product service at a known latency) and on the
sim runner (a fresh world and seed per trial). The mean share of 503 ``UO`` per trial must agree
within the sampling error of both; and the same comparison must tell a differently sized pool
apart (kept-alive connections overflow only at a trial's first request).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.local.runner import LocalRunner
from mesh.lesson import load_lesson
from mesh.runner import RunOptions
from sim import SimRunner
from tests.cluster.local.pools_scenario import (
    Figure,
    Limits,
    Scenario,
    Summary,
    agree,
    figure,
    istio_task,
    summarize,
    trial_uo_shares,
    write_lesson,
)

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

REAL_TRIALS = 16
"""Trials per client count on real Envoy (one mesh start, about a second per trial)."""
SIM_TRIALS = 80
COUNT = {2: 20, 3: 30}


def shares(run: object) -> dict[int, Summary]:
    return {c: summarize(s) for c, s in trial_uo_shares(run).items()}  # type: ignore[arg-type]


def sim(tmp: Path, scenario: Scenario) -> dict[int, Summary]:
    lesson = load_lesson(write_lesson(tmp, scenario))
    return shares(SimRunner().run(lesson, RunOptions(seed=7)))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Figure]:
    tmp = tmp_path_factory.mktemp("pools")
    lesson = load_lesson(write_lesson(tmp / "lesson", istio_task(REAL_TRIALS)))
    run = LocalRunner(tmp / "mesh").run(lesson, RunOptions(seed=1))
    return {c: figure(s) for c, s in shares(run).items()}


def test_uo_share_matches_real_envoy(real: dict[int, Figure], tmp_path: Path) -> None:
    modelled = sim(tmp_path, istio_task(SIM_TRIALS))
    for clients, measured in real.items():
        s = modelled[clients]
        assert agree(s, measured, COUNT[clients]), (
            f"-c {clients}: sim {s.describe()} vs real {measured}"
        )


def test_the_comparison_tells_kept_alive_connections_apart(
    real: dict[int, Figure], tmp_path: Path
) -> None:
    keep_alive = istio_task(SIM_TRIALS // 2, limits=Limits(max_requests_per_connection=0))
    s = sim(tmp_path, keep_alive)[2]
    assert not agree(s, real[2], COUNT[2]), f"kept alive: sim {s.describe()} vs real {real[2]}"
