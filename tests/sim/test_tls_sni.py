"""TLS egress routed by SNI on a client sidecar (the app speaks TLS itself).

Two TLS ServiceEntries without addresses share port 443: istiod cannot tell them apart by the
destination address, so the wildcard ``0.0.0.0_443`` listener runs ``tls_inspector`` and has a
chain per host matched by ``server_names``; a VirtualService ``tls`` route sends one SNI to
another host; other SNIs take the fall-through chain (PassthroughCluster under ALLOW_ANY,
BlackHoleCluster under REGISTRY_ONLY)."""

from __future__ import annotations

import pytest

from mesh.lesson import TrafficSpec
from mesh.topology import MeshConfig
from sim.accesslog import TcpOutcome
from sim.traffic import TrafficDriver
from tests.sim.harness import make_world

EGRESS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay, namespace: t}
spec:
  hosts: [api.pay.example, legacy.pay.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay-eu, namespace: t}
spec:
  hosts: [eu.pay.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy-pay, namespace: t}
spec:
  hosts: [legacy.pay.example]
  tls:
  - match: [{port: 443, sniHosts: [legacy.pay.example]}]
    route: [{destination: {host: eu.pay.example, port: {number: 443}}}]
"""
ADDRESS = "198.51.100.7:443"
"""Where DNS sent the app: an address no ServiceEntry declares (the SNI decides)."""


def _open(sni: str, policy: str = "ALLOW_ANY") -> TcpOutcome:
    world = make_world(EGRESS, config=MeshConfig(outbound_traffic_policy=policy))
    spec = TrafficSpec(
        from_="client", to=ADDRESS, protocol="tcp", count=1, send_bytes=500, receive_bytes=4000,
        sni=sni,
    )  # fmt: skip
    driver = TrafficDriver(world, spec)
    proc = world.env.process(driver.open(driver.connection()))
    world.env.run(until=proc)
    assert isinstance(proc.value, TcpOutcome)
    return proc.value


@pytest.mark.parametrize(
    ("sni", "policy", "cluster", "flags"),
    [
        ("api.pay.example", "ALLOW_ANY", "outbound|443||api.pay.example", ()),
        ("eu.pay.example", "REGISTRY_ONLY", "outbound|443||eu.pay.example", ()),
        # the VirtualService tls route: SNI legacy.pay.example goes to eu.pay.example
        ("legacy.pay.example", "ALLOW_ANY", "outbound|443||eu.pay.example", ()),
        # an SNI no chain names: the fall-through of the outbound traffic policy
        ("www.example.org", "ALLOW_ANY", "PassthroughCluster", ()),
        ("www.example.org", "REGISTRY_ONLY", "BlackHoleCluster", ("UH",)),
        # no TLS at all (no SNI): the same fall-through
        ("", "ALLOW_ANY", "PassthroughCluster", ()),
    ],
)
def test_tls_egress_takes_the_chain_of_its_sni(
    sni: str, policy: str, cluster: str, flags: tuple[str, ...]
) -> None:
    out = _open(sni, policy)
    assert (out.upstream_cluster, out.flags) == (cluster, flags)
