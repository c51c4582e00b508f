"""``istio.alpn`` in the translation, and the simulator reading it back.

istiod's ``istio.alpn`` decides per request from the route's cluster: nothing for a cluster
whose DestinationRule originates TLS (``istio.alpn_override: "false"``), ``istio-h2`` for an
HTTP/2 cluster, ``istio-http/1.1`` otherwise. The translation makes that choice per route and,
where a route's weighted clusters differ, per weighted cluster; the simulator must resolve the
same list for whichever cluster a request picks.
"""

from __future__ import annotations

from typing import Any

from mesh.envoy import translate
from mesh.envoy.alpn import ALPN_H2, ALPN_HTTP11
from mesh.envoy_api import type_urls as tu
from mesh.source import load_text
from mesh.topology import build_topology
from sim.upstream_alpn import upstream_alpn
from sim.xds import HcmSpec, compile_route_config
from tests.sim.harness import sample_app

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: http, port: 7070, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: rpc, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: grpc, port: 7071, targetPort: 9081}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: raw, namespace: t}
spec:
  host: raw
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: SIMPLE}}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: raw, namespace: t}
spec:
  hosts: [raw]
  http:
  - route:
    - {destination: {host: raw, subset: v1}, weight: 50}
    - {destination: {host: raw, subset: v2}, weight: 50}
"""
RAW = "raw.t.svc.cluster.local"
RPC = "rpc.t.svc.cluster.local"


def _client() -> Any:
    resources = [*sample_app("app").resources, *load_text(CONFIG, default_namespace="t").resources]
    return translate(resources, build_topology(resources))["client-v1-0"]


def _hcm_filters(proxy: Any, route_config: str) -> list[dict[str, Any]]:
    for listener in proxy.listeners:
        for chain in listener.get("filter_chains") or ():
            for f in chain["filters"]:
                config = f.get("typed_config") or {}
                if (config.get("rds") or {}).get("route_config_name") == route_config:
                    filters: list[dict[str, Any]] = config["http_filters"]
                    return filters
    raise AssertionError(route_config)


def _vhost_route(proxy: Any, route_config: str, host: str) -> dict[str, Any]:
    rc = proxy.route(route_config)
    (vh,) = [v for v in rc["virtual_hosts"] if v["name"].startswith(host)]
    route: dict[str, Any] = vh["routes"][0]
    return route


def test_clusters_carry_istiods_alpn_override_for_tls_origination_only() -> None:
    proxy = _client()
    meta = {
        c["name"]: c["metadata"]["filter_metadata"]["istio"]
        for c in proxy.clusters
        if c["name"].endswith(RAW)
    }
    assert meta[f"outbound|7070|v1|{RAW}"]["alpn_override"] == "false"
    assert "alpn_override" not in meta[f"outbound|7070|v2|{RAW}"]
    assert "alpn_override" not in meta[f"outbound|7070||{RAW}"]


def test_the_outbound_hcm_sets_the_http11_list_before_fault() -> None:
    names = [f["name"] for f in _hcm_filters(_client(), "7070")]
    assert names.index(tu.FILTER_ISTIO_ALPN) == names.index(tu.FILTER_FAULT) - 1


def test_routes_choose_per_cluster_and_the_sim_resolves_the_same() -> None:
    proxy = _client()
    # a route to an HTTP/2 cluster: its own set_filter_state with istio-h2
    h2 = _vhost_route(proxy, "7071", RPC)
    assert h2["typed_per_filter_config"][tu.FILTER_ISTIO_ALPN]["@type"] == tu.SET_FILTER_STATE
    # a weighted route, SIMPLE v1 + auto-mTLS v2: only v1 switches the filter off
    weighted = _vhost_route(proxy, "7070", RAW)
    assert tu.FILTER_ISTIO_ALPN not in (weighted.get("typed_per_filter_config") or {})
    entries = {w["name"]: w for w in weighted["route"]["weighted_clusters"]["clusters"]}
    v1 = entries[f"outbound|7070|v1|{RAW}"]["typed_per_filter_config"][tu.FILTER_ISTIO_ALPN]
    assert v1 == {"@type": tu.ROUTE_FILTER_CONFIG, "disabled": True}
    assert "typed_per_filter_config" not in entries[f"outbound|7070|v2|{RAW}"]
    # the simulator, from the same dicts
    for port, cluster, want in [
        ("7071", f"outbound|7071||{RPC}", ALPN_H2),
        ("7070", f"outbound|7070|v1|{RAW}", ()),
        ("7070", f"outbound|7070|v2|{RAW}", ALPN_HTTP11),
    ]:
        hcm = HcmSpec.from_envoy(
            {"rds": {"route_config_name": port}, "http_filters": _hcm_filters(proxy, port)}
        )
        table = compile_route_config(proxy.route(port))
        host = RPC if port == "7071" else RAW
        (vh,) = [v for v in table.vhosts if v.name.startswith(host)]
        assert upstream_alpn(hcm, vh.routes[0], cluster) == want, cluster
