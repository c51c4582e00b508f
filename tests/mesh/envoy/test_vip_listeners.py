"""Per-VIP TCP listeners follow the proxy's view of the registry: Sidecar egress hosts and a
Service's ``networking.istio.io/exportTo`` decide which ``<VIP>_<port>`` a sidecar gets."""

from __future__ import annotations

from mesh.envoy import translate_proxy
from mesh.source import load_text
from mesh.topology import build_topology

MESH = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: 10.96.9.9
  selector: {app: db}
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata:
  name: secret-db
  namespace: data
  annotations: {networking.istio.io/exportTo: "."}
spec:
  clusterIP: 10.96.9.10
  selector: {app: db}
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: app}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers: [{name: c, image: c}]
"""

SCOPED = """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: app}
spec:
  egress: [{hosts: ["./*"]}]
"""


def _tcp_listener_names(text: str) -> list[str]:
    loaded = load_text(text, "mesh.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    topology = build_topology(loaded.resources)
    proxy = translate_proxy(loaded.resources, topology, "client-0")
    return [x["name"] for x in proxy.listeners if not x["name"].startswith(("0.0.0.0", "virtual"))]


def test_exported_tcp_services_and_the_gateway_get_vip_listeners_unexported_ones_do_not() -> None:
    names = _tcp_listener_names(MESH)
    assert "10.96.9.9_5432" in names
    assert "10.96.9.10_5432" not in names  # exportTo "." keeps secret-db inside namespace data
    assert [n for n in names if n.endswith("_443")]  # the ingress gateway's TCP port, at its VIP


def test_sidecar_egress_scoping_drops_the_vip_listeners_of_services_it_does_not_import() -> None:
    assert _tcp_listener_names(MESH + SCOPED) == []


CIDR_ON_HTTP_PORT = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: app}
spec:
  hosts: [legacy.example.com]
  addresses: [192.0.2.0/24]
  resolution: NONE
  ports: [{number: 80, name: tcp-legacy, protocol: TCP}]
"""


def test_a_cidr_tcp_entry_on_an_http_wildcard_port_turns_it_into_a_sniffed_listener() -> None:
    # istiod's TCP-over-HTTP merge: one 0.0.0.0_80 with the HCM chain (http/1.1, h2c) and the
    # entry's prefix_ranges chain; other non-HTTP bytes take PassthroughFilterChain
    loaded = load_text(MESH + CIDR_ON_HTTP_PORT, "mesh.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    proxy = translate_proxy(loaded.resources, build_topology(loaded.resources), "client-0")
    names = [x["name"] for x in proxy.listeners]
    assert len(names) == len(set(names))
    http = proxy.listener("0.0.0.0_80")  # the ingress gateway's http2 port
    assert http is not None
    matches = [c["filter_chain_match"] for c in http["filter_chains"]]
    assert {"prefix_ranges": [{"address_prefix": "192.0.2.0", "prefix_len": 24}]} in matches
    assert {"application_protocols": ["http/1.1", "h2c"], "transport_protocol": "raw_buffer"} in (
        matches
    )
    assert http["default_filter_chain"]["name"] == "PassthroughFilterChain"
    assert [f["name"] for f in http["listener_filters"]] == [
        "envoy.filters.listener.http_inspector"
    ]
