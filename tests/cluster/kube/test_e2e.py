"""End to end on a real cluster with Istio (``-m kube``): runs only where one is reachable.

Set ``MESHPLAY_KUBE_CONTEXT`` to a kubeconfig context whose cluster ran ``meshplay cluster up``
(docs/kube-runner.md has the kind + istioctl walkthrough), and ``MESHPLAY_KUBE_CONTEXTS`` to
``cluster1=CTX,cluster2=CTX`` for the two-cluster test (docs/multicluster.md); without them the
tests are skipped with that reason. None of these has run on the machines this project is built on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesh.lesson import load_lesson
from mesh.runner import RunOptions

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[3]
CONTEXT = os.environ.get("MESHPLAY_KUBE_CONTEXT", "")
needs_cluster = pytest.mark.skipif(
    not CONTEXT,
    reason="MESHPLAY_KUBE_CONTEXT names no kubeconfig context: no real cluster to run on",
)


@needs_cluster
def test_the_cluster_is_ready_for_meshplay() -> None:
    """``meshplay cluster check`` finds nothing required missing."""
    from cluster.kube.admin import check
    from cluster.kube.api import KubeApi

    api = KubeApi.connect(CONTEXT)
    try:
        findings = check(api, "shop")
    finally:
        api.close()
    assert all(f.ok or not f.required for f in findings), "\n".join(f.line() for f in findings)


@needs_cluster
@pytest.mark.parametrize(
    "name", ["01-request-routing", "06-retries", "12-http-authorization", "15-network-policy"]
)
def test_lesson_passes_on_real_istio_and_leaves_only_the_app(name: str) -> None:
    """The lesson's expectations hold on real istiod and Envoy; afterwards no lesson resource
    or generator pod is left."""
    from cluster.kube import KubeRunner
    from cluster.kube.api import KubeApi

    run = KubeRunner(CONTEXT).run(load_lesson(ROOT / "lessons" / name), RunOptions())
    assert run.passed, [c.describe() for s in run.steps for c in s.checks if not c.passed]
    api = KubeApi.connect(CONTEXT)
    try:
        for kind, version in (("Pod", "v1"), ("VirtualService", "networking.istio.io/v1")):
            left, _ = api.list(version, kind, "shop", "meshplay.dev/part in (lesson,loadgen)")
            assert left == []
    finally:
        api.close()


CONTEXTS = os.environ.get("MESHPLAY_KUBE_CONTEXTS", "")
"""``cluster1=kind-east,cluster2=kind-west``: two contexts installed as Istio's multi-primary
on different networks (docs/multicluster.md, "On two kube contexts")."""
needs_two_clusters = pytest.mark.skipif(
    not CONTEXTS,
    reason="MESHPLAY_KUBE_CONTEXTS names no two kubeconfig contexts (cluster1=CTX,cluster2=CTX): "
    "no multi-primary mesh to run on",
)


@needs_two_clusters
def test_multicluster_lesson_passes_on_two_real_clusters() -> None:
    """Lesson 24 on two primaries on two networks: its expectations hold on real istiod, real
    east-west gateways and real Envoy, the records name both clusters, and afterwards no
    lesson resource or generator pod is left in either cluster."""
    from cluster.kube import KubeRunner
    from cluster.kube.api import KubeApi
    from cluster.kube.multicluster import cluster_contexts

    lesson = load_lesson(ROOT / "lessons" / "24-multicluster-load-balancing")
    contexts = cluster_contexts(lesson, CONTEXTS.split(","))
    run = KubeRunner(contexts=contexts).run(lesson, RunOptions())
    assert run.passed, [c.describe() for s in run.steps for c in s.checks if not c.passed]
    clusters = {r.destination_cluster for s in run.steps for r in s.records}
    assert {"cluster1", "cluster2"} <= clusters
    for context in contexts.values():
        api = KubeApi.connect(context)
        try:
            for kind, version in (("Pod", "v1"), ("DestinationRule", "networking.istio.io/v1")):
                left, _ = api.list(version, kind, "sample", "meshplay.dev/part in (lesson,loadgen)")
                assert left == []
        finally:
            api.close()
