"""``meshplay authz-check`` and the simulator decide every request of lesson 12 the same way.

For each step, each entry of the step's traffic mix is put to ``authz-check`` (the lesson state
after that step, the traffic's source and destination, ``-o json``: one verdict per destination
pod); the simulator runs the same step, and every request its server sidecars logged must have
the status the verdict for that pod names (200 through to the app, 403 from RBAC).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import pytest

from mesh.lesson import load_lesson
from mesh.records import Reporter
from mesh.runner import RunOptions
from mesh.topology import build_topology
from playground.commands import authz_check
from sim import SimRunner

LESSON = Path(__file__).resolve().parents[2] / "lessons" / "12-http-authorization"


def _authz_check(*argv: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser()
    authz_check.register(parser.add_subparsers())
    args = parser.parse_args(["authz-check", *argv, "-o", "json"])
    args.handler(args)
    verdicts: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return verdicts


def test_every_request_of_lesson_12_gets_the_verdict_authz_check_gives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lesson = load_lesson(LESSON)
    pod_at = {f"{p.address}:8080": p.name for p in build_topology(lesson.app.resources).pods}
    run = SimRunner().run(lesson, RunOptions(seed=3))
    compared = 0
    for result in run.steps:
        traffic = lesson.traffic_of(result.step)
        expected: dict[tuple[str, str, str], int] = {}
        for spec in traffic.requests:
            request = f"{spec.method} {spec.path}"
            for v in _authz_check(
                str(LESSON), "--step", str(result.index + 1), "--from", traffic.from_,
                "--to", traffic.to, "--request", request, capsys=capsys,
            ):  # fmt: skip
                status = 200 if v["allowed"] else int(str(v["status"]))
                expected[(str(v["pod"]), spec.method, spec.path)] = status
        by_pod: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        for r in result.records:
            if r.reporter is Reporter.DESTINATION and r.destination_app == traffic.to:
                # upstream_host of a server-side record is the pod's own inbound address
                by_pod[(pod_at[r.upstream_host], r.method, r.path)].add(r.response_code)
        assert by_pod, f"step {result.index + 1}: no server-side records"
        for key, codes in by_pod.items():
            assert codes == {expected[key]}, (
                f"step {result.index + 1} {key}: sim answered {sorted(codes)}, "
                f"authz-check says {expected[key]}"
            )
            compared += 1
    assert compared >= 8  # every step, both product pods, the requests each step sends
