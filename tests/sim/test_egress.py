"""The sim's egress: servers outside the mesh judge what a proxy's cluster puts on the wire
(``sim.outside``), and a proxy's connection to a gateway pod lands on the gateway's listeners
(an egress gateway routes it on). Each test fails if the sim answered 200 whatever the wire."""

from __future__ import annotations

from mesh.model.gateway import ServiceEntryLocation
from mesh.topology import MeshService, Protocol, ServicePortInfo
from sim.outside import outside_of
from tests.sim.harness import make_world, one_request, src

HOST = "rates.partner.example"
INSTALL = """
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http2, port: 80, targetPort: 8080}, {name: https, port: 443, targetPort: 8443}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  replicas: 1
  selector: {matchLabels: {istio: egressgateway}}
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {app: istio-egressgateway, istio: egressgateway, sidecar.istio.io/inject: "true"}
    spec:
      containers: [{name: istio-proxy, image: auto, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: t}
spec:
  hosts: [rates.partner.example]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
"""
TO_443 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: partner, namespace: t}
spec:
  hosts: [rates.partner.example]
  http:
  - match: [{port: 80}]
    route: [{destination: {host: rates.partner.example, port: {number: 443}}}]
"""


def originate(sni: str, *, namespace: str = "t", selector: str = "app: client") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: originate-{namespace}, namespace: {namespace}}}
spec:
  host: rates.partner.example
  workloadSelector: {{matchLabels: {{{selector}}}}}
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE, sni: {sni}, credentialName: partner-ca}}
"""


VIA_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: t}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: https, protocol: HTTPS}
    hosts: [rates.partner.example]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: to-egress, namespace: t}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: partner
    trafficPolicy:
      portLevelSettings:
      - port: {number: 80}
        tls: {mode: ISTIO_MUTUAL, sni: rates.partner.example}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: partner, namespace: t}
spec:
  hosts: [rates.partner.example]
  gateways: [egress, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: partner
        port: {number: 80}
  - match: [{gateways: [egress], port: 80}]
    route: [{destination: {host: rates.partner.example, port: {number: 443}}}]
"""


def test_plain_http_on_the_partners_http_port_is_answered() -> None:
    resp, _ = one_request(make_world(INSTALL), to=HOST, port=80)
    assert (resp.status, resp.upstream_cluster) == (200, f"outbound|80||{HOST}")


def test_plain_http_to_the_tls_port_is_closed_by_the_server() -> None:
    resp, trace = one_request(make_world(INSTALL + "---" + TO_443), to=HOST, port=80)
    assert (resp.status, resp.flags) == (503, ("UC",))
    assert any("refuses the connection (plain HTTP)" in line for line in trace)


def test_tls_origination_with_the_servers_name_is_answered() -> None:
    world = make_world(INSTALL + "---" + TO_443 + "---" + originate(HOST))
    resp, _ = one_request(world, to=HOST, port=80)
    assert (resp.status, resp.upstream_cluster) == (200, f"outbound|443||{HOST}")


def test_tls_origination_naming_another_server_fails_the_handshake() -> None:
    world = make_world(INSTALL + "---" + TO_443 + "---" + originate("other.example"))
    resp, _ = one_request(world, to=HOST, port=80)
    # a failed handshake is a connect failure: Istio's default retries try twice more (URX)
    assert (resp.status, resp.flags, resp.attempts) == (503, ("UF", "URX"), 3)


def test_the_egress_gateway_is_a_hop_and_originates_tls() -> None:
    at_gateway = originate(HOST, namespace="istio-system", selector="istio: egressgateway")
    world = make_world(INSTALL + "---" + VIA_GATEWAY + "---" + at_gateway)
    resp, trace = one_request(world, to=HOST, port=80)
    assert resp.status == 200
    hops = {(r.source_workload, r.upstream_cluster, r.response_code) for r in src(world.records)}
    assert hops == {
        (
            "client-v1",
            "outbound|80|partner|istio-egressgateway.istio-system.svc.cluster.local",
            200,
        ),
        ("istio-egressgateway", f"outbound|443||{HOST}", 200),
    }
    assert any(line.startswith("istio-egressgateway-0:") for line in trace)
    assert any(
        line.startswith("istio-egressgateway-0:")
        and f"TLS this proxy originated, SNI '{HOST}'" in line
        for line in trace
    )


def test_without_origination_at_the_gateway_the_partner_closes_the_connection() -> None:
    world = make_world(INSTALL + "---" + VIA_GATEWAY)  # the gateway sends plain HTTP to 443
    resp, _ = one_request(world, to=HOST, port=80)
    assert (resp.status, resp.flags) == (503, ("UC",))
    gateway = [r for r in src(world.records) if r.source_workload == "istio-egressgateway"]
    assert [(r.response_code, r.response_flags) for r in gateway] == [(503, ("UC",))]


def test_only_mesh_external_entries_are_servers_outside() -> None:
    port = ServicePortInfo(name="https", port=443, target_port=443, protocol=Protocol.HTTPS)
    external = MeshService(
        name=HOST, namespace="t", hostname=HOST, ports=(port,), from_service_entry=True,
        location=ServiceEntryLocation.MESH_EXTERNAL,
    )  # fmt: skip
    internal = MeshService(
        name="legacy", namespace="t", hostname="legacy.internal", ports=(port,),
        from_service_entry=True, location=ServiceEntryLocation.MESH_INTERNAL,
    )  # fmt: skip
    outside = outside_of([external, internal])
    assert outside.tls_names == {(HOST, 443): frozenset({HOST})}
    assert outside.answer("legacy.internal", 443, tls=False, sni="").status == 200  # unknown


def test_the_egress_gateway_gives_the_sidecars_request_a_new_request_id() -> None:
    """istiod sets no ``internal_address_config`` on a gateway's HCM (only with meshNetworks),
    and the gateway's HCM has ``use_remote_address``: Envoy 1.40 counts the calling sidecar as
    external and replaces its ``x-request-id`` (a sidecar's HCM keeps the caller's). The two
    hops' records carry different request ids; the trace (``x-b3-*``) goes on unchanged."""
    at_gateway = originate(HOST, namespace="istio-system", selector="istio: egressgateway")
    world = make_world(INSTALL + "---" + VIA_GATEWAY + "---" + at_gateway)
    resp, trace = one_request(world, to=HOST, port=80)
    assert resp.status == 200
    hops = {r.source_workload: r for r in src(world.records)}
    sidecar, gateway = hops["client-v1"], hops["istio-egressgateway"]
    assert sidecar.request_id and gateway.request_id
    assert gateway.request_id != sidecar.request_id
    assert gateway.trace_id == sidecar.trace_id
    assert any("x-request-id" in line and "replaced" in line for line in trace), trace
