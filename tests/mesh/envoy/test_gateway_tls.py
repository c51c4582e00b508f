"""Gateway TLS servers as istiod builds them, run on the real Envoy 1.40.

One Gateway on the ingress gateway: port 80 (HTTP, one host with ``httpsRedirect``), port 443
with SIMPLE and MUTUAL servers (``credentialName`` Secrets the test makes at run time, as a
learner makes them with ``openssl``: the translator serves them as istiod's
``kubernetes://<name>`` SDS secrets) and a PASSTHROUGH server; an east-west style
AUTO_PASSTHROUGH server on 15443. The translated gateway config starts in a real Envoy; a
Python client speaks plaintext and TLS with SNI to it on 127.0.0.1 and checks the certificate
Envoy serves is the lesson's."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from cluster.local.ca import LocalCA
from mesh.envoy import PodPorts, PortMap, TranslateOptions, translate
from mesh.envoy.bootstrap import bootstrap
from mesh.envoy.translate import ProxyConfig
from mesh.model import FrozenMap
from mesh.source import load_text
from mesh.topology import build_topology
from sim.messages import TlsHello
from sim.proxy import tls_failure
from sim.xds import FilterChainSpec
from tests.mesh.envoy.real_envoy import free_port, wait_ready
from tests.mesh.security.harness import ENVOY, validate
from tests.tls_secrets import Issued, make_ca, secret_yaml

MESH = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, sidecar.istio.io/inject: "false"}}
    spec:
      containers: [{name: app, image: web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v1, labels: {app: web}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-plain, protocol: HTTP}
    hosts: [plain.example.com]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, credentialName: web-cred}
  - port: {number: 443, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: web-mtls}
  - port: {number: 443, name: tls-pass, protocol: TLS}
    hosts: [pass.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: https-mesh, protocol: HTTPS}
    hosts: [mesh.example.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 443, name: https-wrong, protocol: HTTPS}
    hosts: [wrong.example.com]
    tls: {mode: SIMPLE, credentialName: web-cred}
  - port: {number: 443, name: https-optional, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: web-opt}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: eastwest, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [secure.example.com, plain.example.com, mtls.example.com, mesh.example.com,
          optional.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: web, port: {number: 80}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: shop}
spec:
  hosts: [pass.example.com]
  gateways: [gw]
  tls:
  - match: [{port: 443, sniHosts: [pass.example.com]}]
    route: [{destination: {host: web, port: {number: 80}}}]
"""
GATEWAY = "istio-ingressgateway-0"
Json = dict[str, Any]
CA = make_ca()
WEB = CA.issue("secure.example.com")
WEB_MTLS = CA.issue("mtls.example.com")
WEB_OPT = CA.issue("optional.example.com")
CLIENT = CA.issue("client.example.com")
STRANGER = make_ca("someone else", "other.org").issue("client.example.com")
SECRETS = "---\n".join([
    secret_yaml("web-cred", "istio-system", {"tls.crt": WEB.cert_pem, "tls.key": WEB.key_pem}),
    # the generic form, and the CA in its own <name>-cacert Secret
    secret_yaml("web-mtls", "istio-system", {"cert": WEB_MTLS.cert_pem,
                                              "key": WEB_MTLS.key_pem}, tls=False),
    secret_yaml("web-mtls-cacert", "istio-system", {"cacert": CA.cert_pem}, tls=False),
    # OPTIONAL_MUTUAL: the tls form with its CA in ca.crt
    secret_yaml("web-opt", "istio-system", {"tls.crt": WEB_OPT.cert_pem, "tls.key": WEB_OPT.key_pem,
                                             "ca.crt": CA.cert_pem}),
])  # fmt: skip


def _translate(
    port_map: PortMap | None = None, log: str = "/dev/stdout", mesh: str = MESH
) -> ProxyConfig:
    loaded = load_text(mesh + "---\n" + SECRETS, "mesh.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    topology = build_topology(loaded.resources)
    options = TranslateOptions(port_map=port_map, access_log_path=log)
    return translate(loaded.resources, topology, options)[GATEWAY]


def _chains(listener: Json) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    out = []
    for chain in listener["filter_chains"]:
        match = chain.get("filter_chain_match", {})
        kind = chain["filters"][-1]["name"].rsplit(".", 1)[-1]
        out.append(
            (tuple(match.get("server_names", ())), tuple(match.get("application_protocols", ())), kind)
        )  # fmt: skip
    return out


def test_tls_servers_become_sni_chains_with_istiods_names() -> None:
    proxy = _translate()
    listeners = {x["name"]: x for x in proxy.listeners}
    assert sorted(listeners) == ["0.0.0.0_15443", "0.0.0.0_8080", "0.0.0.0_8443"]
    https = listeners["0.0.0.0_8443"]
    assert [f["name"] for f in https["listener_filters"]] == [
        "envoy.filters.listener.tls_inspector"
    ]
    assert _chains(https) == [
        (("secure.example.com",), (), "http_connection_manager"),
        (("mtls.example.com",), (), "http_connection_manager"),
        (("mesh.example.com",), (), "http_connection_manager"),
        (("wrong.example.com",), (), "http_connection_manager"),
        (("optional.example.com",), (), "http_connection_manager"),
        (("pass.example.com",), (), "tcp_proxy"),
    ]
    simple, mutual, istio_mutual, _, optional, passthrough = https["filter_chains"]
    # OPTIONAL_MUTUAL: MUTUAL's -cacert validation, no client certificate required (istiod)
    optional_ctx = optional["transport_socket"]["typed_config"]
    assert optional_ctx["require_client_certificate"] is False
    assert (
        optional_ctx["common_tls_context"]["combined_validation_context"][
            "validation_context_sds_secret_config"
        ]["name"]
        == "kubernetes://web-opt-cacert"
    )
    mesh_ctx = istio_mutual["transport_socket"]["typed_config"]
    mesh_common = mesh_ctx["common_tls_context"]
    assert mesh_ctx["require_client_certificate"] is True
    assert mesh_common["tls_certificate_sds_secret_configs"][0]["name"] == "default"
    assert (
        mesh_common["combined_validation_context"]["validation_context_sds_secret_config"]["name"]
        == "ROOTCA"
    )
    simple_ctx = simple["transport_socket"]["typed_config"]
    assert simple_ctx["require_client_certificate"] is False
    assert simple_ctx["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"] == (
        "kubernetes://web-cred"
    )
    mutual_ctx = mutual["transport_socket"]["typed_config"]
    assert mutual_ctx["require_client_certificate"] is True
    validation = mutual_ctx["common_tls_context"]["combined_validation_context"]
    assert (
        validation["validation_context_sds_secret_config"]["name"] == "kubernetes://web-mtls-cacert"
    )
    assert "transport_socket" not in passthrough
    assert passthrough["filters"][0]["typed_config"]["cluster"] == (
        "outbound|80||web.shop.svc.cluster.local"
    )
    hcm = simple["filters"][0]["typed_config"]
    assert hcm["rds"]["route_config_name"] == "https.443.https.gw.shop"
    routes = {r["name"]: r for r in proxy.routes}
    assert {"http.8080", "https.443.https.gw.shop", "https.443.https-mtls.gw.shop"} <= set(routes)
    redirect = {v["name"]: v.get("require_tls") for v in routes["http.8080"]["virtual_hosts"]}
    assert redirect == {"plain.example.com:80": None, "secure.example.com:80": "ALL"}
    # AUTO_PASSTHROUGH: the SNI a sidecar sets for each cluster, Istio's mTLS ALPNs
    auto = _chains(listeners["0.0.0.0_15443"])
    alpns = ("istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")
    assert (("outbound_.80_._.web.shop.svc.cluster.local",), alpns, "tcp_proxy") in auto
    assert (("outbound_.80_.v1_.web.shop.svc.cluster.local",), alpns, "tcp_proxy") in auto
    clusters = {c["name"] for c in proxy.clusters}
    assert {"outbound_.80_._.web.shop.svc.cluster.local",
            "outbound_.80_.v1_.web.shop.svc.cluster.local"} <= clusters  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "present"),
    [("{istio: ingressgateway}", True), ("{istio: egressgateway}", False)],
)
def test_passthrough_source_labels_are_the_gateway_pods(labels: str, present: bool) -> None:
    # istiod's matchTLS on a gateway: sourceLabels must be the gateway pod's own labels
    mesh = MESH.replace(
        "  - match: [{port: 443, sniHosts: [pass.example.com]}]",
        f"  - match: [{{port: 443, sniHosts: [pass.example.com], sourceLabels: {labels}}}]",
    )
    assert mesh != MESH
    https = next(x for x in _translate(mesh=mesh).listeners if x["name"] == "0.0.0.0_8443")
    assert ((("pass.example.com",), (), "tcp_proxy") in _chains(https)) is present


def _secrets(ca: LocalCA) -> tuple[Json, ...]:
    """The gateway's own workload certificate (``default``, ``ROOTCA``), from the mesh CA; its
    credentials come with the translated config (``ProxyConfig.secrets``)."""
    own = ca.issue("istio-system", "istio-ingressgateway-service-account").secrets().values()
    return tuple(own)


def test_the_gateway_gets_the_lessons_secrets_as_istiod_serves_them() -> None:
    names = sorted(s["name"] for s in _translate().secrets)
    assert names == [
        "kubernetes://web-cred", "kubernetes://web-mtls", "kubernetes://web-mtls-cacert",
        "kubernetes://web-opt", "kubernetes://web-opt-cacert",
    ]  # fmt: skip


def test_the_translated_gateway_validates_in_real_envoy(tmp_path: Path) -> None:
    doc = bootstrap(_translate(), admin_port=free_port(), secrets=_secrets(LocalCA(tmp_path)))
    code, out = validate(doc, tmp_path)
    assert code == 0, out


class _App(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "host": self.headers.get("host")}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, LocalCA]]:
    tmp = tmp_path_factory.mktemp("gw")
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    plain, tls, auto, admin = free_port(), free_port(), free_port(), free_port()
    port_map = PortMap.of(
        {
            GATEWAY: PodPorts(listeners=FrozenMap({8080: plain, 8443: tls, 15443: auto})),
            "web-0": PodPorts(app=FrozenMap({8080: app.server_address[1]})),
        }
    )
    ca = LocalCA(tmp / "ca")
    doc = bootstrap(
        _translate(port_map, str(tmp / "gw.log")), admin_port=admin, secrets=_secrets(ca)
    )
    path = tmp / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    cmd = [
        str(ENVOY),
        "-c",
        str(path),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "error",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(admin, proc, time.monotonic() + 20)
        yield plain, tls, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        app.shutdown()
        app.server_close()


def _get(port: int, host: str, ctx: ssl.SSLContext | None = None) -> tuple[int, Json, str]:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
        # SNI comes from the host the socket is wrapped for: connect by hand with server_hostname
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.sock = ctx.wrap_socket(raw, server_hostname=host)
    try:
        conn.request("GET", "/page", headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read()
        data = json.loads(body) if resp.status == 200 else {}
        return resp.status, data, resp.getheader("location") or ""
    finally:
        conn.close()


def _client(tmp: Path, cert: Issued | None = None, trust: Issued = CA) -> ssl.SSLContext:
    """``curl --cacert ca.crt [--cert client.crt --key client.key]``."""
    ctx = ssl.create_default_context(cadata=trust.cert_pem.decode())
    if cert is not None:
        (tmp / "client.crt").write_bytes(cert.cert_pem)
        (tmp / "client.key").write_bytes(cert.key_pem)
        ctx.load_cert_chain(str(tmp / "client.crt"), str(tmp / "client.key"))
    return ctx


def _served(port: int, host: str, ctx: ssl.SSLContext) -> bytes:
    """The certificate (DER) the server presents for SNI ``host``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.mark.envoy
def test_https_redirect_answers_plaintext_with_a_301(gateway: tuple[int, int, LocalCA]) -> None:
    plain, _, _ = gateway
    assert _get(plain, "secure.example.com")[::2] == (301, "https://secure.example.com/page")
    status, body, _ = _get(plain, "plain.example.com")
    assert (status, body["host"]) == (200, "plain.example.com")


@pytest.mark.envoy
def test_simple_tls_terminates_with_the_credential_for_the_sni(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    _, tls, _ = gateway
    status, body, _ = _get(tls, "secure.example.com", _client(tmp_path))
    assert (status, body) == (200, {"path": "/page", "host": "secure.example.com"})


@pytest.mark.envoy
def test_envoy_serves_exactly_the_lessons_certificates(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    _, tls, _ = gateway
    der = serialization.Encoding.DER
    assert _served(tls, "secure.example.com", _client(tmp_path)) == WEB.cert.public_bytes(der)
    mutual = _served(tls, "mtls.example.com", _client(tmp_path, CLIENT))
    assert mutual == WEB_MTLS.cert.public_bytes(der)


@pytest.mark.envoy
def test_a_client_without_the_lessons_ca_refuses_the_gateway(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    # the run's mesh CA signed no credentialName certificate: curl without --cacert fails
    _, tls, ca = gateway
    mesh_only = ssl.create_default_context(cafile=str(ca.root_file))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _get(tls, "secure.example.com", mesh_only)
    # the chain for wrong.example.com presents web-cred, which names secure.example.com only
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn't match"):
        _get(tls, "wrong.example.com", _client(tmp_path))


@pytest.mark.envoy
def test_mutual_tls_needs_a_client_certificate_its_ca_signed(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    _, tls, _ = gateway
    status, body, _ = _get(tls, "mtls.example.com", _client(tmp_path, CLIENT))
    assert (status, body["host"]) == (200, "mtls.example.com")
    failures = (ssl.SSLError, ConnectionError, http.client.HTTPException)
    with pytest.raises(failures):
        _get(tls, "mtls.example.com", _client(tmp_path))
    with pytest.raises(failures):
        _get(tls, "mtls.example.com", _client(tmp_path, STRANGER))


@pytest.mark.envoy
def test_optional_mutual_takes_no_certificate_or_one_its_ca_signed(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    _, tls, _ = gateway
    for client in (None, CLIENT):
        status, body, _ = _get(tls, "optional.example.com", _client(tmp_path, client))
        assert (status, body["host"]) == (200, "optional.example.com")
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _get(tls, "optional.example.com", _client(tmp_path, STRANGER))


@pytest.mark.parametrize(("client", "fails"), [(None, False), (CLIENT, False), (STRANGER, True)])
def test_the_sim_decides_an_optional_mutual_handshake_as_envoy(
    client: Issued | None, fails: bool
) -> None:
    # the same three clients as on Envoy above, through the sim's handshake check on the
    # translated chain and the secrets the gateway gets
    proxy = _translate()
    https = next(x for x in proxy.listeners if x["name"] == "0.0.0.0_8443")
    (chain,) = [
        c
        for c in https["filter_chains"]
        if c.get("filter_chain_match", {}).get("server_names") == ["optional.example.com"]
    ]
    spec = FilterChainSpec.from_envoy(chain)
    secrets = {s["name"]: s for s in proxy.secrets}
    hello = TlsHello(
        "optional.example.com",
        trusted_ca=CA.cert_pem,
        client_cert=client.cert_pem if client is not None else None,
    )
    assert bool(tls_failure(spec, hello, secrets)) is fails


@pytest.mark.envoy
def test_istio_mutual_accepts_a_mesh_workload_certificate(
    gateway: tuple[int, int, LocalCA],
) -> None:
    _, tls, ca = gateway
    workload = ca.issue("shop", "client")
    ctx = ssl.create_default_context(cafile=str(ca.root_file))
    ctx.check_hostname = False  # a SPIFFE certificate names no DNS host
    ctx.load_cert_chain(str(workload.cert_chain), str(workload.private_key))
    status, body, _ = _get(tls, "mesh.example.com", ctx)
    assert (status, body["host"]) == (200, "mesh.example.com")


@pytest.mark.envoy
def test_an_sni_no_server_names_gets_no_filter_chain(
    gateway: tuple[int, int, LocalCA], tmp_path: Path
) -> None:
    _, tls, _ = gateway
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(tls, "other.example.com", _client(tmp_path))
