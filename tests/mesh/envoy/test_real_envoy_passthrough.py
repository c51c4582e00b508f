"""Inbound passthrough on real Envoy 1.40, and the simulator agreeing with it.

The server sidecar's translated ``virtualInbound`` (pod ``other-v1-0`` of the test app, which
no Service selects: every port is a passthrough port) runs in a real Envoy under PERMISSIVE,
STRICT and DISABLE. Four clients connect to it: plaintext HTTP, plaintext TCP (non-HTTP
bytes), Istio mTLS offering ``istio-peer-exchange``/``istio`` (what a client sidecar's cluster
offers for TCP) carrying raw bytes, and Istio mTLS offering ``istio-http/1.1`` (what a client
sidecar's ``istio.alpn`` offers for HTTP) carrying an HTTP request. The mTLS clients present a
workload certificate of the local runner's CA. Then a real client sidecar in front of the same
server: its HTTP request and its raw bytes over mTLS must take the HTTP and the TCP chain.

Two adaptations to 127.0.0.1, neither about chain selection: the listener is bound at a free
port (no iptables redirect: the destination port Envoy matches is that port, which no chain
names, so the passthrough chains decide), and ``InboundPassthroughCluster`` is a static cluster
to the test's server (its ORIGINAL_DST would be the listener itself).

What must hold, on Envoy and in the sim alike: which connections are closed, which are logged
as an HTTP request or a TCP connection, over mTLS or not; and under DISABLE the TLS bytes pass
through to the app as opaque TCP (no ``tls_inspector`` there), so the client's handshake fails.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.local.ca import IssuedCert, LocalCA
from mesh.envoy import MeshEnvoyConfig, TranslateOptions, bootstrap, translate
from mesh.envoy.accesslog import record_from_access_log
from mesh.envoy.ports import PodPorts, PortMap
from mesh.envoy_api.names import INBOUND_PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND
from mesh.model import FrozenMap
from mesh.records import ConnectionSecurityPolicy
from mesh.source import load_text
from mesh.topology import build_topology
from sim.accesslog import TcpOutcome
from sim.inbound import inbound
from sim.inbound_tcp import serve_tcp
from sim.messages import Request, Response
from sim.world import World
from tests.mesh.envoy.real_envoy import free_port, http_or_raw_server, read_log, running_envoys
from tests.sim.harness import dst, one_connection, one_request, sample_app

pytestmark = pytest.mark.envoy

POD = "other-v1-0"
MESH_ALPN = ("istio-peer-exchange", "istio")
HTTP_ALPN = ("istio-http/1.1",)
PROBES = ("http", "tcp", "mtls-tcp", "mtls-http")

Outcome = tuple[str, str, str]
"""(what the client got: ``ok`` / ``closed`` / ``handshake-failed``, the server record's
``request_protocol`` or "" when none, its connection security policy or "")."""

EXPECTED: dict[str, dict[str, Outcome]] = {
    "PERMISSIVE": {
        "http": ("ok", "http", "none"),
        "tcp": ("ok", "tcp", "none"),
        "mtls-tcp": ("ok", "tcp", "mutual_tls"),
        "mtls-http": ("ok", "http", "mutual_tls"),
    },
    "STRICT": {
        "http": ("closed", "", ""),
        "tcp": ("closed", "", ""),
        "mtls-tcp": ("ok", "tcp", "mutual_tls"),
        "mtls-http": ("ok", "http", "mutual_tls"),
    },
    "DISABLE": {
        "http": ("ok", "http", "none"),
        "tcp": ("ok", "tcp", "none"),
        "mtls-tcp": ("handshake-failed", "tcp", "none"),
        "mtls-http": ("handshake-failed", "tcp", "none"),
    },
}


def _policy(mode: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: t}}
spec:
  mtls: {{mode: {mode}}}
"""


def _resources(mode: str) -> list[Any]:
    return [
        *sample_app("app").resources,
        *load_text(_policy(mode), default_namespace="t").resources,
    ]


@pytest.fixture
def upstream() -> Iterator[int]:
    """The app behind the passthrough port: answers an HTTP request with 200 ``http``, other
    bytes with ``raw``; at most 30 connections, one at a time, 127.0.0.1 only."""
    with http_or_raw_server(30, 20) as port:
        yield port


def _server_config(
    mode: str, tmp_path: Path, ca: LocalCA, listen: int, upstream: int, admin: int
) -> Path:
    resources = _resources(mode)
    proxy = translate(resources, build_topology(resources))[POD]
    secrets = tuple(ca.issue("t", "other").secrets().values())
    doc = bootstrap(proxy, admin_port=admin, secrets=secrets)
    static = doc["static_resources"]
    (listener,) = [x for x in static["listeners"] if x["name"] == VIRTUAL_INBOUND]
    listener["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": listen}}
    listener.pop("bind_to_port", None)
    # only virtualInbound runs: the other listeners would bind Istio's fixed ports (15001, the
    # outbound wildcards) on 127.0.0.1's shared host, which parallel tests also use
    static["listeners"] = [listener]
    _log_to(static["listeners"], str(tmp_path / f"{mode}.log"))
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}}
    static["clusters"] = [
        *(c for c in static["clusters"] if c["name"] != INBOUND_PASSTHROUGH_CLUSTER),
        {
            "name": INBOUND_PASSTHROUGH_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": INBOUND_PASSTHROUGH_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
            },
        },
    ]
    path = tmp_path / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _log_to(node: Any, path: str) -> None:
    """Point every file access logger at ``path`` (the translation writes to stdout)."""
    if isinstance(node, dict):
        if str(node.get("@type", "")).endswith("FileAccessLog"):
            node["path"] = path
        for value in node.values():
            _log_to(value, path)
    elif isinstance(node, list):
        for value in node:
            _log_to(value, path)


def _client_context(cert: IssuedCert, alpn: tuple[str, ...]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert.root))
    context.check_hostname = False  # Istio checks SANs in AuthorizationPolicy, not here
    context.load_cert_chain(str(cert.cert_chain), str(cert.private_key))
    context.set_alpn_protocols(list(alpn))
    return context


def _probe(kind: str, port: int, cert: IssuedCert) -> str:
    """One client of ``kind`` against ``port``: ``ok``, ``closed`` or ``handshake-failed``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            sock: socket.socket = raw
            if kind.startswith("mtls"):
                alpn = HTTP_ALPN if kind == "mtls-http" else MESH_ALPN
                try:
                    sock = _client_context(cert, alpn).wrap_socket(raw)
                except (ssl.SSLError, ConnectionError, OSError):
                    return "handshake-failed"
            if kind.endswith("http"):
                sock.sendall(b"GET /x HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n")
                want = b"200 OK"
            else:
                sock.sendall(b"\x00\x01binary hello")
                want = b"raw"
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except (ConnectionError, ssl.SSLError, http.client.HTTPException, OSError):
        return "closed"
    return "ok" if want in answer else "closed"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _on_envoy(mode: str, tmp_path: Path, upstream: int) -> dict[str, Outcome]:
    """Each probe against a real Envoy running the translated server sidecar in ``mode``, with
    the server's access-log record of it (if any)."""
    listen, admin = free_port(), free_port()
    ca = LocalCA(tmp_path / "ca")
    config = _server_config(mode, tmp_path, ca, listen, upstream, admin)
    client = ca.issue("t", "client")
    log = tmp_path / f"{mode}.log"
    out: dict[str, Outcome] = {}
    with running_envoys([(config, admin)]):
        for kind in PROBES:
            before = _lines(log)
            got = _probe(kind, listen, client)
            settle = time.monotonic() + 1.5  # a closed connection logs nothing: wait a while
            while _lines(log) == before and time.monotonic() < settle:
                time.sleep(0.05)
            lines = read_log(log, before, time.monotonic() + 5) if before or log.exists() else []
            records = [record_from_access_log(x) for x in lines[before:]]
            out[kind] = _outcome(got, records)
    return out


def _sim(mode: str) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    for kind in PROBES:
        resources = _resources(mode)
        topology = build_topology(resources)
        world = World(
            topology,
            sample_app("app").behavior,
            translate(resources, topology),
            resources=resources,
        )
        pod = world.pods[POD]
        mtls = kind.startswith("mtls")
        alpn = (HTTP_ALPN if kind == "mtls-http" else MESH_ALPN) if mtls else ()
        client = world.pods["client-v1-0"] if mtls else None
        got: str
        if kind.endswith("http"):
            request = Request("GET", "/x", "other", 9080, {}, "id", "")
            proc = world.env.process(
                inbound(
                    world,
                    pod,
                    request,
                    client=client,
                    service_host="",
                    attempt=None,
                    mtls=mtls,
                    port=9080,
                    alpn=alpn,
                )
            )
            world.env.run(until=proc)
            resp = proc.value
            assert isinstance(resp, Response)
            failure = resp.local_failure
        else:
            proc = world.env.process(
                serve_tcp(world, pod, 9080, 10, 3, 0.0, client=client, mtls=mtls, alpn=alpn)
            )
            world.env.run(until=proc)
            result = proc.value
            assert isinstance(result, TcpOutcome)
            failure = result.local_failure
        got = {"": "ok", "reset": "closed", "connect": "handshake-failed"}[failure]
        records = dst(world.records)
        assert len(records) <= 1
        out[kind] = _outcome(got, records)
    return out


def _outcome(got: str, records: list[Any]) -> Outcome:
    if not records:
        return got, "", ""
    (record,) = records
    assert record.upstream_cluster == INBOUND_PASSTHROUGH_CLUSTER
    policy = record.connection_security_policy
    return got, record.request_protocol, ConnectionSecurityPolicy(policy).value


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_passthrough_chains_decide_alike_on_real_envoy_and_in_the_sim(
    mode: str, tmp_path: Path, upstream: int
) -> None:
    envoy = _on_envoy(mode, tmp_path, upstream)
    assert envoy == EXPECTED[mode]
    assert _sim(mode) == EXPECTED[mode]


DECLARED_DISABLE = """
apiVersion: v1
kind: Service
metadata: {name: other, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: http, port: 9080}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: other, namespace: t}
spec:
  selector: {matchLabels: {app: other}}
  mtls: {mode: DISABLE}
"""


def test_mtls_to_a_declared_disable_http_port_is_a_codec_error_on_envoy_as_in_the_sim(
    tmp_path: Path, upstream: int
) -> None:
    """A DISABLE HTTP port: no ``tls_inspector`` runs there (istiod enables it only for ports
    with a ``tls`` chain), so a client's mTLS reaches the HCM as bytes: Envoy answers the
    ClientHello with a plaintext 400 and logs ``400 DPE http1.codec_error``; the client's
    handshake fails. Plaintext HTTP is served."""
    resources = [
        *sample_app("app").resources,
        *load_text(DECLARED_DISABLE, default_namespace="t").resources,
    ]
    topology = build_topology(resources)
    listen, admin = free_port(), free_port()
    ports = PortMap.of(
        {POD: PodPorts(inbound=FrozenMap({9080: listen}), app=FrozenMap({9080: upstream}))}
    )
    log = tmp_path / "server.log"
    proxy = translate(
        resources, topology, TranslateOptions(port_map=ports, access_log_path=str(log))
    )[POD]
    ca = LocalCA(tmp_path / "ca")
    secrets = tuple(ca.issue("t", "other").secrets().values())
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump(bootstrap(proxy, admin_port=admin, secrets=secrets)))
    client = ca.issue("t", "client")
    with running_envoys([(config, admin)]) as (_, deadline):
        got = [_probe("http", listen, client), _probe("mtls-http", listen, client)]
        lines = read_log(log, 2, deadline)
    envoy = [(r.response_code, r.response_flags) for r in map(record_from_access_log, lines)]
    assert got == ["ok", "handshake-failed"]
    assert envoy == [(200, ()), (400, ("DPE",))]
    assert record_from_access_log(lines[1]).response_code_details == "http1.codec_error"
    # the sim, on the same translation (without the port map)
    world = World(topology, sample_app("app").behavior, translate(resources, topology))
    for mtls in (False, True):
        request = Request("GET", "/x", "other", 9080, {}, "id", "")
        run = world.env.process(
            inbound(
                world,
                world.pods[POD],
                request,
                client=world.pods["client-v1-0"],
                service_host="",
                attempt=None,
                mtls=mtls,
                port=9080,
                alpn=HTTP_ALPN if mtls else (),
            )
        )
        world.env.run(until=run)
        assert isinstance(run.value, Response)
        assert run.value.local_failure == ("connect" if mtls else "")
    sim = [(r.response_code, r.response_flags, r.response_code_details) for r in dst(world.records)]
    assert sim[1] == (400, ("DPE",), "http1.codec_error")
    assert sim[0][1] == ()  # the sim's app behind "other" has no model: its status is its own


CLIENT_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: web, port: 7070, targetPort: 9080}]
"""
"""What the client's registry knows: a Service to ``other``'s 9080 (auto mTLS: ``other`` has a
sidecar). The server's translation is made without it, so on the server 9080 is a port no
Service declares: the passthrough chains decide (as when the server's istiod does not know the
Service the client used)."""


def _client_side(mode: str) -> list[Any]:
    return [*_resources(mode), *load_text(CLIENT_SERVICE, default_namespace="t").resources]


def _through_sidecars_on_envoy(mode: str, tmp_path: Path, upstream: int) -> list[Outcome]:
    """A client sidecar sends one HTTP request and one raw connection to the server sidecar's
    passthrough port (both real Envoy); the server's records, in that order."""
    listen, client_listen = free_port(), free_port()
    admins = (free_port(), free_port())
    ca = LocalCA(tmp_path / "ca")
    server = _server_config(mode, tmp_path, ca, listen, upstream, admins[0])
    resources = _client_side(mode)
    ports = PortMap.of(
        {
            "client-v1-0": PodPorts(
                listeners=FrozenMap({7070: client_listen}),
                inbound=FrozenMap({9080: free_port()}),  # its virtualInbound
            ),
            "other-v1-0": PodPorts(inbound=FrozenMap({9080: listen})),
        }
    )
    options = TranslateOptions(port_map=ports, access_log_path=str(tmp_path / "client.log"))
    proxy = translate(resources, build_topology(resources), options)["client-v1-0"]
    secrets = tuple(ca.issue("t", "client").secrets().values())
    client = tmp_path / "client.yaml"
    client.write_text(yaml.safe_dump(bootstrap(proxy, admin_port=admins[1], secrets=secrets)))
    with running_envoys(list(zip((server, client), admins, strict=True))) as (_, deadline):
        got = []
        with socket.create_connection(("127.0.0.1", client_listen), timeout=5) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nhost: raw\r\nconnection: close\r\n\r\n")
            got.append(b"200 OK" in _read_all(s))
        with socket.create_connection(("127.0.0.1", client_listen), timeout=5) as s:
            s.sendall(b"\x00\x01binary hello")
            got.append(_read_all(s) == b"raw")
        lines = read_log(tmp_path / f"{mode}.log", 2, deadline)
    assert got == [True, True]
    return [_outcome("ok", [record_from_access_log(x)]) for x in lines]


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


def _through_sidecars_in_the_sim(mode: str) -> list[Outcome]:
    """The same two exchanges in the simulator: the client sidecar's config translated with the
    Service, the server's without it (as on Envoy)."""
    out: list[Outcome] = []
    for tcp in (False, True):
        resources = _client_side(mode)
        topology = build_topology(resources)
        server_side = _resources(mode)
        configs = dict(translate(resources, topology))
        configs[POD] = translate(server_side, build_topology(server_side))[POD]
        world = World(
            topology, sample_app("app").behavior, MeshEnvoyConfig(configs), resources=resources
        )
        if tcp:
            one_connection(world, "raw")
        else:
            one_request(world, to="raw", path="/x")
        out += [_outcome("ok", [r]) for r in dst(world.records)]
    return out


@pytest.mark.parametrize("mode", ["PERMISSIVE", "STRICT"])
def test_http_over_mtls_from_a_client_sidecar_takes_the_passthrough_http_chain(
    mode: str, tmp_path: Path, upstream: int
) -> None:
    """The client sidecar's ``istio.alpn`` (:mod:`mesh.envoy.alpn`) makes its HTTP request over
    mTLS offer ``istio-http/1.1``: the server's passthrough port takes it on
    ``virtualInbound-catchall-http`` (logged as HTTP over mTLS); raw bytes through the client's
    ``tcp_proxy`` offer ``istio-peer-exchange``/``istio`` and take the TCP mTLS chain. Real
    Envoy and the simulator alike."""
    want = [("ok", "http", "mutual_tls"), ("ok", "tcp", "mutual_tls")]
    assert _through_sidecars_on_envoy(mode, tmp_path, upstream) == want
    assert _through_sidecars_in_the_sim(mode) == want
