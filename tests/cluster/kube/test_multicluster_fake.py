"""The ``kube`` runner on two kube contexts: two in-memory Kubernetes APIs, one per cluster.

What this proves: a multi-cluster lesson's objects land in the right cluster (each Deployment
only where the lesson places it, Services and every Istio resource in both: multi-primary), the
load generator runs in the caller's cluster, a break naming a cluster scales only that
cluster's Deployments (or its east-west gateway) and ``close`` scales them back, a context that
is not the declared primary is refused with the fix, and every record carries the cluster of
the proxy that logged it (``source_cluster``/``destination_cluster``). The data plane is the
simulator over both fake clusters' objects (:class:`TwoClusterDataPlane`); what real istiod and
Envoy do across two clusters is for ``test_e2e.py`` with ``MESHPLAY_KUBE_CONTEXTS``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import Timeouts
from cluster.kube.loadgen import ENV_VAR, GeneratorJob
from cluster.kube.runner import KubeRunner
from mesh.lesson import BreakAction, Lesson, load_lesson
from mesh.model import RESOURCE_KINDS
from mesh.model.multicluster import EASTWEST_GATEWAY, MultiCluster
from mesh.records import Reporter
from mesh.runner import DriveContext, RunnerError, RunOptions
from mesh.source import load_text
from mesh.state import MeshState
from sim import SimRunner
from sim.cluster import OutlierState
from sim.runner import _run, configure
from sim.traffic import TrafficDriver
from sim.world import World
from tests.cluster.kube.dataplane import _clean, render
from tests.cluster.kube.fake_api import FakeKube, Obj

ROOT = Path(__file__).resolve().parents[3]
FAST = Timeouts(
    rollout_s=3, converge_s=3, generator_start_s=5, settle_s=0.05, cleanup_s=3, poll_s=0.05,
    scrape_s=0.2,
)  # fmt: skip
CONTEXTS = {"cluster1": "kind-east", "cluster2": "kind-west"}
NETWORKS = {"cluster1": "network1", "cluster2": "network2"}
_MODELLED = {c.KIND for c in RESOURCE_KINDS}


def _lesson(name: str) -> Lesson:
    return load_lesson(ROOT / "lessons" / name)


def _kubeconfig(fakes: dict[str, FakeKube], folder: Path) -> Path:
    path = folder / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": f"http://127.0.0.1:{f.port}"}}
                     for c, f in fakes.items()],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": CONTEXTS[c], "context": {"cluster": c, "user": "fake"}}
                     for c in fakes],
        "current-context": CONTEXTS["cluster1"],
    }))  # fmt: skip
    return path


def _install(fake: FakeKube, cluster: str, other: str, *, remote_secret: bool = True) -> None:
    """What istioctl does per Istio's multi-primary page: the network label, istiod's cluster
    ID, the east-west gateway, the remote secret of the other cluster."""
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "istio-system", "labels": {"topology.istio.io/network": NETWORKS[cluster]}}})  # fmt: skip
    istiod = fake.objects[("", "pods", "istio-system", "istiod-7c9d8-abcde")]
    istiod["spec"]["containers"][0]["env"] = [{"name": "CLUSTER_ID", "value": cluster}]
    labels = {"app": "istio-eastwestgateway", "istio": "eastwestgateway",
              "topology.istio.io/network": NETWORKS[cluster]}  # fmt: skip
    fake.put({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "istio-eastwestgateway", "namespace": "istio-system"},
              "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels},
                                    "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]}}}})  # fmt: skip
    if remote_secret:
        fake.put({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": f"istio-remote-secret-{other}", "namespace": "istio-system",
            "labels": {"istio/multiCluster": "true"},
            "annotations": {"networking.istio.io/cluster": other}}})  # fmt: skip


class TwoClusterDataPlane:
    """Runs a generator's job in the simulator over both clusters' objects and the lesson's
    placement, and writes each record into the log of the pod (in its own cluster) that would
    have logged it."""

    def __init__(self, lesson: Lesson, fakes: dict[str, FakeKube]) -> None:
        self.lesson = lesson
        self.fakes = fakes
        self.lock = threading.Lock()
        self.generators: list[tuple[str, str]] = []
        """(cluster, pod name) of every generator pod started."""
        self.outliers: dict[str, dict[str, OutlierState]] = {}
        """Each proxy's outlier detectors as the last job left them, by pod and cluster: the
        clusters' Envoys keep running between generator pods (as :class:`SimDataPlane`'s)."""
        self.restored: list[dict[str, dict[str, OutlierState]]] = []
        """What each job's world took over (the detectors of the job before it)."""
        self.outliers_after: list[dict[str, dict[str, OutlierState]]] = []
        """What each job left."""

    def attach(self) -> None:
        for name, fake in self.fakes.items():
            fake.data_plane = lambda kube, pod, name=name: self(name, kube, pod)

    def _pods(self, ns: str) -> dict[str, list[tuple[FakeKube, str]]]:
        out: dict[str, list[tuple[FakeKube, str]]] = {}
        for fake in self.fakes.values():
            for o in fake.find("Pod", ns):
                owner = (o["metadata"].get("ownerReferences") or [{}])[0].get("name", "")
                if owner:
                    out.setdefault(owner.rsplit("-", 1)[0], []).append(
                        (fake, o["metadata"]["name"])
                    )
        return out

    def _gateways_down(self) -> list[BreakAction]:
        """An east-west gateway scaled to 0: its pods are gone, but the other network still
        reaches it at its Service's external address (istiod keeps listing it), so to a caller
        it is a dead endpoint, which is how the simulator models ``down``."""
        return [
            BreakAction(workload=EASTWEST_GATEWAY, cluster=cluster, down=True)
            for cluster, fake in self.fakes.items()
            for d in fake.find("Deployment", "istio-system")
            if d["metadata"]["name"] == EASTWEST_GATEWAY and d["spec"].get("replicas", 1) == 0
        ]

    def __call__(self, cluster: str, kube: FakeKube, pod: Obj) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        with self.lock:
            self.generators.append((cluster, name))
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0].get("env", [])}
        job = GeneratorJob.from_json(env[ENV_VAR])
        t0 = kube.clock.time()
        kube.write_log(ns, name, "loadgen", json.dumps({"event": "started", "at": t0}))
        docs: dict[tuple[str, str, str], dict[str, Any]] = {}
        for fake in self.fakes.values():
            for o in fake.objects.values():
                meta = o["metadata"]
                if o.get("kind") in _MODELLED and not (
                    meta.get("namespace") == "istio-system"
                    and o["kind"] in ("Deployment", "Service")
                ):
                    docs[(o["kind"], meta.get("namespace", ""), meta["name"])] = _clean(o)
        loaded = load_text("\n---\n".join(json.dumps(d) for d in docs.values()), "<fakes>", ns)
        declared = [r for r in self.lesson.app.resources if isinstance(r, MultiCluster)]
        state = MeshState((*loaded.resources, *declared))
        topology, envoy = configure(state)
        world = World(topology, self.lesson.app.behavior, envoy, seed=job.seed,
                      resources=state.resources)  # fmt: skip
        for action in self._gateways_down():
            world.apply_break(action)
        world.restore_outliers(self.outliers)
        self.restored.append(self.outliers)
        driver = TrafficDriver(world, job.traffic)
        driver.start()
        _run(world, driver, timeout_s=job.traffic.timeout_s,
             ctx=DriveContext(lambda _f, _n: None, lambda _b: None, threading.Event()))  # fmt: skip
        self.outliers = world.outlier_states(driver.last_time)
        self.outliers_after.append(self.outliers)
        pods = self._pods(ns)
        impersonated = (pod["metadata"].get("annotations") or {}).get("meshplay.dev/impersonates")
        for r in world.records:
            at = t0 + 0.01 + r.start_time
            source = r.reporter is Reporter.SOURCE
            workload = r.source_workload if source else r.destination_workload
            if source and workload == impersonated:
                target: tuple[FakeKube, str] | None = (kube, name)
            else:
                found = pods.get(workload) or []
                target = found[0] if found else None
            if target is not None:
                target[0].write_log(
                    ns, target[1], "istio-proxy", render(r, at, workload, ns), at=at
                )
        end = max((r.start_time + r.duration_ms / 1000 for r in world.records), default=0.0)
        kube.clock.run(t0 + 0.01 + end - kube.clock.time())
        sent = len(world.records)
        kube.write_log(ns, name, "loadgen", json.dumps(
            {"event": "done", "sent": sent, "failed": 0, "dropped": 0, "wall_s": end}))  # fmt: skip
        kube.end_container(ns, name, "loadgen")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeKube]]:
    """Two fake API servers on one clock (the executor reads it)."""
    east, west = FakeKube().start(), FakeKube().start()
    west.clock = east.clock
    monkeypatch.setattr("cluster.kube.executor.time", east.clock.module)
    yield {"cluster1": east, "cluster2": west}
    east.stop()
    west.stop()


@pytest.fixture
def ready(fakes: dict[str, FakeKube], tmp_path: Path) -> Path:
    """Both clusters installed as Istio's multi-primary page says and after ``meshplay cluster
    up`` of helloworld (the whole app, in both); the kubeconfig of both contexts."""
    kubeconfig = _kubeconfig(fakes, tmp_path)
    app = _lesson("24-multicluster-load-balancing").app
    for cluster, fake in fakes.items():
        other = "cluster2" if cluster == "cluster1" else "cluster1"
        _install(fake, cluster, other)
        api = KubeApi.connect(CONTEXTS[cluster], str(kubeconfig))
        try:
            admin.up(api, app, "sample", report=lambda _t: None, timeouts=FAST)
        finally:
            api.close()
    return kubeconfig


def _runner(kubeconfig: Path) -> KubeRunner:
    return KubeRunner(contexts=CONTEXTS, kubeconfig=str(kubeconfig), timeouts=FAST,
                      report=lambda _t: None)  # fmt: skip


def _deployments(fake: FakeKube, ns: str = "sample") -> dict[str, int]:
    return {
        d["metadata"]["name"]: int(d["spec"].get("replicas", 1))
        for d in fake.find("Deployment", ns)
    }


def _applied(fake: FakeKube, kind: str) -> set[str]:
    return {
        key[3] for _v, verb, key, obj in fake.events if verb == "ADDED" and obj.get("kind") == kind
    }


PLACED = {
    "24-multicluster-load-balancing": ({"curl", "helloworld-v1", "sleep"}, {"helloworld-v2"}),
    "26-multicluster-identity": ({"helloworld-v1", "helloworld-v2"}, {"curl", "sleep"}),
}
"""Per lesson: the Deployments of cluster1 and of cluster2 (its ``clusters:``)."""


@pytest.mark.parametrize(
    ("name", "caller", "policy"),
    [
        ("24-multicluster-load-balancing", "cluster1", "DestinationRule"),
        ("26-multicluster-identity", "cluster2", "AuthorizationPolicy"),
    ],
)
def test_multicluster_lesson_on_two_clusters_grades_like_sim_with_clusters_on_records(
    fakes: dict[str, FakeKube], ready: Path, name: str, caller: str, policy: str
) -> None:
    """Each Deployment only in its cluster, Services and Istio config in both, the generator
    in the caller's cluster (cluster1 for lesson 24's curl, cluster2 for lesson 26's), verdicts
    equal to the simulator's, records tagged with the clusters of both sides."""
    lesson = _lesson(name)
    plane = TwoClusterDataPlane(lesson, fakes)
    plane.attach()
    east, west = fakes["cluster1"], fakes["cluster2"]
    run = _runner(ready).run(lesson, RunOptions())
    expected = SimRunner().run(lesson, RunOptions())
    assert [[c.verdict for c in s.checks] for s in run.steps] == [
        [c.verdict for c in s.checks] for s in expected.steps
    ], [c.describe() for s in run.steps for c in s.checks]
    assert (set(_deployments(east)), set(_deployments(west))) == PLACED[name]
    for fake in (east, west):
        services = {s["metadata"]["name"] for s in fake.find("Service", "sample")}
        assert {"helloworld", "curl", "sleep"} <= services
        assert {"cross-network-gateway"} <= _applied(fake, "Gateway")
        assert _applied(fake, policy)
        assert fake.find(policy, "sample") == []  # close deleted the lesson's
    assert {c for c, _ in plane.generators} == {caller}
    assert len(plane.generators) == len(lesson.steps)
    records = [
        r for s in run.steps for r in s.records if r.destination_service.startswith("helloworld")
    ]
    assert {r.source_cluster for r in records} == {caller}
    versions = {
        (r.destination_version, r.destination_cluster) for r in records if r.destination_cluster
    }
    assert ("v1", "cluster1") in versions
    assert all(v != "v2" or c == "cluster2" for v, c in versions)
    served = {r.destination_cluster for r in records if r.reporter is Reporter.DESTINATION}
    assert served == ({"cluster1", "cluster2"} if name.startswith("24") else {"cluster1"})


def test_breaks_naming_a_cluster_act_only_there_and_are_undone(
    fakes: dict[str, FakeKube], ready: Path
) -> None:
    """Lesson 25's breaks: cluster1's helloworld-v1 down scales it to 0 in cluster1 only,
    cluster2's east-west gateway down scales only cluster2's; close scales both back. Up to the
    gateway's fall (step 4) the two clusters grade like the simulator, and the gateway the
    caller's sidecar ejected then is still ejected when the next generator pod starts (the
    same long-running Envoy)."""
    lesson = _lesson("25-multicluster-failover")
    plane = TwoClusterDataPlane(lesson, fakes)
    plane.attach()
    east, west = fakes["cluster1"], fakes["cluster2"]
    run = _runner(ready).run(lesson, RunOptions(until_step=4))
    assert len(run.steps) == 4

    def scaled(fake: FakeKube) -> list[str]:
        return [path.split("/deployments/")[1].split("/")[0] for method, path in fake.requests
                if method == "PATCH" and "/scale" in path]  # fmt: skip

    assert scaled(east) == ["helloworld-v1", "helloworld-v1"]  # down, then back at close
    assert scaled(west) == ["istio-eastwestgateway", "istio-eastwestgateway"]
    assert _deployments(east)["helloworld-v1"] == 1
    assert _deployments(west, "istio-system")["istio-eastwestgateway"] == 1
    expected = SimRunner().run(lesson, RunOptions(until_step=4))
    assert [[c.verdict for c in s.checks] for s in run.steps] == [
        [c.verdict for c in s.checks] for s in expected.steps
    ], [c.describe() for s in run.steps for c in s.checks]
    assert all(c.passed for c in run.steps[3].checks)  # 503 UH: the gateway is down
    ejected = [
        host
        for proxy, clusters in plane.outliers.items()
        if proxy.startswith("curl")
        for name, state in clusters.items()
        if "helloworld" in name
        for host, h in state.hosts
        if h.ejected
    ]
    assert ejected, plane.outliers  # what step 4 left, for the next generator's world
    assert plane.restored[3] == plane.outliers_after[2]


def test_lesson_25_step_5_differs_on_a_cluster_where_down_deletes_the_pods(
    fakes: dict[str, FakeKube], ready: Path
) -> None:
    """Why lesson 25 does not list kube: on a cluster ``down`` scales helloworld-v1 to 0, so
    istiod drops its endpoint (the simulator keeps a dead pod listed), and ``restore`` brings a
    new pod that curl's sidecar has never ejected: step 5 ("cluster1 comes back") is served by
    v1 at once instead of failing with 503 UH until v1's ejection is served."""
    lesson = _lesson("25-multicluster-failover")
    TwoClusterDataPlane(lesson, fakes).attach()
    run = _runner(ready).run(lesson, RunOptions(until_step=5))
    expected = SimRunner().run(lesson, RunOptions(until_step=5))
    assert all(c.passed for c in expected.steps[4].checks)
    assert not any(c.passed for c in run.steps[4].checks)
    served = {r.destination_version for r in run.steps[4].records if r.response_code == 200}
    assert served == {"v1"}
    to_v1 = [r for r in run.steps[2].records if r.destination_version == "v1"]
    assert to_v1 == []  # scaled to 0: not even a failed attempt reaches v1 in step 3


def test_a_context_that_is_not_the_declared_primary_is_refused(
    fakes: dict[str, FakeKube], ready: Path
) -> None:
    """Contexts swapped: each istiod's cluster ID and network differ from the lesson's; no
    remote secret: named with the istioctl command that adds it."""
    swapped = KubeRunner(contexts={"cluster1": "kind-west", "cluster2": "kind-east"},
                         kubeconfig=str(ready), timeouts=FAST, report=lambda _t: None)  # fmt: skip
    with pytest.raises(RunnerError) as err:
        swapped.run(_lesson("24-multicluster-load-balancing"), RunOptions())
    text = str(err.value)
    assert "context kind-west is not ready as cluster1" in text
    assert "istiod's cluster ID is cluster2, not cluster1" in text
    assert "label namespace istio-system topology.istio.io/network=network1" in text
    fakes["cluster2"].delete(("", "secrets", "istio-system", "istio-remote-secret-cluster1"))
    with pytest.raises(
        RunnerError, match="no remote secret for cluster1: istioctl create-remote-secret"
    ):
        _runner(ready).run(_lesson("24-multicluster-load-balancing"), RunOptions())


def test_cluster_check_checks_every_context_of_a_lesson(
    fakes: dict[str, FakeKube], ready: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``meshplay cluster check --lesson L --context cluster1=.. --context cluster2=..``: each
    context checked as its cluster (exit 0); a missing remote secret is named with its fix
    (exit 1)."""
    from playground.cli import main

    monkeypatch.setenv("KUBECONFIG", str(ready))
    monkeypatch.chdir(ROOT)
    args = ["cluster", "check", "--lesson", "lessons/24-multicluster-load-balancing",
            "--context", "cluster1=kind-east", "--context", "cluster2=kind-west"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "== cluster1: context kind-east" in out and "== cluster2: context kind-west" in out
    assert out.count("remote secrets of the other clusters") == 2
    fakes["cluster1"].delete(("", "secrets", "istio-system", "istio-remote-secret-cluster2"))
    assert main(args) == 1
    assert (
        "\u2718 no remote secret for cluster2: istioctl create-remote-secret"
        in capsys.readouterr().out
    )


def test_break_targets_name_the_cluster_and_the_gateway() -> None:
    """Which Deployments a break acts on, per cluster (no API needed): a whole cluster is its
    placed Deployments and its east-west gateway; the gateway alone is one per network, or the
    named cluster's; a workload the cluster does not run is an error naming both."""
    from cluster.kube.breaks import Breaks, select
    from cluster.kube.fleet import Fleet
    from cluster.kube.manifests import app_manifests
    from cluster.kube.multicluster import declared_clusters
    from cluster.kube.plan import PlanCluster
    from mesh.lesson import BreakAction

    lesson = _lesson("24-multicluster-load-balancing")
    app = [m for m in app_manifests(lesson.app) if m.kind == "Deployment"]
    fleet = Fleet({c: PlanCluster("sample", app) for c in CONTEXTS}, declared_clusters(lesson))
    breaks = Breaks(fleet)

    def targets(**kw: Any) -> list[tuple[str, str]]:
        action = BreakAction(**kw)
        chosen = select(app, action.workload, action.cluster, fleet)
        return sorted((c, d.name) for c, d in breaks.targets(action, chosen))

    assert targets(cluster="cluster2", down=True) == [
        ("cluster2", "helloworld-v2"),
        ("cluster2", "istio-eastwestgateway"),
    ]
    assert targets(workload="istio-eastwestgateway", down=True) == [
        ("cluster1", "istio-eastwestgateway"),
        ("cluster2", "istio-eastwestgateway"),
    ]
    assert targets(workload="istio-eastwestgateway", cluster="cluster1", down=True) == [
        ("cluster1", "istio-eastwestgateway")
    ]
    assert targets(workload="helloworld", down=True) == [
        ("cluster1", "helloworld-v1"),
        ("cluster2", "helloworld-v2"),
    ]
    with pytest.raises(RunnerError, match='no Deployment "helloworld-v1" in cluster cluster2'):
        targets(workload="helloworld-v1", cluster="cluster2", down=True)
    with pytest.raises(RunnerError, match='no cluster "cluster3"'):
        targets(cluster="cluster3", down=True)


def fast_kube(**options: Any) -> KubeRunner:
    """The kube runner as ``meshplay`` builds it from its options, with short waits (what
    ``playground.runners`` builds when a test points ``RUNNERS["kube"]`` here)."""
    return KubeRunner(**options, timeouts=FAST, report=lambda _t: None)


def test_compare_passes_a_context_per_cluster_to_the_kube_side(
    fakes: dict[str, FakeKube], ready: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``meshplay compare L --a sim --b kube --context cluster1=.. --context cluster2=..``: the
    kube side runs on both contexts (each Deployment in its cluster) and agrees with the
    simulator; contexts that do not fit the lesson exit 2 before anything runs."""
    from playground.cli import main
    from playground.runners import RUNNERS

    monkeypatch.setenv("KUBECONFIG", str(ready))
    monkeypatch.chdir(ROOT)
    monkeypatch.setitem(RUNNERS, "kube", f"{__name__}:fast_kube")
    name = "24-multicluster-load-balancing"
    plane = TwoClusterDataPlane(_lesson(name), fakes)
    plane.attach()
    compare = ["compare", f"lessons/{name}", "--a", "sim", "--b", "kube"]
    args = [*compare, "--context", "cluster1=kind-east", "--context", "cluster2=kind-west"]
    assert main(args) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "sim vs kube" in out and "AGREE" in out.splitlines()[-1]
    assert (set(_deployments(fakes["cluster1"])), set(_deployments(fakes["cluster2"]))) == PLACED[
        name
    ]
    assert {c for c, _ in plane.generators} == {"cluster1"}
    generators = len(plane.generators)
    for wrong, says in [
        (["--context", "cluster1=kind-east"], "no kube context for cluster2"),
        (["--context", "kind-east"], "give each its kube context"),
        (["--context", "cluster1=a", "--context", "cluster3=b"], "declares no cluster cluster3"),
    ]:
        assert main([*compare, *wrong]) == 2
        assert says in capsys.readouterr().err
    assert main(["compare", f"lessons/{name}", "--context", "cluster1=kind-east"]) == 2
    assert "options of a kube runner" in capsys.readouterr().err
    assert len(plane.generators) == generators  # refused before any run
