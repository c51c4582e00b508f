"""Split-horizon EDS and the east-west gateway, as istiod builds them for multi-primary on
different networks (docs/multicluster.md): a client sees its own network's pods directly and
another network's pods as that network's gateway ``:15443`` (weight = how many pods it stands
for, in their locality), the gateway sees only its own network and routes by the SNI
``outbound_.PORT_.SUBSET_.HOST``; real Envoy accepts the gateway's and the client's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster.local.ca import LocalCA
from mesh.app import load_app
from mesh.envoy.bootstrap import bootstrap
from mesh.envoy.translate import ProxyConfig, translate_proxy
from mesh.model import Resource
from mesh.model.multicluster import MeshCluster, MultiCluster, WorkloadPlacement
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import validate

ROOT = Path(__file__).resolve().parents[3]
HOST = "helloworld.sample.svc.cluster.local"

ISTIO = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
    - port: {number: 15443, name: tls, protocol: TLS}
      tls: {mode: AUTO_PASSTHROUGH}
      hosts: ["*.local"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: sample}
spec:
  host: helloworld
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
"""

DISABLE = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: plain, namespace: sample}
spec:
  mtls: {mode: DISABLE}
"""


def _mesh(second_network: str = "network2", extra: str = "") -> list[Resource]:
    app = load_app(ROOT / "lessons" / "apps" / "helloworld")
    loaded = load_text(ISTIO + ("---\n" + extra if extra else ""), "istio.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    declared = MultiCluster.of(
        (
            MeshCluster(
                name="cluster1",
                network="network1",
                locality="us-east/zone1",
                workloads=("curl", "helloworld-v1"),
            ),
            MeshCluster(
                name="cluster2",
                network=second_network,
                locality="us-west/zone1",
                workloads=(WorkloadPlacement(name="helloworld-v2", replicas=2),),
            ),
        )
    )
    return [*app.resources, *loaded.resources, declared]


def _proxy(resources: list[Resource], pod: str) -> ProxyConfig:
    return translate_proxy(resources, build_topology(resources), pod)


def _hosts(config: ProxyConfig, cluster: str) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(address:port, weight, locality, istio metadata) of each endpoint of ``cluster``."""
    cla = next(c for c in config.endpoints if c["cluster_name"] == cluster)
    out = []
    for group in cla["endpoints"]:
        loc = "/".join(group.get("locality", {}).values())
        for ep in group["lb_endpoints"]:
            sock = ep["endpoint"]["address"]["socket_address"]
            meta = ep["metadata"]["filter_metadata"]
            out.append(
                (f"{sock['address']}:{sock['port_value']}", ep["load_balancing_weight"], loc, meta)
            )
    return out


def test_a_remote_network_is_its_gateway_weighted_by_the_pods_it_stands_for() -> None:
    resources = _mesh()
    topo = build_topology(resources)
    gw2 = topo.network_gateways["network2"][0]
    v1 = topo.pod("helloworld-v1-0")
    assert v1 is not None
    hosts = _hosts(_proxy(resources, "curl-0"), f"outbound|5000||{HOST}")
    assert [(h[0], h[1], h[2]) for h in hosts] == [
        (f"{v1.address}:5000", 1, "us-east/zone1"),
        (f"{gw2.address}:15443", 2, "us-west/zone1"),
    ]
    local, gateway = hosts[0][3], hosts[1][3]
    assert local["istio"]["workload"] == "helloworld-v1;sample;helloworld;v1;cluster1"
    assert local["istio"]["network"] == "network1"
    assert gateway["envoy.transport_socket_match"] == {"tlsMode": "istio"}
    assert gateway["istio"]["workload"] == ";;;;cluster2"
    assert gateway["istio"]["network"] == "network2"
    # a subset only counts its own remote pods
    v2 = _hosts(_proxy(resources, "curl-0"), f"outbound|5000|v2|{HOST}")
    assert [(h[0], h[1]) for h in v2] == [(f"{gw2.address}:15443", 2)]


def test_the_gateway_sees_only_its_own_network_and_routes_by_sni() -> None:
    resources = _mesh()
    gw = _proxy(resources, "istio-eastwestgateway-1")
    hosts = _hosts(gw, f"outbound|5000||{HOST}")
    assert {h[3]["istio"]["pod"] for h in hosts} == {"helloworld-v2-0", "helloworld-v2-1"}
    (listener,) = [x for x in gw.listeners if x["name"] == "0.0.0.0_15443"]
    names = {n for c in listener["filter_chains"] for n in c["filter_chain_match"]["server_names"]}
    assert {f"outbound_.5000_._.{HOST}", f"outbound_.5000_.v1_.{HOST}",
            f"outbound_.5000_.v2_.{HOST}"} <= names  # fmt: skip
    assert f"outbound_.5000_.v2_.{HOST}" in {c["name"] for c in gw.clusters}


def test_one_network_means_direct_pod_endpoints_in_every_cluster() -> None:
    resources = _mesh(second_network="network1")
    hosts = _hosts(_proxy(resources, "curl-0"), f"outbound|5000||{HOST}")
    assert [h[1] for h in hosts] == [1, 1, 1]
    assert {h[3]["istio"]["pod"] for h in hosts} == {
        "helloworld-v1-0", "helloworld-v2-0", "helloworld-v2-1"}  # fmt: skip
    assert {h[3]["istio"]["workload"].rsplit(";", 1)[1] for h in hosts} == {"cluster1", "cluster2"}


def test_remote_pods_without_istio_mtls_are_unreachable_across_networks() -> None:
    """SNI routing needs the client's Istio mTLS: with mTLS disabled the remote pods vanish."""
    resources = _mesh(extra=DISABLE)
    hosts = _hosts(_proxy(resources, "curl-0"), f"outbound|5000||{HOST}")
    assert [h[3]["istio"]["pod"] for h in hosts] == ["helloworld-v1-0"]


@pytest.mark.envoy
@pytest.mark.parametrize("pod", ["istio-eastwestgateway-1", "curl-0"])
def test_real_envoy_accepts_the_gateway_and_the_client(pod: str, tmp_path: Path) -> None:
    """Both proxies' certificates come from one root (the clusters share their root of trust)."""
    resources = _mesh()
    me = build_topology(resources).pod(pod)
    assert me is not None
    issued = LocalCA(tmp_path / "ca").issue(me.namespace, me.service_account).secrets().values()
    secrets = tuple(issued)
    doc = bootstrap(_proxy(resources, pod), admin_port=free_port(), secrets=secrets)
    code, out = validate(doc, tmp_path)
    assert code == 0, out
