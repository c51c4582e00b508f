"""The simulator's connection pools against real Envoy 1.40 (issue 13 item 4).

Istio's circuit-breaking task (``maxConnections: 1``, ``http1MaxPendingRequests: 1``,
``maxRequestsPerConnection: 1``; ``fortio load -c 2 -n 20`` and ``-c 3 -n 30``) runs trial after
trial on the local runner (real sidecars, the real product service at a known latency) and on the
sim runner (a fresh world and seed per trial). With three clients the mean share of 503 ``UO`` per
trial must agree within the sampling error of both; with two, real Envoy's share depends on the
machine's load, so both must only lie between none and the three-client share; and the
comparison must tell a differently sized pool apart (room for two pending requests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
    run_local,
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
    run = run_local(lesson, tmp)
    return {c: figure(s) for c, s in shares(run).items()}


def test_uo_shares_fall_where_real_envoy_puts_them(real: dict[int, Figure], tmp_path: Path) -> None:
    """Three clients overflow almost always, on both, within sampling error. Two clients
    overflow on a share that depends on the machine: real Envoy gave 0.18 +- 0.015 at load
    average 17 (where the sim's handshake timing was fitted: 0.174) and 0.48 +- 0.006 on an idle
    machine, so CI checks what holds at any load - two clients overflow on some requests, on
    both, and fewer than three - and ``benchmarks/bench_pools.py`` reports the figures side by
    side."""
    modelled = sim(tmp_path, istio_task(SIM_TRIALS))
    assert agree(modelled[3], real[3], COUNT[3]), f"-c 3: sim {modelled[3].describe()} vs {real[3]}"
    for side, two, three in (
        ("sim", modelled[2].mean, modelled[3].mean),
        ("real", real[2].mean, real[3].mean),
    ):
        assert 0.05 < two < three, f"{side}: -c 2 {two:.3f}, -c 3 {three:.3f}"


def test_the_comparison_tells_a_differently_sized_pool_apart(
    real: dict[int, Figure], tmp_path: Path
) -> None:
    # two pending requests allowed: two clients never overflow, three rarely (sim 0.00 and 0.16;
    # real Envoy with that pool gave 0.00 and 0.21 +- 0.025)
    roomier = istio_task(SIM_TRIALS // 2, limits=Limits(http1_max_pending_requests=2))
    for clients, s in sim(tmp_path, roomier).items():
        assert not agree(s, real[clients], COUNT[clients]), (
            f"-c {clients}: pending 2: sim {s.describe()} vs real {real[clients]}"
        )
