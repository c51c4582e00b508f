"""``ADMIN_PORT`` on a cluster: every service container gets the same knob port, only service
containers get it, nothing probes it, and the runner's knob calls use it.

The services bind ``ADMIN_PORT`` on 127.0.0.1 only (``services/common/server.py``), so on a
cluster the knobs are reached from inside the pod (``kubectl exec``) and from nowhere else; a
kubelet ``httpGet`` probe (which targets the pod IP) on that port would fail, and a runner that
sets knobs on another port would be refused.
"""

from __future__ import annotations

from typing import Any

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import LiveCluster
from cluster.kube.manifests import KNOB_PORT, app_manifests
from cluster.kube.pods import PodRef
from tests.cluster.kube.fake_api import FakeKube
from tests.cluster.kube.test_cluster_cli import APP, FAST


def _service(container: dict[str, Any]) -> bool:
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    return any(str(a).startswith("services.") for a in argv)


def _check_containers(deployments: list[dict[str, Any]]) -> tuple[int, int]:
    services = others = 0
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            admins = [e for e in c.get("env") or [] if e["name"] == "ADMIN_PORT"]
            if not _service(c):
                assert not admins, (d["metadata"]["name"], c["name"])
                others += 1
                continue
            services += 1
            assert admins == [{"name": "ADMIN_PORT", "value": str(KNOB_PORT)}], d["metadata"]
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            assert KNOB_PORT not in ports.values(), "the knob port is not the pod's to expose"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                target = (c.get(probe) or {}).get("httpGet", {}).get("port")
                assert target not in (KNOB_PORT, str(KNOB_PORT)), (d["metadata"]["name"], probe)
                assert ports.get(target, target) != KNOB_PORT
    return services, others


def test_every_service_container_and_only_those_get_the_one_knob_port() -> None:
    """What the runner applies (:func:`app_manifests`): the shop's 8 service Deployments each
    with ``ADMIN_PORT=15999`` once, PostgreSQL and Redis without it, no probe on it."""
    deployments = [m.body for m in app_manifests(APP) if m.kind == "Deployment"]
    assert _check_containers(deployments) == (8, 2)


def test_cluster_up_applies_it_and_knobs_reach_exactly_that_port(
    fake: FakeKube, api: KubeApi
) -> None:
    """``meshplay cluster up`` on the in-memory API stores the same; the runner's knob call
    (``kubectl exec`` into the service container, then 127.0.0.1:ADMIN_PORT) reaches the
    service, and a call on any other port is refused, as the fake's containers now answer."""
    admin.up(api, APP, "shop", monitoring=False, report=lambda _t: None, timeouts=FAST)
    assert _check_containers(fake.find("Deployment", "shop")) == (8, 2)
    pod = next(p for p in fake.find("Pod", "shop") if p["metadata"]["name"].startswith("order"))
    ref = PodRef(pod["metadata"]["name"], "shop", "", pod)
    cluster = LiveCluster(api, "shop")
    cluster.set_knobs([ref], "order", {"latency_ms": 5.0})
    assert fake.pods[(ref.namespace, ref.name)].knobs == {"latency_ms": 5.0}
    code, _, err = fake.exec(ref.namespace, ref.name, "order",
                             ["python", "-m", "cluster.kube.loadgen", "knobs", "8080", "{}"])  # fmt: skip
    assert code == 1 and "refused" in err
