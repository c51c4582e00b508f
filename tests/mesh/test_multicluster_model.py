"""Multi-cluster declarations (docs/multicluster.md): lesson.yaml's ``clusters:``/``networks:``
are checked at their keys, and the topology places every pod in a cluster, a network and a
locality, with an east-west gateway per network; a single-cluster lesson is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError
from mesh.lesson import load_lesson
from mesh.model.multicluster import DEFAULT_CLUSTER, MultiCluster
from mesh.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]

DECLARED = """title: t
app: helloworld
clusters:
  - name: cluster1
    network: network1
    locality: us-east/zone1
    workloads: [curl, helloworld-v1]
  - name: cluster2
    network: network2
    locality: us-west/zone1
    workloads: [helloworld-v2, {name: helloworld-v1, replicas: 2, locality: us-west/zone2}]
networks:
  - between: [network1, network2]
    latency: {median: 30ms, p99: 40ms}
traffic: {from: curl, to: helloworld, count: 10, rate_rps: 10, requests: [{path: /hello}]}
steps:
  - name: s
"""


def _lesson(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "mc"
    folder.mkdir()
    (folder / "lesson.yaml").write_text(text)
    return folder


def test_pods_are_placed_per_cluster_with_network_locality_and_augmented_labels(
    tmp_path: Path,
) -> None:
    lesson = load_lesson(_lesson(tmp_path, DECLARED))
    topo = build_topology(lesson.app.resources)
    where = {p.name: (p.cluster, p.network, p.locality) for p in topo.pods}
    assert where["curl-0"] == ("cluster1", "network1", "us-east/zone1")
    assert where["helloworld-v1-0"] == ("cluster1", "network1", "us-east/zone1")
    assert where["helloworld-v1-1"] == ("cluster2", "network2", "us-west/zone2")
    assert where["helloworld-v1-2"] == ("cluster2", "network2", "us-west/zone2")
    assert where["helloworld-v2-0"] == ("cluster2", "network2", "us-west/zone1")
    # not placed: the first cluster
    assert where["sleep-0"][0] == "cluster1"
    assert where["istio-ingressgateway-0"][0] == "cluster1"
    v1 = topo.pod("helloworld-v1-1")
    assert v1 is not None
    assert v1.labels["topology.istio.io/cluster"] == "cluster2"
    assert v1.labels["topology.istio.io/network"] == "network2"
    assert v1.labels["topology.kubernetes.io/zone"] == "zone2"
    # one shared root and trust domain: the identity does not depend on the cluster
    assert v1.identity == "spiffe://cluster.local/ns/sample/sa/default"
    gateways = {net: [p.name for p in pods] for net, pods in topo.network_gateways.items()}
    assert gateways == {
        "network1": ["istio-eastwestgateway-0"],
        "network2": ["istio-eastwestgateway-1"],
    }
    assert topo.multicluster is not None
    latency = topo.multicluster.latency("network2", "network1")
    assert latency is not None and latency.median.seconds == pytest.approx(0.030)


def test_a_single_cluster_lesson_gets_no_declaration_and_the_same_pods() -> None:
    lesson = load_lesson(ROOT / "lessons" / "01-request-routing")
    assert not any(isinstance(r, MultiCluster) for r in lesson.app.resources)
    topo = build_topology(lesson.app.resources)
    assert topo.multicluster is None and topo.network_gateways == {}
    assert {p.cluster for p in topo.pods} == {DEFAULT_CLUSTER}
    assert not any("topology.istio.io/cluster" in p.labels for p in topo.pods)


def test_one_network_has_no_eastwest_gateway(tmp_path: Path) -> None:
    text = DECLARED.replace("network: network2", "network: network1").replace(
        "between: [network1, network2]", "between: [network1, network1]"
    )
    topo = build_topology(load_lesson(_lesson(tmp_path, text)).app.resources)
    assert topo.network_gateways == {}
    assert not any(p.workload == "istio-eastwestgateway" for p in topo.pods)


def test_every_mistake_is_reported_at_its_key(tmp_path: Path) -> None:
    text = """title: t
app: helloworld
clusters:
  - name: cluster1
    network: network1
    locality: us-east/zone1/a/b
    workloads: [curl, helloword-v1]
  - name: cluster1
    network: network2
    workloads: [{name: helloworld-v2, replicas: -1}]
networks:
  - between: [network1, netwrk2]
    latency: {median: 30ms, p99: 20ms}
steps:
  - name: s
    break: [{cluster: cluster3, down: true}, {kill: 1}]
"""
    with pytest.raises(DiagnosticError) as caught:
        load_lesson(_lesson(tmp_path, text))
    found = {(d.code, d.line, d.path) for d in caught.value.diagnostics}
    assert found == {
        ("MPY4001", 6, "clusters[0].locality"),
        ("MPY4003", 7, "clusters[0].workloads[1]"),
        ("MPY4001", 8, "clusters[1].name"),
        ("MPY4001", 10, "clusters[1].workloads[0].replicas"),
        ("MPY4003", 12, "networks[0].between[1]"),
        ("MPY4001", 13, "networks[0].latency.p99"),
        ("MPY4003", 16, "steps[0].break[0].cluster"),
        ("MPY4001", 16, "steps[0].break[1]"),
    }
    hints = {d.path: d.hint for d in caught.value.diagnostics}
    assert 'did you mean "helloworld-v1"' in hints["clusters[0].workloads[1]"]
    assert 'did you mean "network2"' in hints["networks[0].between[1]"]
