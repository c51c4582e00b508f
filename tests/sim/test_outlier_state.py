"""Outlier detection as a long-running Envoy keeps it (``sim.cluster``): an ejection lasts
``base_ejection_time x k`` whatever the host does meanwhile, ``k`` grows per ejection and shrinks
per healthy sweep, the detector outlives a push that leaves the cluster unchanged and not one
that changes it, and the simulator carries it from one lesson step's world into the next.

The Envoy facts (outlier_detection_impl.cc, and Envoy 1.40 itself for the pushes:
``tests/cluster/local/test_outlier_state_agrees_with_envoy.py``): a host comes back only at an
``interval`` sweep once ``min(base x k, max)`` has passed since its ejection; ``k`` goes up by
one per ejection (while ``k x base < max + base``) and down by one per sweep that finds the host
healthy an interval or more after it came back."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import simpy

from mesh.lesson import load_lesson
from mesh.runner import RunOptions
from sim import SimRunner
from sim.cluster import ClusterRuntime, HostState
from sim.explain import explain, parse_request
from sim.xds.clusters import compile_cluster

LESSONS = Path(__file__).resolve().parents[2] / "lessons"
BAD = "10.0.0.2:80"


def _cluster(connect_timeout: str = "1s", *ports: int) -> dict[str, Any]:
    return {
        "name": "outbound|80||up.default.svc.cluster.local",
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "outlier_detection": {
            "consecutive_5xx": 1,
            "interval": "1s",
            "base_ejection_time": "10s",
            "max_ejection_time": "25s",
            "max_ejection_percent": 100,
        },
        "load_assignment": {
            "cluster_name": "up",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": a, "port_value": 80}}
                            }
                        }
                        for a in ("10.0.0.1", "10.0.0.2", *(f"10.0.0.{p}" for p in ports))
                    ]
                }
            ],
        },
    }


def _runtime(env: simpy.Environment, cluster: dict[str, Any] | None = None) -> ClusterRuntime:
    return ClusterRuntime.create(
        compile_cluster(cluster or _cluster(), None), env, random.Random(1)
    )


def _host(rt: ClusterRuntime, key: str) -> HostState:
    return next(h for h in rt.hosts if h.key == key)


def _fail(rt: ClusterRuntime, key: str) -> bool:
    """A connection failure to ``key``: True when it ejected the host."""
    return rt.record_outcome(_host(rt, key), 503, local_failure=True)


def _back_at(rt: ClusterRuntime, key: str, until: float) -> float | None:
    """The first whole tenth of a second, up to ``until``, at which ``key`` is no longer
    ejected (the clock moved forward to it)."""
    env = rt.env
    while env.now <= until:
        if not rt.is_ejected(_host(rt, key), env.now):
            return round(env.now, 1)
        env.run(until=(round(env.now * 10) + 1) / 10)
    return None


def test_a_host_comes_back_at_the_first_sweep_after_its_ejection_time_whatever_it_does() -> None:
    env = simpy.Environment()
    rt = _runtime(env)
    env.run(until=0.5)
    assert _fail(rt, BAD)  # ejected at 0.5 for 10 s: back at the sweep at 11 s
    assert _back_at(rt, BAD, 20.0) == 11.0


def test_the_ejection_time_grows_with_each_ejection_and_is_capped() -> None:
    env = simpy.Environment()
    rt = _runtime(env)
    assert _fail(rt, BAD)  # k = 1: 10 s
    assert _back_at(rt, BAD, 30.0) == 10.0
    assert _fail(rt, BAD)  # failed again at once: k = 2, 20 s
    assert _back_at(rt, BAD, 60.0) == 30.0
    assert _fail(rt, BAD)  # k = 3: 30 s, capped at max_ejection_time 25 s
    assert _back_at(rt, BAD, 90.0) == 55.0
    assert _host(rt, BAD).ejections == 3
    assert _fail(rt, BAD)  # k = 4 (3 x 10 < 25 + 10): 25 s
    assert _back_at(rt, BAD, 120.0) == 80.0
    assert _fail(rt, BAD)  # k stays 4 (4 x 10 >= 25 + 10): 25 s again
    assert _host(rt, BAD).ejections == 4
    assert _back_at(rt, BAD, 150.0) == 105.0


def test_each_healthy_sweep_takes_one_off_the_back_off() -> None:
    env = simpy.Environment()
    rt = _runtime(env)
    assert _fail(rt, BAD)
    assert _back_at(rt, BAD, 30.0) == 10.0
    assert _fail(rt, BAD)  # k = 2
    assert _back_at(rt, BAD, 60.0) == 30.0
    env.run(until=31.5)  # one sweep (31 s) an interval after it came back: k 2 -> 1
    assert _fail(rt, BAD)  # k = 2 again, not 3: 20 s
    assert _host(rt, BAD).ejections == 2
    assert _back_at(rt, BAD, 90.0) == 52.0
    env.run(until=70.0)  # healthy for 18 sweeps: k 2 -> 0
    assert _fail(rt, BAD)
    assert _host(rt, BAD).ejections == 1
    assert _back_at(rt, BAD, 90.0) == 80.0


def test_a_push_that_keeps_the_cluster_keeps_the_ejection_and_one_that_changes_it_forgets() -> None:
    env = simpy.Environment()
    rt = _runtime(env)
    assert _fail(rt, BAD)
    rt.update(compile_cluster(_cluster(), None))  # the same cluster (istiod pushes it again)
    assert rt.is_ejected(_host(rt, BAD), env.now) and rt.ejected_hosts == 1
    rt.update(compile_cluster(_cluster("1s", 3), None))  # EDS: one more endpoint, same cluster
    assert rt.is_ejected(_host(rt, BAD), env.now) and rt.ejected_hosts == 1
    rt.update(compile_cluster(_cluster("2s", 3), None))  # CDS changed it: a new cluster
    assert not rt.is_ejected(_host(rt, BAD), env.now) and rt.ejected_hosts == 0
    assert _host(rt, BAD).ejections == 0  # its next ejection is a first one again


def test_the_detector_carries_into_the_next_world_with_its_remaining_time() -> None:
    first = simpy.Environment()
    rt = _runtime(first)
    first.run(until=0.5)
    assert _fail(rt, BAD)  # back at 11 s
    first.run(until=4.0)
    state = rt.outlier_state(first.now)
    assert state is not None
    nxt = simpy.Environment()  # the next step: its t = 0 is the first's t = 4
    carried = _runtime(nxt)
    assert carried.restore_outlier(state)
    assert carried.ejected_hosts == 1
    assert _back_at(carried, BAD, 20.0) == 7.0
    assert _host(carried, BAD).ejections == 1
    changed = _runtime(simpy.Environment(), _cluster("2s"))
    assert not changed.restore_outlier(state)  # a changed cluster: a fresh detector
    assert changed.ejected_hosts == 0
    no_detector = replace(compile_cluster(_cluster(), None), outlier=None)
    plain = ClusterRuntime.create(no_detector, simpy.Environment(), random.Random(1))
    assert plain.outlier_state(0.0) is None


def test_lesson_25_a_restored_pod_stays_ejected_into_the_next_steps() -> None:
    """Lesson 25 on the sim: v1 is ejected as step 3 starts, step 3 lasts ~18.5 s (100
    requests across the network), steps 4 and 5 are immediate 503 UH; in step 6 v1 comes back
    when its minute is served, ~41 s in, as on a real mesh whose Envoys kept running."""
    lesson = load_lesson(LESSONS / "25-multicluster-failover")
    run = SimRunner().run(lesson, RunOptions(seed=1))
    step3, _, step5, step6 = run.steps[2:]
    ended = max(r.start_time + r.duration_ms / 1000.0 for r in step3.records)
    assert 15.0 < ended < 22.0
    assert all("UH" in r.response_flags for r in step5.records)
    ok = [r for r in step6.warmup_records if r.ok and r.destination_version == "v1"]
    first = min(r.start_time for r in ok)
    assert 60.0 - ended - 1.5 < first < 60.0 - ended + 1.5
    assert not [r for r in step6.warmup_records if r.start_time > first + 0.01 and not r.ok]


def test_explain_sees_the_ejections_the_earlier_steps_left() -> None:
    """``meshplay explain`` runs a request in the world of a step as the lesson leaves it: in
    lesson 25's step 5 v1 is back but still ejected, and so is the gateway: 503 UH, and the
    trace says when the first endpoint comes back."""
    lesson = load_lesson(LESSONS / "25-multicluster-failover")
    request = parse_request("GET /hello")
    restored = explain(lesson, request, step=5)
    assert restored.response.status == 503 and restored.response.flags == ("UH",)
    assert any("comes back in" in text for _, _, text in restored.lines)
    before = explain(lesson, request, step=2)
    assert before.response.status == 200 and before.response.version == "v1"
