"""The whole ``kube`` runner against the in-memory Kubernetes API (no real cluster exists here).

What this proves: the runner's requests are what the API serves (the real ``kubernetes`` client
over HTTP); what it applies and deletes per step is the lesson's state (the fake cluster's data
plane simulates exactly the objects the API holds when a generator pod starts); breaks reach the
pods' knobs; records come back from ``istio-proxy`` log lines written in meshplay's Istio
access-log format, server-side callers included; and every failure — a conflict (409), an
invalid object (422), a pod that never becomes ready, a proxy that never acknowledges, an API
that goes away, Ctrl-C — ends with a clear error and nothing of the lesson left applied.
What it cannot prove: how real istiod and Envoy behave (tests/cluster/kube/test_e2e.py, marked
``kube``, runs the same lessons on a real cluster where one is reachable).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import Timeouts
from cluster.kube.manifests import PART_LABEL
from cluster.kube.runner import KubeRunner
from mesh.lesson import Lesson, load_lesson
from mesh.runner import LessonRun, RunnerError, RunOptions
from sim import SimRunner
from tests.cluster.kube.dataplane import SimDataPlane
from tests.cluster.kube.fake_api import FakeKube, Obj

ROOT = Path(__file__).resolve().parents[3]
FAST = Timeouts(
    rollout_s=3, converge_s=3, generator_start_s=5, settle_s=0.05, cleanup_s=3, poll_s=0.05,
    scrape_s=0.2,
)  # fmt: skip
KUBE_LESSONS = sorted(
    p.parent.name
    for p in (ROOT / "lessons").glob("*/lesson.yaml")
    if "kube" in load_lesson(p.parent).spec.runners and not load_lesson(p.parent).spec.clusters
)
"""The single-cluster kube lessons (multi-cluster ones run on two fake clusters:
test_multicluster_fake.py)."""
PROMETHEUS_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "prometheus", "namespace": "istio-system"},
    "spec": {"ports": [{"port": 9090}]},
}


def _on_metrics(name: str) -> bool:
    """The lesson grades promql/alert expectations (they need a Prometheus)."""
    return any(e.on_metrics for s in load_lesson(ROOT / "lessons" / name).steps for e in s.expect)


KUBE_PARAMS = [
    pytest.param(name, marks=[pytest.mark.prometheus, pytest.mark.slow])
    if _on_metrics(name)
    else name
    for name in KUBE_LESSONS
]


def _lesson(name: str) -> Lesson:
    return load_lesson(ROOT / "lessons" / name)


@pytest.fixture
def ready(fake: FakeKube, api: KubeApi) -> FakeKube:
    """The fake cluster after ``meshplay cluster up`` (app, Telemetry, access-log providers)."""
    admin.up(api, _lesson("01-request-routing").app, "shop", report=lambda _t: None, timeouts=FAST)
    return fake


def _run(kubeconfig: Path, lesson: Lesson, **options: object) -> LessonRun:
    reports: list[str] = []
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=FAST, report=reports.append)
    return runner.run(lesson, RunOptions(**options))  # type: ignore[arg-type]


def _left(fake: FakeKube) -> list[str]:
    """What of a lesson run is still in the cluster (lesson resources, generator pods)."""
    return sorted(
        f"{o['kind']}/{o['metadata']['name']}"
        for part in ("lesson", "loadgen")
        for o in fake.labelled(PART_LABEL, part)
    )


def _knobs(fake: FakeKube) -> dict[str, dict[str, object]]:
    return {name: dict(p.knobs) for (_ns, name), p in fake.pods.items() if any(p.knobs.values())}


@pytest.mark.parametrize("name", KUBE_PARAMS)
def test_every_kube_lesson_grades_like_sim_and_leaves_only_the_app(
    ready: FakeKube, kubeconfig: Path, name: str, tmp_path: Path
) -> None:
    """Each lesson's verdicts on the fake cluster equal the simulator's, expectation by
    expectation, from as many records per step (every record survived the trip through the
    Istio log format); afterwards only the app is left, with no knob still turned."""
    lesson = _lesson(name)
    plane = SimDataPlane(lesson)
    ready.data_plane = plane
    ready.proxy_memory = plane.memory  # each proxy's /memory, from the simulator's heap model
    if _on_metrics(name):  # a real Prometheus over what the fake proxies logged, and the sim's
        from playground.observed import ObservedSimRunner
        from tests.cluster.kube.recorded_prometheus import RecordedPrometheus

        prometheus = RecordedPrometheus(plane, tmp_path / "tsdb")
        ready.put(PROMETHEUS_SERVICE)
        ready.prometheus_http = prometheus
        try:
            run = _run(kubeconfig, lesson)
        finally:
            prometheus.close()
        expected = ObservedSimRunner().run(lesson, RunOptions())
    else:
        run = _run(kubeconfig, lesson)
        expected = SimRunner().run(lesson, RunOptions())
    assert [[c.verdict for c in s.checks] for s in run.steps] == [
        [c.verdict for c in s.checks] for s in expected.steps
    ]
    assert run.passed, [c.describe() for s in run.steps for c in s.checks if not c.passed]
    assert [len(s.records) for s in run.steps] == [len(s.records) for s in expected.steps]
    assert _left(ready) == []
    assert _knobs(ready) == {}
    deployments = {
        d["metadata"]["name"]: d["spec"].get("replicas", 1)
        for d in ready.find("Deployment", "shop")
    }
    assert deployments["product-v2"] == 1


def test_server_side_records_name_their_caller(ready: FakeKube, kubeconfig: Path) -> None:
    """A destination-reported record gets the caller's workload from the client-side line of
    the same request; a caller without a sidecar stays unknown (outside)."""
    lesson = _lesson("01-request-routing")
    ready.data_plane = SimDataPlane(lesson)
    run = _run(kubeconfig, lesson, until_step=1)
    server_side = [r for r in run.records if r.reporter.value == "destination"]
    to_product = [r for r in server_side if r.destination_app == "product"]
    to_gateway = [r for r in server_side if r.destination_app == "api-gateway"]
    assert to_product and {r.source_app for r in to_product} == {"api-gateway"}
    assert to_gateway and {r.source_workload for r in to_gateway} == {"unknown"}
    assert {r.destination_service for r in to_product} == {"product.shop.svc.cluster.local"}


def test_a_conflicting_field_owner_stops_the_run_and_nothing_is_left(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """Someone edited VirtualService product with kubectl: meshplay's apply gets 409 and says
    who owns the field; the DestinationRule it had applied is deleted again."""
    lesson = _lesson("01-request-routing")
    ready.data_plane = SimDataPlane(lesson)
    ready.put(
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "product", "namespace": "shop"},
         "spec": {"hosts": ["product"], "http": [{"route": [{"destination": {"host": "product", "subset": "v2"}}]}]}},
        manager="kubectl-edit",
    )  # fmt: skip
    with pytest.raises(RunnerError, match=r'conflict with "kubectl-edit".*\.spec\.http') as caught:
        _run(kubeconfig, lesson)
    assert "apply VirtualService shop/product (" in str(caught.value)
    assert "lessons/01-request-routing/istio/virtual-service-all-v1.yaml:1:1): " in str(
        caught.value
    )
    assert _left(ready) == []
    assert ready.find("DestinationRule", "shop") == []
    owned = ready.find("VirtualService", "shop", "product")[0]
    assert owned["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"


def test_an_invalid_object_stops_the_run_with_the_apis_message(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """422 from the API (say, Istio's validating webhook) is shown with its cause and file."""
    lesson = _lesson("02-traffic-shifting")
    ready.data_plane = SimDataPlane(lesson)
    ready.reject[("VirtualService", "product")] = (
        "spec.http[0].route[1].weight: must be non-negative"
    )
    with pytest.raises(
        RunnerError, match=r"is invalid: spec.http.0..route.1..weight: must be non-negative"
    ) as caught:
        _run(kubeconfig, lesson)
    assert "lessons/02-traffic-shifting/istio/" in str(caught.value)
    assert _left(ready) == []


def test_a_pod_that_never_becomes_ready_is_named(
    fake: FakeKube, api: KubeApi, kubeconfig: Path
) -> None:
    """A sidecar that never gets ready stops the run at open, within the rollout bound, with
    the pod and the container in the message."""
    fake.never_ready.add("product-v2")
    lesson = _lesson("01-request-routing")
    with pytest.raises(
        RunnerError,
        match=r"Deployment shop/product-v2 is not ready after 3s: pod product-v2-.*: container istio-proxy is running but not ready",
    ):
        admin.up(api, lesson.app, "shop", report=lambda _t: None, timeouts=FAST)
    before = len(fake.requests)
    with pytest.raises(RunnerError, match=r"product-v2.*istio-proxy is running but not ready"):
        _run(kubeconfig, lesson)
    assert _left(fake) == []
    pod_lists = [
        p
        for m, p in fake.requests[before:]
        if m == "GET" and "/pods?" in p and "watch=true" not in p
    ]
    assert len(pod_lists) < 40, "waiting for a rollout must block on a watch, not poll the API"


def test_a_proxy_that_never_acknowledges_is_named(ready: FakeKube, kubeconfig: Path) -> None:
    """After an Istio apply the runner waits for istiod's sync status; a proxy whose last push
    stays unacknowledged is named, with the xDS types it did not ACK."""
    lesson = _lesson("01-request-routing")
    ready.data_plane = SimDataPlane(lesson)
    stuck = sorted(
        p["metadata"]["name"]
        for p in ready.find("Pod", "shop")
        if p["metadata"]["name"].startswith("order-v1")
    )[0]
    ready.stuck_proxies.add(stuck)
    with pytest.raises(
        RunnerError, match=rf"did not reach proxy {stuck}\.shop within 3s: CDS sent \d+, acked \d+"
    ):
        _run(kubeconfig, lesson, until_step=2)
    assert _left(ready) == []


def _go_away_when_traffic_starts(fake: FakeKube, for_s: float) -> None:
    def plane(kube: FakeKube, pod: Obj) -> None:
        kube.write_log(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            "loadgen",
            '{"event": "started", "at": 0}',
        )
        kube.go_away(for_s)

    fake.data_plane = plane


def test_an_api_that_goes_away_mid_step_is_reported_and_cleaned_up_when_it_returns(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """The API stops answering while a step's traffic runs: the step fails with that reason,
    and cleanup retries until the API is back, then deletes the generator and the lesson's
    resources."""
    _go_away_when_traffic_starts(ready, for_s=1.0)
    with pytest.raises(RunnerError, match=r"went away|does not answer"):
        _run(kubeconfig, _lesson("01-request-routing"), until_step=2)
    assert ready.up
    assert _left(ready) == []


def test_an_api_that_never_returns_leaves_a_report_with_the_command(
    ready: FakeKube, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the API does not come back within the cleanup bound, the runner says what it could
    not delete and how to delete it by hand."""
    _go_away_when_traffic_starts(ready, for_s=0)
    reports: list[str] = []
    runner = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=FAST, report=reports.append)
    with pytest.raises(RunnerError, match=r"does not answer|went away"):
        runner.run(_lesson("01-request-routing"), RunOptions(until_step=2))
    assert any(
        "cleanup incomplete" in r and "kubectl delete" in r and "meshplay.dev/run=" in r
        for r in reports
    ), reports


def test_ctrl_c_deletes_the_generator_and_the_lessons_resources(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """A cancel during a step's traffic deletes the generator pod (its log stream ends), the
    run is marked cancelled, and close removes the lesson's resources."""
    cancel = threading.Event()
    seen: list[str] = []

    def plane(kube: FakeKube, pod: Obj) -> None:
        seen.append(pod["metadata"]["name"])
        kube.write_log(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            "loadgen",
            '{"event": "started", "at": 0}',
        )
        cancel.set()  # the user presses Ctrl-C while the traffic runs

    ready.data_plane = plane
    run = _run(kubeconfig, _lesson("01-request-routing"), cancel=cancel)
    assert run.cancelled
    assert len(seen) == 1
    assert ready.find("Pod", "shop", seen[0]) == []
    assert _left(ready) == []


def test_a_break_turns_the_knobs_from_inside_the_service_container(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """``error_rate`` reaches every replica through ``kubectl exec`` into the service container
    (port 15999 on 127.0.0.1), and close turns it back."""
    lesson = _lesson("06-retries")
    ready.data_plane = SimDataPlane(lesson)
    _run(kubeconfig, lesson, until_step=1)
    knob_calls = [(pod, c, argv[-1]) for pod, c, argv in ready.execs if "knobs" in argv]
    assert {(pod.rsplit("-", 2)[0], c) for pod, c, _ in knob_calls} >= {
        ("product-v1", "product"),
        ("product-v2", "product"),
    }
    assert any('"error_rate": 0.3' in body for _, _, body in knob_calls)
    assert all(argv[4] == "15999" for _, _, argv in ready.execs if "knobs" in argv)
    assert _knobs(ready) == {}


@pytest.fixture
def other_namespace(fake: FakeKube, api: KubeApi) -> FakeKube:
    admin.up(
        api, _lesson("12-http-authorization").app, "store", report=lambda _t: None, timeouts=FAST
    )
    return fake


def test_namespace_moves_the_app_and_the_lesson(
    other_namespace: FakeKube, kubeconfig: Path
) -> None:
    """``--namespace store``: the app and the lesson's resources (hosts, principals) move to
    ``store`` and the lesson grades the same."""
    lesson = _lesson("12-http-authorization")
    other_namespace.data_plane = SimDataPlane(lesson)
    reports: list[str] = []
    run = KubeRunner(
        "fake", "store", kubeconfig=str(kubeconfig), timeouts=FAST, report=reports.append
    ).run(lesson, RunOptions())
    assert run.passed, [c.describe() for s in run.steps for c in s.checks if not c.passed]
    assert other_namespace.find("Deployment", "shop") == []


def test_istio_metrics_are_set_beside_the_records(ready: FakeKube, kubeconfig: Path) -> None:
    """With a Prometheus in the cluster, after the run each edge's record count is reported
    beside ``increase(istio_requests_total)``; one that differs beyond the tolerance says so.
    The query asks for client-side counts (``reporter="source"``, or the server side for
    callers without a sidecar)."""
    lesson = _lesson("01-request-routing")
    plane = SimDataPlane(lesson)
    ready.data_plane = plane
    ready.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus", "namespace": "istio-system"},
               "spec": {"ports": [{"port": 9090}]}})  # fmt: skip
    queries: list[str] = []

    def prometheus(promql: str) -> list[Obj]:
        queries.append(promql)
        return [
            {
                "metric": {"source_app": "unknown", "destination_service_name": "api-gateway"},
                "value": [0, "385"],
            },
            {
                "metric": {"source_app": "api-gateway", "destination_service_name": "product"},
                "value": [0, "300.5"],
            },
        ]

    ready.prometheus = prometheus
    reports: list[str] = []
    timeouts = Timeouts(**{**FAST.__dict__, "scrape_s": 0.1})
    runner = KubeRunner(
        "fake", kubeconfig=str(kubeconfig), timeouts=timeouts, report=reports.append
    )
    run = runner.run(lesson, RunOptions(until_step=1))
    checks = [r for r in reports if "istio_requests_total cross-check" in r]
    n = len(
        [r for r in run.records if r.reporter.value == "source" and r.source_app == "api-gateway"]
    )
    m = len(  # the seeded sim's count (385 or so): within the cross-check's tolerance of 385
        [
            r
            for r in run.records
            if r.reporter.value == "destination" and r.source_app in ("", "unknown")
        ]
    )
    assert checks == [
        f"istio_requests_total cross-check: api-gateway->product: {n} records, istio_requests_total 300 (DIFFERS)",
        f"istio_requests_total cross-check: outside->api-gateway: {m} records, istio_requests_total 385 (agrees)",
    ]
    assert (
        len(queries) == 1
        and 'reporter="source"' in queries[0]
        and "increase(istio_requests_total" in queries[0]
    )


EVENT_LESSON = """title: Timed events on a cluster
app: ecommerce
runners: [kube]
traffic:
  from: api-gateway
  to: product
  requests: [{path: /products}]
  rate_rps: 10
  duration_s: 1
steps:
  - name: v1 only, then a fault at 0.3 s
    apply: [istio/dr.yaml]
    events:
      - {at_s: 0.3, apply: [istio/vs.yaml], break: [{workload: product-v1, latency_ms: 50}]}
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
DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product, namespace: shop}
spec:
  host: product
  subsets:
  - {name: v1, labels: {version: v1}}
"""


def test_timed_events_fire_from_the_generators_started_line(
    ready: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    """An event at 0.3 s is applied (with its break) 0.3 s after the generator said
    ``started``, while the traffic runs, and is undone at close."""
    root = tmp_path / "lessons"
    folder = root / "events"
    (folder / "istio").mkdir(parents=True)
    (root / "apps").symlink_to(ROOT / "lessons" / "apps")
    (folder / "lesson.yaml").write_text(EVENT_LESSON)
    (folder / "istio" / "vs.yaml").write_text(VS)
    (folder / "istio" / "dr.yaml").write_text(DR)
    lesson = load_lesson(folder)
    timeline: dict[str, float] = {}

    def plane(kube: FakeKube, pod: Obj) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        timeline["started"] = time.monotonic()
        kube.write_log(ns, name, "loadgen", json.dumps({"event": "started", "at": time.time()}))
        assert kube.find("VirtualService", "shop") == []
        while time.monotonic() - timeline["started"] < 8 and not kube.find(
            "VirtualService", "shop"
        ):
            time.sleep(0.02)
        timeline["applied"] = time.monotonic()
        while time.monotonic() - timeline["started"] < 8 and not any(
            p.knobs for p in kube.pods.values()
        ):
            time.sleep(0.02)
        timeline["knobs"] = time.monotonic()
        kube.write_log(
            ns, name, "loadgen", json.dumps({"event": "done", "sent": 10, "wall_s": 1.0})
        )
        kube.end_container(ns, name, "loadgen")

    ready.data_plane = plane
    run = _run(kubeconfig, lesson)
    (event,) = run.steps[0].events
    assert (event.kind, event.subject) == ("event", "at 0.3 s")
    assert "istio/vs.yaml" in event.detail
    assert 0.25 <= timeline["applied"] - timeline["started"] < 4.0
    assert timeline["knobs"] - timeline["started"] < 6.0
    assert _left(ready) == []
    assert _knobs(ready) == {}


def test_compare_sets_sim_against_kube(ready: FakeKube, kubeconfig: Path) -> None:
    """``meshplay compare LESSON --a sim --b kube`` compares like sim vs local: here the fake
    cluster's data plane is the simulator, so every row agrees."""
    from playground.commands.compare import compare

    lesson = _lesson("02-traffic-shifting")
    ready.data_plane = SimDataPlane(lesson)
    kube = KubeRunner("fake", kubeconfig=str(kubeconfig), timeouts=FAST, report=lambda _t: None)
    result, run_a, run_b = compare(lesson, SimRunner(), kube, RunOptions())
    assert (run_a.runner, run_b.runner) == ("sim", "kube")
    assert result.agrees


def test_a_generator_whose_image_cannot_be_pulled_is_explained(
    ready: FakeKube, kubeconfig: Path
) -> None:
    """The generator pod waits on ErrImagePull: the step fails at once with the reason and the
    command that loads the image, and the pod and the lesson's resources are deleted."""
    ready.generator_waiting = ("ErrImagePull", "pull access denied for meshplay/ecommerce")
    with pytest.raises(
        RunnerError,
        match=r"the image cannot be pulled \(ErrImagePull: pull access denied.*meshplay cluster up",
    ):
        _run(kubeconfig, _lesson("01-request-routing"))
    assert _left(ready) == []


def test_memory_mb_is_the_heap_each_proxy_reports(ready: FakeKube, kubeconfig: Path) -> None:
    """Lesson 27's ``memory_mb`` is what fortioclient's Envoy answers to ``pilot-agent request
    GET memory`` (here 40 MiB: outside the lesson's 4-10, so the check fails), not the
    simulator's model; only the proxy the expectation names is asked, in its istio-proxy."""
    lesson = _lesson("27-performance-tuning")
    ready.data_plane = SimDataPlane(lesson)
    ready.proxy_memory = lambda _k, _ns, _pod: 40 * 2**20
    run = _run(kubeconfig, lesson, until_step=1)
    [memory] = [c for c in run.steps[0].checks if "memory_mb" in c.describe()]
    assert memory.verdict.value == "fail" and "40" in memory.describe()
    asked = [(pod, container) for pod, container, argv in ready.execs if argv[-1] == "memory"]
    assert [(p.rsplit("-", 2)[0], c) for p, c in asked] == [("fortioclient", "istio-proxy")]
