"""``meshplay authz-check`` predicts what the real Envoy sidecars decide, request by request.

Lesson 12 (HTTP authorization) runs on the local runner: real Envoy sidecars with the translated
RBAC filters in front of the real product service. For every step and every request of the
step's traffic mix, ``authz-check`` (on the lesson's state after that step) names a verdict per
destination pod; every request the real product sidecars logged must have been decided that way:
denied means Envoy's RBAC filter answered 403 itself (details ``rbac_access_denied...``), allowed
means the request went through to the app (whatever the app then answered).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from cluster.local import LocalRunner
from mesh.lesson import load_lesson
from mesh.records import Reporter
from mesh.runner import RunOptions
from mesh.topology import build_topology
from playground.commands import authz_check

pytestmark = pytest.mark.envoy

LESSON = Path(__file__).resolve().parents[3] / "lessons" / "12-http-authorization"
TIME_SCALE = float(os.environ.get("MESHPLAY_LOCAL_TIME_SCALE", "0.7"))


def _authz_check(*argv: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser()
    authz_check.register(parser.add_subparsers())
    args = parser.parse_args(["authz-check", *argv, "-o", "json"])
    args.handler(args)
    verdicts: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return verdicts


def test_every_request_real_envoy_decided_matches_authz_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lesson = load_lesson(LESSON)
    workload_of = {p.name: p.workload for p in build_topology(lesson.app.resources).pods}
    run = LocalRunner(tmp_path, time_scale=TIME_SCALE).run(lesson, RunOptions(seed=1))
    compared = 0
    for result in run.steps:
        traffic = lesson.traffic_of(result.step)
        expected: dict[tuple[str, str, str], str] = {}
        for spec in traffic.requests:
            for v in _authz_check(
                str(LESSON), "--step", str(result.index + 1), "--from", traffic.from_,
                "--to", traffic.to, "--request", f"{spec.method} {spec.path}", capsys=capsys,
            ):  # fmt: skip
                decision = "allow" if v["allowed"] else "deny"
                expected[(workload_of[str(v["pod"])], spec.method, spec.path)] = decision
        seen: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for r in result.records:
            if r.reporter is Reporter.DESTINATION and r.destination_app == traffic.to:
                rbac = r.response_code == 403 and r.response_code_details.startswith("rbac_")
                key = (r.destination_workload, r.method, r.path.split("?", 1)[0])
                seen[key].add("deny" if rbac else "allow")
        assert seen, f"step {result.index + 1}: the real sidecars logged nothing"
        for key, decisions in seen.items():
            assert decisions == {expected[key]}, (
                f"step {result.index + 1} {key}: Envoy decided {sorted(decisions)}, "
                f"authz-check says {expected[key]}"
            )
            compared += 1
    assert compared >= 8  # every step, both product versions, each request of the mix


def test_network_policy_lesson_is_refused_with_the_reason() -> None:
    """Without a CNI nothing enforces NetworkPolicy on 127.0.0.1: the runner says so up front."""
    from mesh.runner import RunnerError

    lesson = load_lesson(LESSON.parent / "15-network-policy")
    with pytest.raises(RunnerError, match=r"NetworkPolicy shop/.* needs a CNI"):
        LocalRunner().run(lesson, RunOptions(seed=1))


def test_tcp_traffic_lesson_is_refused_with_the_reason() -> None:
    """The local load generator is HTTP only: a TCP step is refused before anything starts."""
    from mesh.runner import RunnerError

    lesson = load_lesson(LESSON.parent / "16-egress-registry-only")
    with pytest.raises(RunnerError, match=r'step 1 ".*": protocol: tcp traffic is not carried'):
        LocalRunner().run(lesson, RunOptions(seed=1))
