"""A sniffed port on real Envoy 1.40, and the simulator agreeing with it.

First the client side alone. The client sidecar's translated config (a Service port named ``web``: protocol unknown, so
istiod's sniffed ``<VIP>_<port>`` listener with ``http_inspector``) runs in a real Envoy whose
sniffed listener is bound on 127.0.0.1 (the local runner's addressing). Its cluster reaches a
local server that answers HTTP requests and raw bytes alike. Plaintext HTTP must take the HCM
chain (the VirtualService's fault answers ``/teapot`` with 418; other paths reach the server,
logged as HTTP), raw bytes the default ``tcp_proxy`` chain (logged as a TCP connection). The
same requests in the simulator, on the same translation, must be decided the same way.

Then both sidecars, client and server, with workload certificates from the local runner's CA:
the server's ``virtualInbound`` chains for the sniffed port take plaintext HTTP (DISABLE) on the
HTTP chain and raw bytes on the TCP chain; over Istio mTLS (PERMISSIVE) the client sidecar's
``istio.alpn`` (``set_filter_state``, :mod:`mesh.envoy.alpn`) makes the HTTP request's handshake
offer ``istio-http/1.1``, so it takes the HTTP mTLS chain, while the raw bytes (``tcp_proxy``,
no HTTP filter) offer the cluster's ``istio-peer-exchange``/``istio`` and take the TCP mTLS
chain. The simulator's server-side records must say the same.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.local.ca import LocalCA
from mesh.envoy import TranslateOptions, bootstrap, translate
from mesh.envoy.accesslog import record_from_access_log
from mesh.envoy.ports import PodPorts, PortMap
from mesh.model import FrozenMap
from mesh.records import ConnectionSecurityPolicy
from mesh.source import load_text
from mesh.topology import MeshConfig, build_topology
from sim.world import World
from tests.mesh.envoy.real_envoy import free_port, http_or_raw_server, read_log, running_envoys
from tests.mesh.envoy.test_golden import _test_secrets
from tests.sim.harness import dst, one_connection, one_request, sample_app, src

pytestmark = pytest.mark.envoy

SNIFFED = """
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: t}
spec:
  selector: {app: other}
  ports: [{name: web, port: 7070, targetPort: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: raw, namespace: t}
spec:
  host: raw
  trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: raw, namespace: t}
spec:
  hosts: [raw]
  http:
  - match: [{uri: {prefix: /teapot}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: raw}}]
  - route: [{destination: {host: raw}}]
"""
CLUSTER = "outbound|7070||raw.t.svc.cluster.local"


@pytest.fixture
def upstream() -> Iterator[int]:
    """Answers an HTTP request with 200 ``http`` and raw bytes with ``raw``; bounded to 20
    connections, one at a time, 127.0.0.1 only."""
    with http_or_raw_server(20, 15) as port:
        yield port


def _resources() -> list[Any]:
    app = sample_app("app")
    return [*app.resources, *load_text(SNIFFED, default_namespace="t").resources]


def _client_envoy_config(tmp_path: Path, listen: int, upstream: int, admin: int) -> Path:
    resources = _resources()
    topology = build_topology(resources)
    ports = PortMap.of(
        {
            "client-v1-0": PodPorts(
                listeners=FrozenMap({7070: listen}),
                inbound=FrozenMap({9080: free_port()}),  # its virtualInbound
            ),
            "other-v1-0": PodPorts(app=FrozenMap({9080: upstream})),
        }
    )
    options = TranslateOptions(port_map=ports, access_log_path=str(tmp_path / "client.log"))
    proxy = translate(resources, topology, options)["client-v1-0"]
    vip = topology.service("raw.t.svc.cluster.local")
    assert vip is not None
    sniffed = proxy.listener(f"{vip.addresses[0]}_7070")
    assert sniffed is not None
    assert sniffed["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": listen}
    doc = bootstrap(proxy, admin_port=admin, secrets=_test_secrets(tmp_path))
    path = tmp_path / "client.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _http(port: int, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"host": "raw"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


def _raw(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00\x01binary hello")
        answer = b""
        while chunk := s.recv(100):
            answer += chunk
    return answer


def _real_envoy(tmp_path: Path, upstream: int) -> list[tuple[str, int, str]]:
    listen, admin = free_port(), free_port()
    config = _client_envoy_config(tmp_path, listen, upstream, admin)
    with running_envoys([(config, admin)]) as (_, deadline):
        assert _http(listen, "/ok") == 200
        assert _http(listen, "/teapot") == 418
        assert _raw(listen) == b"raw"
        lines = read_log(tmp_path / "client.log", 3, deadline)
    records = [record_from_access_log(line) for line in lines]
    return sorted((r.request_protocol, r.response_code, r.upstream_cluster) for r in records)


def _simulated() -> list[tuple[str, int, str]]:
    resources = _resources()
    topology = build_topology(resources)
    app = sample_app("app")
    out = []
    for path in ("/ok", "/teapot"):
        world = World(topology, app.behavior, translate(resources, topology), resources=resources)
        one_request(world, to="raw", path=path)
        out += [
            (r.request_protocol, r.response_code, r.upstream_cluster) for r in src(world.records)
        ]
    world = World(topology, app.behavior, translate(resources, topology), resources=resources)
    one_connection(world, "raw")
    out += [(r.request_protocol, r.response_code, r.upstream_cluster) for r in src(world.records)]
    return sorted(out)


def test_http_and_raw_tcp_to_a_sniffed_port_take_the_same_chains_on_envoy_and_in_the_sim(
    tmp_path: Path, upstream: int
) -> None:
    envoy = _real_envoy(tmp_path, upstream)
    # Envoy: the HCM logged two HTTP requests (the fault's 418, the server's 200), the
    # tcp_proxy one TCP connection; all three name the service's cluster (the fault aborts
    # after the route chose it)
    assert [(p, c) for p, c, _ in envoy] == [("http", 200), ("http", 418), ("tcp", 0)]
    assert {cluster for _, _, cluster in envoy} == {CLUSTER}
    simulated = _simulated()
    # the sim's app behind "other" has no behaviour model (it answers 404): compare what the
    # client sidecar decided, chain by chain
    assert [(p, cluster) for p, _, cluster in simulated] == [(p, k) for p, _, k in envoy]
    assert sorted(c for p, c, _ in simulated if p == "http")[-1] == 418


DISABLE = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: other, namespace: t}
spec:
  selector: {matchLabels: {app: other}}
  mtls: {mode: DISABLE}
"""
PLAIN_SERVICE = SNIFFED.split("---", maxsplit=1)[0]
"""The sniffed Service alone (no DestinationRule, no VirtualService): auto mTLS decides."""


def _two_sidecars(tmp_path: Path, extra: str, upstream: int) -> tuple[list[Any], list[Any]]:
    """Client and server sidecars on real Envoy; one HTTP request and one raw connection to the
    sniffed port; the (client, server) access-log records."""
    listen, inbound, admins = free_port(), free_port(), (free_port(), free_port())
    resources = [*sample_app("app").resources, *load_text(extra, default_namespace="t").resources]
    topology = build_topology(resources)
    ports = PortMap.of(
        {
            "client-v1-0": PodPorts(
                listeners=FrozenMap({7070: listen}),
                inbound=FrozenMap({9080: free_port()}),  # its virtualInbound
            ),
            "other-v1-0": PodPorts(
                inbound=FrozenMap({9080: inbound}), app=FrozenMap({9080: upstream})
            ),
        }
    )
    ca = LocalCA(tmp_path / "ca")
    configs: list[tuple[Path, int | None]] = []
    for (pod, account), admin in zip(
        (("client-v1-0", "client"), ("other-v1-0", "other")), admins, strict=True
    ):
        options = TranslateOptions(port_map=ports, access_log_path=str(tmp_path / f"{pod}.log"))
        proxy = translate(resources, topology, options)[pod]
        secrets = tuple(ca.issue("t", account).secrets().values())
        config = tmp_path / f"{pod}.yaml"
        config.write_text(yaml.safe_dump(bootstrap(proxy, admin_port=admin, secrets=secrets)))
        configs.append((config, admin))
    with running_envoys(configs) as (_, deadline):
        assert _http(listen, "/ok") == 200
        assert _raw(listen) == b"raw"
        client = read_log(tmp_path / "client-v1-0.log", 2, deadline)
        server = read_log(tmp_path / "other-v1-0.log", 2, deadline)
    return (
        [record_from_access_log(x) for x in client],
        [record_from_access_log(x) for x in server],
    )


def _simulated_server(extra: str) -> list[str]:
    """request_protocol of the server sidecar's records in the sim, for the same two exchanges."""
    resources = [*sample_app("app").resources, *load_text(extra, default_namespace="t").resources]
    topology = build_topology(resources)
    app = sample_app("app")
    out: list[str] = []
    for tcp in (False, True):
        world = World(topology, app.behavior, translate(resources, topology), resources=resources)
        if tcp:
            one_connection(world, "raw")
        else:
            one_request(world, to="raw", path="/ok")
        out += [r.request_protocol for r in dst(world.records)]
    return out


@pytest.mark.parametrize(("extra", "server_protocols"), [
    (PLAIN_SERVICE, ["http", "tcp"]),  # PERMISSIVE + auto mTLS: the ALPN tells them apart
    (PLAIN_SERVICE + DISABLE, ["http", "tcp"]),  # plaintext: http_inspector tells them apart
])  # fmt: skip
def test_the_server_sidecar_takes_the_same_sniffed_chains_on_envoy_and_in_the_sim(
    tmp_path: Path, upstream: int, extra: str, server_protocols: list[str]
) -> None:
    client, server = _two_sidecars(tmp_path, extra, upstream)
    assert [r.request_protocol for r in client] == ["http", "tcp"]
    assert [r.request_protocol for r in server] == server_protocols
    policy = (
        ConnectionSecurityPolicy.NONE if "DISABLE" in extra else ConnectionSecurityPolicy.MUTUAL_TLS
    )
    assert [r.connection_security_policy for r in server] == [policy, policy]
    assert _simulated_server(extra) == server_protocols


def test_raw_bytes_to_an_http_port_are_black_holed_on_envoy_as_in_the_sim(tmp_path: Path) -> None:
    """REGISTRY_ONLY: the sidecar's HTTP wildcard ``0.0.0.0_9080`` hands non-HTTP bytes to its
    ``PassthroughFilterChain``, here ``BlackHoleCluster``: accepted, then closed (``UH``), where
    an HCM would have failed them as a codec error. (ALLOW_ANY is not tried on 127.0.0.1: the
    original destination would be the listener itself.)"""
    resources = _resources()
    topology = build_topology(resources, MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    listen, admin = free_port(), free_port()
    ports = PortMap.of(
        {
            "client-v1-0": PodPorts(
                listeners=FrozenMap({9080: listen}),
                inbound=FrozenMap({9080: free_port()}),  # its virtualInbound
            )
        }
    )
    options = TranslateOptions(port_map=ports, access_log_path=str(tmp_path / "client.log"))
    proxy = translate(resources, topology, options)["client-v1-0"]
    config = tmp_path / "client.yaml"
    doc = bootstrap(proxy, admin_port=admin, secrets=_test_secrets(tmp_path))
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    with running_envoys([(config, admin)]) as (_, deadline):
        try:
            answer = _raw(listen)
        except ConnectionResetError:
            answer = b""  # Envoy closed with a reset: nothing came back either way
        assert answer == b""
        (line,) = read_log(tmp_path / "client.log", 1, deadline)
    envoy = record_from_access_log(line)
    world = World(topology, sample_app("app").behavior, translate(resources, topology))
    one_connection(world, "203.0.113.9:9080")
    (sim,) = src(world.records)
    for record in (envoy, sim):
        assert (record.request_protocol, record.upstream_cluster, record.response_flags) == (
            "tcp",
            "BlackHoleCluster",
            ("UH",),
        )
