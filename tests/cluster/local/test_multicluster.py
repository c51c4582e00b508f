"""Two clusters on different networks on one machine, with real Envoy: helloworld v1 in
cluster1 (with the client, curl), v2 in cluster2, 20 ms one way between the networks, and
Istio's ``cross-network-gateway`` (AUTO_PASSTHROUGH on 15443) on each east-west gateway.

What it proves: curl's requests reach the service's endpoints in both clusters, cluster2's
through cluster2's east-west gateway; the hop is Istio mTLS end to end with one root (v2's
sidecar sees curl's SPIFFE identity, which the gateway could not have forged: it never holds
the session keys); the gateway's config passes ``envoy --mode validate``; the cross-network
requests pay the declared latency twice; a cluster is a set of PIDs; and when cluster2's
east-west gateway stops, curl's requests fail over to cluster1 (outlier detection ejects the
gateway endpoint, retries cover the requests in between)."""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cluster.accesslog import AccessLogTail
from cluster.local.apps import ROOT
from cluster.local.envoy import envoy_binary
from cluster.local.multicluster import MultiClusterMesh, link_name
from cluster.local.procs import pid_alive
from cluster.local.traffic import Target, drive
from mesh.app import load_app
from mesh.envoy.bootstrap import bootstrap
from mesh.lesson import BreakAction, RequestSpec, TrafficSpec
from mesh.model import Resource
from mesh.model.common import Duration
from mesh.model.multicluster import Latency, MeshCluster, MultiCluster, NetworkLink
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.source.load import load_text

pytestmark = pytest.mark.envoy


ONE_WAY_MS = 20.0
CURL = "cluster.local/ns/sample/sa/curl"
HOST = "helloworld.sample.svc.cluster.local"
SNI_CLUSTER = f"outbound_.5000_._.{HOST}"

EXPOSE = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
    - port: {number: 15443, name: tls, protocol: TLS}
      tls: {mode: AUTO_PASSTHROUGH}
      hosts: ["*.local"]
"""

OUTLIER = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: sample}
spec:
  host: helloworld.sample.svc.cluster.local
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
"""


def _yaml(text: str) -> list[Resource]:
    loaded = load_text(text)
    assert not loaded.errors, loaded.errors
    return list(loaded.resources)


def _resources() -> list[Resource]:
    app = load_app(ROOT / "lessons" / "apps" / "helloworld")
    declared = MultiCluster.of(
        (
            MeshCluster(name="cluster1", network="network1", workloads=("curl", "helloworld-v1")),
            MeshCluster(name="cluster2", network="network2", workloads=("helloworld-v2",)),
        ),
        (
            NetworkLink(
                between=("network1", "network2"),
                latency=Latency(median=Duration(ONE_WAY_MS / 1000.0)),
            ),
        ),
    )
    return [*app.resources, declared, *_yaml(EXPOSE)]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiClusterMesh]:
    app = load_app(ROOT / "lessons" / "apps" / "helloworld")
    with MultiClusterMesh(tmp_path_factory.mktemp("multicluster"), behavior=app.behavior) as m:
        m.start(_resources(), timeout_s=120.0)
        yield m


def _send(mesh: MultiClusterMesh, count: int) -> list[RequestRecord]:
    """``count`` GET /hello from curl's sidecar; every proxy's records of them."""
    tails = [AccessLogTail(p) for p in mesh.access_logs()]
    for t in tails:
        t.skip_to_end()
    curl = mesh.pods_of("curl")[0]
    spec = TrafficSpec(
        requests=(RequestSpec(path="/hello"),), concurrency=2, count=count, duration_s=60.0
    )
    target = Target("127.0.0.1", curl.ports.listeners[5000], "helloworld.sample:5000", True)
    report = drive(spec, target, random.Random(5))
    assert report.sent == count
    time.sleep(0.4)  # access logs are flushed every 100 ms
    return [r for t in tails for r in t.read()]


def _served_by(records: list[RequestRecord]) -> dict[str, RequestRecord]:
    """request id -> the destination (server sidecar) record of helloworld."""
    return {
        r.request_id: r
        for r in records
        if r.reporter is Reporter.DESTINATION and r.destination_workload.startswith("helloworld")
    }


def _sni_connections(mesh: MultiClusterMesh, cluster: str) -> int:
    gateway = mesh.eastwest_gateway(cluster)
    assert gateway is not None and gateway.proxy is not None
    stats = gateway.proxy.admin.stats(rf"^cluster\.{SNI_CLUSTER}\.upstream_cx_total$")
    return sum(stats.values())


def test_each_cluster_is_its_own_set_of_processes(mesh: MultiClusterMesh) -> None:
    clusters = mesh.clusters()
    assert {p.pod.workload for p in clusters["cluster2"]} == {
        "helloworld-v2",
        "istio-eastwestgateway",
    }
    assert "curl" in {p.pod.workload for p in clusters["cluster1"]}
    one, two = set(mesh.cluster_pids("cluster1")), set(mesh.cluster_pids("cluster2"))
    assert one and two and not one & two
    assert mesh.supervisor.procs[link_name("cluster1")].pid in one
    assert all(pid_alive(pid) for pid in one | two)


def test_requests_reach_both_clusters_and_cluster2_through_its_eastwest_gateway(
    mesh: MultiClusterMesh,
) -> None:
    before = _sni_connections(mesh, "cluster2")
    records = _send(mesh, 60)
    served = _served_by(records)
    versions = Counter(r.destination_version for r in served.values())
    assert len(served) == 60 and all(r.ok for r in served.values()), versions
    assert versions["v1"] >= 10 and versions["v2"] >= 10, versions
    # curl's sidecar sent cluster2's share to cluster2's east-west gateway (its 15443, via the
    # link), which forwarded it by SNI to v2's sidecar
    assert _sni_connections(mesh, "cluster2") > before
    gateway = mesh.eastwest_gateway("cluster2")
    assert gateway is not None
    gateway_port = gateway.ports.listeners[15443]
    link_port = mesh.via["cluster1"][gateway_port]
    sources = {r.request_id: r for r in records if r.reporter is Reporter.SOURCE}
    v2_hosts = {
        sources[i].upstream_host for i, r in served.items() if r.destination_version == "v2"
    }
    assert v2_hosts == {f"127.0.0.1:{link_port}"}


def test_the_cross_cluster_hop_is_mtls_with_the_shared_root(mesh: MultiClusterMesh) -> None:
    served = _served_by(_send(mesh, 30))
    remote = [r for r in served.values() if r.destination_version == "v2"]
    assert remote
    for r in remote:
        # v2's sidecar terminated TLS itself and verified curl's certificate: its SAN is the
        # SPIFFE id cluster1's sidecar presented, signed by the root both clusters trust
        assert r.source_principal == CURL
        assert r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
        assert r.destination_principal == "cluster.local/ns/sample/sa/default"


def test_the_eastwest_gateway_config_passes_envoy_validate(
    mesh: MultiClusterMesh, tmp_path: Path
) -> None:
    gateway = mesh.eastwest_gateway("cluster2")
    assert gateway is not None
    config = mesh._translate()[gateway.pod.name]
    listener = next(x for x in config.listeners if "15443" in x["name"])
    names = {
        n
        for chain in listener["filter_chains"]
        for n in chain.get("filter_chain_match", {}).get("server_names", [])
    }
    assert SNI_CLUSTER in names
    issued = mesh.ca.issue("istio-system", gateway.pod.service_account).secrets().values()
    secrets = tuple(issued)
    path = tmp_path / "eastwest.yaml"
    path.write_text(yaml.safe_dump(bootstrap(config, admin_port=0, secrets=secrets)))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]


def test_cross_network_requests_pay_the_declared_latency_each_way(
    mesh: MultiClusterMesh,
) -> None:
    records = _send(mesh, 80)
    served = _served_by(records)
    sources = [r for r in records if r.reporter is Reporter.SOURCE and r.request_id in served]
    by_version: dict[str, list[float]] = {"v1": [], "v2": []}
    for r in sources:
        by_version[served[r.request_id].destination_version].append(r.duration_ms)
    added = statistics.median(by_version["v2"]) - statistics.median(by_version["v1"])
    # a request and its answer cross the link once each; connections are reused, so no
    # handshake is paid on most requests
    assert 2 * ONE_WAY_MS - 3.0 <= added <= 2 * ONE_WAY_MS + 15.0, by_version


def test_stopping_cluster2s_eastwest_gateway_fails_over_to_cluster1(
    mesh: MultiClusterMesh,
) -> None:
    mesh.apply([*_resources(), *_yaml(OUTLIER)])
    gateway = mesh.eastwest_gateway("cluster2")
    assert gateway is not None and gateway.proxy is not None
    pid = mesh.supervisor.procs[gateway.proxy.process_name].pid
    mesh.stop_eastwest_gateway("cluster2")
    assert not pid_alive(pid) and gateway.dead
    assert pid not in mesh.cluster_pids("cluster2")
    records = _send(mesh, 40)
    sources = [r for r in records if r.reporter is Reporter.SOURCE and r.source_workload == "curl"]
    served = _served_by(records)
    # every request answered, by cluster1's v1: the failed tries to the gateway were retried
    # on another host, and outlier detection ejected the gateway endpoint
    assert len(sources) == 40 and all(r.ok for r in sources), Counter(
        (r.response_code, r.flags_text) for r in sources
    )
    assert {r.destination_version for r in served.values()} == {"v1"}
    curl = mesh.pods_of("curl")[0]
    assert curl.proxy is not None
    ejected = curl.proxy.admin.stats(
        rf"^cluster\.outbound\|5000\|\|{HOST}\.outlier_detection\.ejections_enforced_total$"
    )
    assert sum(ejected.values()) >= 1


def test_a_whole_cluster_stops_by_pid_and_comes_back(mesh: MultiClusterMesh) -> None:
    """(After the gateway test.) ``cluster2`` down: every process of it, its link included,
    is gone and cluster1 keeps answering; ``restore`` of the cluster starts every stopped pod
    of it again (the east-west gateway the previous test stopped too) and its link."""
    before = mesh.cluster_pids("cluster2")
    assert before
    mesh.stop_cluster("cluster2")
    assert mesh.cluster_pids("cluster2") == []
    assert not any(pid_alive(pid) for pid in before)
    sources = [r for r in _send(mesh, 20) if r.reporter is Reporter.SOURCE]
    assert len(sources) == 20 and all(r.ok for r in sources)
    mesh.break_workload(BreakAction(cluster="cluster2", restore=True))
    after = mesh.cluster_pids("cluster2")
    assert len(after) == 4  # v2's app and Envoy, the east-west gateway's Envoy, the link
    assert all(pid_alive(pid) for pid in after)


def test_clusters_on_one_network_reach_each_others_pods_directly(tmp_path: Path) -> None:
    """Same network: no east-west gateway; curl's sidecar connects to v2's sidecar in cluster2
    itself (through the link, paying the latency declared for the network with itself)."""
    app = load_app(ROOT / "lessons" / "apps" / "helloworld")
    flat = MultiCluster.of(
        (
            MeshCluster(name="cluster1", network="net", workloads=("curl", "helloworld-v1")),
            MeshCluster(name="cluster2", network="net", workloads=("helloworld-v2",)),
        ),
        (NetworkLink(between=("net", "net"), latency=Latency(median=Duration(0.015))),),
    )
    with MultiClusterMesh(tmp_path / "flat", behavior=app.behavior) as mesh:
        mesh.start([*app.resources, flat], timeout_s=120.0)
        assert mesh.eastwest_gateway("cluster2") is None
        records = _send(mesh, 40)
        served = _served_by(records)
        assert {r.destination_version for r in served.values()} == {"v1", "v2"}
        v2 = mesh.pods_of("helloworld-v2")[0]
        link_port = mesh.via["cluster1"][v2.ports.inbound[5000]]
        sources = {r.request_id: r for r in records if r.reporter is Reporter.SOURCE}
        to_v2 = [sources[i] for i, r in served.items() if r.destination_version == "v2"]
        assert {r.upstream_host for r in to_v2} == {f"127.0.0.1:{link_port}"}
        assert set(mesh.log_clusters().values()) == {"cluster1", "cluster2"}
        assert statistics.median(r.duration_ms for r in to_v2) >= 30.0
