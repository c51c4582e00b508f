"""A pod's container that dies mid-step is reported and restarted, as the kubelet does.

In Kubernetes a container that exits is started again by the kubelet (``restartPolicy:
Always``): the app container alone when the app died, ``istio-proxy`` alone when the sidecar
died, the sidecar with the config istiod holds for it. While it is down, its callers' Envoys log
the gap: a refused connection is ``503 UF`` (``URX`` once the default retries are used up), a
reset mid-request ``UC``. Here, on real processes: ``kill -9`` of product-v1's app, then of its
Envoy, during one step of steady traffic from api-gateway; the step's events say which container
died (and by which signal) and when it served again, and api-gateway's records show the failures
during each gap and success after it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.mesh import LocalMesh
from cluster.local.runner import LocalExecutor
from mesh.app import load_app
from mesh.engine import LessonRunner
from mesh.lesson import BreakAction, load_lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import RunEvent, RunOptions

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

LESSON = """title: Pods that die come back
app: ecommerce
traffic:
  from: api-gateway
  to: product
  requests: [{path: /products}]
  rate_rps: 25
  duration_s: 16
steps:
  - name: product-v1 loses its app, then its sidecar
    apply: [istio/dr.yaml, istio/vs.yaml]
"""

ISTIO = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product, namespace: shop}
spec:
  host: product
  subsets:
  - {name: v1, labels: {version: v1}}
---
"""

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: product, namespace: shop}
spec:
  hosts: [product]
  http:
  - route:
    - destination: {host: product, subset: v1}
"""

KILL_APP_S = 2.0
KILL_PROXY_S = 8.0


def _calls(records: tuple[RequestRecord, ...]) -> list[RequestRecord]:
    return [
        r
        for r in records
        if r.reporter is Reporter.SOURCE
        and r.source_app == "api-gateway"
        and r.destination_service.startswith("product.")
    ]


def test_killed_app_and_sidecar_are_reported_restarted_and_serve_again(tmp_path: Path) -> None:
    folder = tmp_path / "lessons" / "restarts"
    (folder / "istio").mkdir(parents=True)
    (tmp_path / "lessons" / "apps").symlink_to(ROOT / "lessons" / "apps")
    (folder / "lesson.yaml").write_text(LESSON)
    (folder / "istio" / "dr.yaml").write_text(ISTIO)
    (folder / "istio" / "vs.yaml").write_text(VS)
    lesson = load_lesson(folder)

    executor = LocalExecutor(tmp_path / "mesh")
    killed: dict[str, int] = {}

    def kill(container: str) -> None:
        mesh = executor.mesh
        assert mesh is not None
        (pp,) = mesh.pods_of("product-v1")
        assert pp.proxy is not None
        name = pp.app if container == "app" else pp.proxy.process_name
        pid = mesh.supervisor.procs[name].pid
        killed[container] = pid
        os.kill(pid, signal.SIGKILL)

    def on_progress(_: object) -> None:
        if not timers:  # the step's traffic has begun
            for at, container in ((KILL_APP_S, "app"), (KILL_PROXY_S, "istio-proxy")):
                timer = threading.Timer(at, kill, args=(container,))
                timer.daemon = True
                timer.start()
                timers.append(timer)

    timers: list[threading.Timer] = []
    run = LessonRunner("local", lambda: executor).run(
        lesson, RunOptions(seed=5, on_progress=on_progress)
    )
    for timer in timers:
        timer.cancel()
    (step,) = run.steps
    assert set(killed) == {"app", "istio-proxy"}, killed

    pod_events = [e for e in step.events if e.kind in ("pod-died", "pod-restarted")]
    kinds = [(e.kind, e.subject, e.detail.split(" ")[0]) for e in pod_events]
    assert kinds == [
        ("pod-died", "product-v1-0", "app"),
        ("pod-restarted", "product-v1-0", "app"),
        ("pod-died", "product-v1-0", "istio-proxy"),
        ("pod-restarted", "product-v1-0", "istio-proxy"),
    ], [e.describe(step.started_at) for e in pod_events]
    for died in (pod_events[0], pod_events[2]):
        assert "signal 9 (SIGKILL)" in died.detail, died.detail
    app_died, app_back, proxy_died, proxy_back = (e.at for e in pod_events)
    assert abs(app_died - step.started_at - KILL_APP_S) < 1.0
    assert abs(proxy_died - step.started_at - KILL_PROXY_S) < 1.0
    end = step.started_at + step.duration_s
    assert proxy_back < end - 1.0, "the pod must serve again before the step ends"

    calls = _calls(step.records)

    def window(a: float, b: float) -> list[RequestRecord]:
        return [r for r in calls if a <= r.start_time < b]

    def failures(rs: list[RequestRecord]) -> list[RequestRecord]:
        return [r for r in rs if not r.ok]

    before = window(step.started_at, app_died - 0.2)
    app_gap = window(app_died - 0.3, app_back + 0.3)
    between = window(app_back + 0.5, proxy_died - 0.2)
    proxy_gap = window(proxy_died - 0.3, proxy_back + 0.3)
    after = window(proxy_back + 0.5, end)
    for name, rs in (("before", before), ("between", between), ("after", after)):
        assert rs and not failures(rs), (name, [(r.response_code, r.response_flags) for r in rs])
    for name, gap in (("app gap", app_gap), ("proxy gap", proxy_gap)):
        assert gap, f"no request during the {name}"
        assert failures(gap), (name, [(r.response_code, r.response_flags) for r in gap])
    # the app's own sidecar could not reach it: 503 UF in its inbound records
    inbound = [
        r
        for r in step.records
        if r.reporter is Reporter.DESTINATION
        and r.destination_workload == "product-v1"
        and app_died + 0.1 <= r.start_time < app_back - 0.1
    ]
    refused = [r for r in inbound if r.response_code == 503 and "UF" in r.response_flags]
    assert len(refused) >= len(inbound) // 2 and refused, [
        (r.response_code, r.response_flags) for r in inbound
    ]
    # the sidecar was gone: the caller's Envoy could not connect (UF, URX after its retries)
    flags = {f for r in failures(proxy_gap) for f in r.response_flags}
    assert flags & {"UF", "UC", "URX", "UH"}, flags


def test_a_lesson_kill_stays_down_until_restore(tmp_path: Path) -> None:
    """``break: {kill: 1}`` is meshplay asking: the kubelet must not bring it back."""
    events: list[RunEvent] = []
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    with LocalMesh(tmp_path) as mesh:
        mesh.start(app.resources)
        kubelet = mesh.watch(lambda k, s, d: events.append(RunEvent(0.0, k, s, d)))
        mesh.break_workload(BreakAction(workload="product-v2", kill=1))
        (pp,) = mesh.pods_of("product-v2")
        time.sleep(1.0)
        assert not mesh.supervisor.procs[pp.app].running()
        assert events == [] and kubelet.restart_count(pp.pod.name, "app") == 0
        mesh.break_workload(BreakAction(workload="product-v2", restore=True))
        assert mesh.supervisor.procs[pp.app].running()
        time.sleep(0.3)
        assert events == []
