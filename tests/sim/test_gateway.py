"""Ingress as Kubernetes and istiod do it, on the sim.

The ingress gateway's Service maps port 80 -> targetPort 8080 and 443 -> 8443 (Istio's default
profile). istiod resolves a Gateway server's port against the gateway *Service*'s ports: a server
on 80 gets a listener on the target port 8080; a server on a port no Service port has (8080, as
Bookinfo's Gateway says) is bound as it is, which is the same 8080. Traffic ``from: ingress``
goes to a Service port and lands on the pod's target port. ``to`` is the Host the requests carry:
a Service name or any host a Gateway serves; a request's own ``host`` header wins."""

from __future__ import annotations

import base64

import pytest

from mesh.envoy.translate import ProxyConfig, translate
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.runner import RunnerError
from mesh.source.load import load_text
from mesh.topology import build_topology
from sim.messages import Response, Trace
from sim.traffic import TrafficDriver, drain
from sim.world import World
from tests.sim.harness import make_world, one_request, sample_app
from tests.tls_secrets import make_ca, secret_yaml


def _gateway_config(istio: str) -> ProxyConfig:
    resources = [*sample_app("app").resources, *load_text(istio, default_namespace="t").resources]
    return translate(resources, build_topology(resources))["istio-ingressgateway-0"]


def _gateway(server_port: int, host: str = "*") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: t}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: {server_port}, name: http, protocol: HTTP}}, hosts: ["{host}"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: via-gateway, namespace: t}}
spec:
  hosts: ["{host}"]
  gateways: [gw]
  http: [{{route: [{{destination: {{host: reviews}}}}]}}]
"""


@pytest.mark.parametrize(
    ("server_port", "host", "to", "headers", "service_port", "expected"),
    [
        # server on the Service port: listener on its targetPort 8080
        (80, "*", "reviews", {}, None, (200, "")),
        # server on the targetPort (Bookinfo's Gateway): bound as-is on 8080, served via port 80
        (8080, "*", "reviews", {}, None, (200, "")),
        # `to` names the Gateway's host rather than a Service
        (8080, "bookinfo.example.com", "bookinfo.example.com", {}, None, (200, "")),
        # a Host header of the request decides, whatever `to` says
        (80, "bookinfo.example.com", "reviews", {"host": "bookinfo.example.com"}, None, (200, "")),
        # a host the Gateway does not serve: the listener's route config has no virtual host
        (80, "bookinfo.example.com", "other.example.com", {}, None, (404, "")),
        # a server on a port no Service port maps to: listener 0.0.0.0_9090; nothing on 8080
        (9090, "*", "reviews", {}, None, (503, "connect")),
        # the Service's 443 leads to 8443, where an HTTP server on 80 has no listener
        (80, "*", "reviews", {}, 443, (503, "connect")),
    ],
)
def test_ingress_reaches_the_listener_istiod_builds_for_the_server_port(
    server_port: int,
    host: str,
    to: str,
    headers: dict[str, str],
    service_port: int | None,
    expected: tuple[int, str],
) -> None:
    gateway = _gateway_config(_gateway(server_port, host))
    target = 8080 if server_port in (80, 8080) else server_port
    assert [x["name"] for x in gateway.listeners] == [f"0.0.0.0_{target}"]
    assert [r["name"] for r in gateway.routes] == [f"http.{target}"]
    world = make_world(_gateway(server_port, host))
    resp, lines = one_request(world, source="ingress", to=to, headers=headers, port=service_port)
    assert (resp.status, resp.local_failure) == expected, lines


def test_ingress_to_a_port_the_gateway_service_does_not_expose_is_refused() -> None:
    world = make_world(_gateway(8080))
    with pytest.raises(RunnerError, match=r"no port 8080 .*exposes 80, 443"):
        one_request(world, source="ingress", port=8080)


def test_without_a_gateway_the_port_is_closed_and_nothing_is_logged() -> None:
    """No Gateway selects the ingress gateway: istiod sends it no listener, so a connection to
    8080 is refused before any HTTP, and the gateway has nothing to log."""
    assert _gateway_config("").listeners == ()
    world = make_world()
    resp, lines = one_request(world, source="ingress", to="reviews")
    assert (resp.status, resp.local_failure) == (503, "connect"), lines
    assert world.records == []


def test_a_gateway_without_a_route_answers_404_nr_for_an_unknown_service() -> None:
    """A Gateway with no VirtualService bound: the listener is there, its route table has only
    istiod's catch-all virtual host without routes, so Envoy answers 404 NR itself. With no
    upstream cluster the gateway's telemetry names no service: Istio sets
    disable_host_header_fallback for gateways, so the record's service is unknown, not the Host
    (which a sidecar's outbound stats would fall back to)."""
    gateway_only = _gateway(80).split("---")[0]
    world = make_world(gateway_only)
    resp, lines = one_request(world, source="ingress", to="reviews")
    assert resp.status == 404 and resp.flags == ("NR",), lines
    (rec,) = world.records
    assert rec.destination_service == "unknown"
    assert rec.destination_service_name == "unknown"
    assert rec.source_workload == "istio-ingressgateway"


TLS_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: t}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, credentialName: secure-cred}
  - port: {number: 443, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-cred}
  - port: {number: 443, name: tls-pass, protocol: TLS}
    hosts: [pass.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: https-wrong, protocol: HTTPS}
    hosts: [wrong.example.com]
    tls: {mode: SIMPLE, credentialName: secure-cred}
  - port: {number: 443, name: https-nocred, protocol: HTTPS}
    hosts: [nocred.example.com]
    tls: {mode: SIMPLE, credentialName: absent-cred}
  - port: {number: 443, name: https-files, protocol: HTTPS}
    hosts: [files.example.com]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: t}
spec:
  hosts: [secure.example.com, mtls.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: t}
spec:
  hosts: [pass.example.com]
  gateways: [gw]
  tls:
  - match: [{port: 443, sniHosts: [pass.example.com]}]
    route: [{destination: {host: reviews, port: {number: 9080}}}]
"""


CA = make_ca()
STRANGER_CA = make_ca("someone else", "other.org")
SECURE = CA.issue("secure.example.com")
MTLS = CA.issue("mtls.example.com")
CLIENT = CA.issue("client.example.com")
STRANGER = STRANGER_CA.issue("client.example.com")
SECRETS = "---\n".join([
    # the gateway's credentials, in the gateway pods' namespace (istio-system)
    secret_yaml("secure-cred", "istio-system", {"tls.crt": SECURE.cert_pem,
                                                 "tls.key": SECURE.key_pem}),
    # MUTUAL: no mtls-cred-cacert Secret, so istiod reads the CA from mtls-cred itself
    secret_yaml("mtls-cred", "istio-system", {"tls.crt": MTLS.cert_pem, "tls.key": MTLS.key_pem,
                                               "ca.crt": CA.cert_pem}),
    # what the client holds: the CA it trusts, its certificate, someone else's certificate
    secret_yaml("client-ca", "t", {"cacert": CA.cert_pem}, tls=False),
    secret_yaml("client", "t", {"tls.crt": CLIENT.cert_pem, "tls.key": CLIENT.key_pem}),
    secret_yaml("stranger", "t", {"tls.crt": STRANGER.cert_pem, "tls.key": STRANGER.key_pem}),
])  # fmt: skip


def tls_world() -> World:
    """The TLS Gateway with its credentials and the client's Secrets."""
    return make_world(TLS_GATEWAY + "---\n" + SECRETS)


def _ingress(
    world: World,
    host: str,
    *,
    scheme: str,
    port: int | None = None,
    cert: str = "",
    ca: str = "t/client-ca",
) -> tuple[Response, list[str]]:
    spec = TrafficSpec(
        from_="ingress", to=host, count=1, port=port, scheme=scheme, client_certificate=cert,
        ca_certificate=ca if scheme == "https" else "",
    )  # fmt: skip
    driver = TrafficDriver(world, spec)
    trace = Trace()
    proc = world.env.process(driver.send(driver.request(RequestSpec(path="/r"), trace)))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)
    assert isinstance(proc.value, Response)
    return proc.value, [f"{where}: {text}" for _, where, text in trace.lines]


@pytest.mark.parametrize(
    ("scheme", "host", "port", "cert", "expected", "chain"),
    [
        # SIMPLE: TLS with the server's host as SNI, terminated, routed by https.443.https.gw.t
        ("https", "secure.example.com", None, "", (200, ""), "https.443.https.gw.t"),
        # MUTUAL: the handshake needs a client certificate, signed by the credential's CA
        ("https", "mtls.example.com", None, "t/client", (200, ""), "https.443.https-mtls.gw.t"),
        ("https", "mtls.example.com", None, "", (503, "reset"), "client certificate"),
        ("https", "mtls.example.com", None, "t/stranger", (503, "reset"), "not signed by"),
        # the chain for wrong.example.com presents secure-cred, which names another host
        ("https", "wrong.example.com", None, "", (503, "reset"), "not wrong.example.com"),
        # credentialName with no Secret: istiod sends nothing, the chain is not ready
        ("https", "nocred.example.com", None, "", (503, "reset"), "never supplied"),
        # files a real gateway pod would have mounted: the sim has none, as the local runner
        ("https", "files.example.com", None, "", (503, "reset"), "never supplied"),
        # PASSTHROUGH: the chain for the SNI tcp_proxies the TLS bytes to reviews
        ("https", "pass.example.com", None, "", (200, ""), "tcp_proxy"),
        # an SNI no chain names: no filter chain, the connection is closed
        ("https", "other.example.com", None, "", (503, "connect"), "no filter chain"),
        # plaintext to 443: no SNI, every chain names hosts: no chain
        ("http", "secure.example.com", 443, "", (503, "connect"), "no filter chain"),
        # TLS to the plaintext HTTP listener on 80: the HTTP codec cannot parse a ClientHello
        ("https", "secure.example.com", 80, "", (503, "reset"), "codec error"),
    ],
)
def test_https_gateway_servers_select_chains_by_sni(
    scheme: str, host: str, port: int | None, cert: str, expected: tuple[int, str], chain: str
) -> None:
    world = tls_world()
    resp, lines = _ingress(world, host, scheme=scheme, port=port, cert=cert)
    assert (resp.status, resp.local_failure) == expected, lines
    assert any(chain in line for line in lines), lines


def test_a_client_without_the_ca_refuses_the_gateway_certificate() -> None:
    # curl without --cacert: the lesson's certificate chains to no CA the client trusts
    world = tls_world()
    resp, lines = _ingress(world, "secure.example.com", scheme="https", ca="")
    assert (resp.status, resp.local_failure) == (503, "reset"), lines
    assert any("does not trust" in line for line in lines), lines


def test_gateway_serves_the_lesson_secret_over_sds() -> None:
    # the translator reads istio-system/secure-cred as istiod does and hands the gateway
    # kubernetes://secure-cred (and mtls-cred with its -cacert); absent-cred gets nothing
    config = _gateway_config(TLS_GATEWAY + "---\n" + SECRETS)
    names = sorted(s["name"] for s in config.secrets)
    assert names == ["kubernetes://mtls-cred", "kubernetes://mtls-cred-cacert",
                     "kubernetes://secure-cred"]  # fmt: skip
    secure = next(s for s in config.secrets if s["name"] == "kubernetes://secure-cred")
    chain = secure["tls_certificate"]["certificate_chain"]["inline_bytes"]
    assert base64.b64decode(chain) == SECURE.cert_pem


def test_tls_terminated_at_the_edge_sets_x_forwarded_proto() -> None:
    # the gateway's HCM (use_remote_address) sets x-forwarded-proto from the connection; a
    # route's require_tls (httpsRedirect) reads it
    world = tls_world()
    seen: list[str] = []
    spec = TrafficSpec(
        from_="ingress", to="secure.example.com", count=1, scheme="https",
        ca_certificate="t/client-ca",
    )  # fmt: skip
    driver = TrafficDriver(world, spec)
    req = driver.request(RequestSpec(path="/r"))
    proc = world.env.process(driver.send(req))
    world.env.run(until=proc)
    seen.append(req.headers.get("x-forwarded-proto", ""))
    plain = TrafficDriver(world, TrafficSpec(from_="ingress", to="secure.example.com", count=1))
    req2 = plain.request(RequestSpec(path="/r"))
    proc2 = world.env.process(plain.send(req2))
    world.env.run(until=proc2)
    seen.append(req2.headers.get("x-forwarded-proto", ""))
    assert seen == ["https", "http"]


def test_https_redirect_answers_plaintext_with_a_301_and_lets_tls_through() -> None:
    # the translator marks the virtual host require_tls: ALL; the route matcher answers a
    # request whose x-forwarded-proto is not https with a 301 to the https:// URL
    world = tls_world()
    plain, lines = _ingress(world, "secure.example.com", scheme="http")
    assert plain.status == 301, lines
    assert (plain.headers or {}).get("location") == "https://secure.example.com/r"
    secure, lines = _ingress(world, "secure.example.com", scheme="https")
    assert secure.status == 200, lines


def test_the_ingress_gateway_replaces_the_callers_request_id_and_the_mesh_keeps_its_own() -> None:
    """At the edge (``use_remote_address``, no ``internal_address_config``) Envoy 1.40 gives
    every request a new ``x-request-id``, whatever id the client sent; the sidecars after the
    gateway keep the gateway's id, so the request's hops still share one id."""
    world = make_world(_gateway(80))
    driver = TrafficDriver(world, TrafficSpec(from_="ingress", to="reviews", count=1))
    req = driver.request(RequestSpec(path="/r"))
    sent_id = req.request_id
    proc = world.env.process(driver.send(req))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)
    assert isinstance(proc.value, Response) and proc.value.status == 200
    ids = {r.request_id for r in world.records}
    assert len(world.records) >= 2 and len(ids) == 1
    assert sent_id not in ids


def test_a_gateway_hcm_with_preserve_external_request_id_keeps_the_callers_id() -> None:
    """The regeneration follows the HCM's own options: ``preserve_external_request_id: true``
    (or an ``internal_address_config`` naming the caller) keeps the id Envoy was sent."""
    from sim.xds.listeners import HcmSpec

    base = {"use_remote_address": True}
    assert HcmSpec.from_envoy(base).regenerates_request_id("")
    assert not HcmSpec.from_envoy({**base, "preserve_external_request_id": True}).new_request_id
    assert not HcmSpec.from_envoy({**base, "generate_request_id": False}).new_request_id
    assert not HcmSpec.from_envoy({}).new_request_id  # a sidecar's HCM: never an edge request
    internal = HcmSpec.from_envoy(
        {**base, "internal_address_config": {"cidr_ranges": [
            {"address_prefix": "10.0.0.0", "prefix_len": 8}]}}
    )  # fmt: skip
    assert not internal.regenerates_request_id("10.1.2.3")
    assert internal.regenerates_request_id("192.168.1.1")
    assert internal.regenerates_request_id("")  # a client outside the mesh
