"""istiod puts a Service's ClusterIP into its outbound virtual host's domains, so an HTTP request
to ``http://<VIP>:<port>/`` is routed to the service rather than to the catch-all."""

from __future__ import annotations

from pathlib import Path

from mesh.envoy import translate_proxy
from mesh.source import load_paths
from mesh.topology import build_topology

TESTDATA = Path(__file__).parent / "testdata"


def test_a_service_vhost_answers_to_its_cluster_ip_with_and_without_the_port() -> None:
    loaded = load_paths([TESTDATA / "base.yaml", TESTDATA / "weights" / "input.yaml"])
    topology = build_topology(loaded.resources, include_istio_system=False)
    product = topology.service("product.shop.svc.cluster.local")
    assert product is not None and product.vip
    proxy = translate_proxy(loaded.resources, topology, "frontend-v1-0")
    route = proxy.route("8080")
    assert route is not None
    owners = {d: vh["name"] for vh in route["virtual_hosts"] for d in vh["domains"] if d != "*"}
    assert (
        owners[product.vip]
        == owners[f"{product.vip}:8080"]
        == ("product.shop.svc.cluster.local:8080")
    )
    assert len(owners) == sum(len(vh["domains"]) for vh in route["virtual_hosts"]) - 1
