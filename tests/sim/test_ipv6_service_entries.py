"""ServiceEntries at IPv6 addresses: the simulator follows the listeners istiod binds for them
(``<addr>_<port>`` at an IPv6 VIP, a sniffed one for an unknown protocol) and reports IPv6
upstream hosts the way Envoy prints them (``[addr]:port``)."""

from __future__ import annotations

from tests.sim.harness import make_world, one_connection, one_request, src

V6 = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v6-db, namespace: t}
spec:
  hosts: [db.v6.example]
  addresses: ["2001:db8::10"]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: "2001:db8::20"}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v6-web, namespace: t}
spec:
  hosts: [web.v6.example]
  addresses: ["2001:db8::30"]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: web}]
  endpoints: [{address: "2001:db8::31"}]
"""


def test_tcp_to_an_ipv6_service_entry_reaches_its_ipv6_endpoint() -> None:
    world = make_world(V6)
    out = one_connection(world, "db.v6.example")
    assert (out.local_failure, out.upstream_cluster) == ("", "outbound|5432||db.v6.example")
    (client,) = src(world.records)
    assert client.upstream_host == "[2001:db8::20]:5432"


def test_http_to_a_sniffed_port_at_an_ipv6_address_takes_its_sniffed_listener() -> None:
    world = make_world(V6)
    resp, lines = one_request(world, to="web.v6.example")
    assert resp.status == 200
    (client,) = src(world.records)
    assert (client.request_protocol, client.upstream_host) == ("http", "[2001:db8::31]:8000")
    assert any("listener 2001:db8::30_8000, filter chain #0" in line for line in lines)
