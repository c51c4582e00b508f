"""The upstream ALPN of a client sidecar's HTTP requests on real Envoy 1.40, and in the sim.

istiod's ``istio.alpn`` (stock Envoy: ``set_filter_state`` per route, :mod:`mesh.envoy.alpn`)
must give the upstream TLS handshake ``istio-http/1.1`` (HTTP/1.1 cluster) or ``istio-h2``
(HTTP/2 cluster) only where the cluster may use Istio mTLS; a cluster whose DestinationRule
originates TLS (SIMPLE) keeps its own ALPN (none configured: Envoy's HTTP/1.1 pool offers
``http/1.1``). The client sidecar's translated config runs in a real Envoy whose cluster
endpoint is a local TLS server with a workload certificate of the local runner's CA (the SAN
auto mTLS expects); the server records which protocol the handshake negotiated from its own
preference list (every Istio and HTTP ALPN value). The simulator, on the same translation,
must say the same ALPN in its trace.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.local.ca import LocalCA
from mesh.envoy import TranslateOptions, bootstrap, translate
from mesh.envoy.ports import PodPorts, PortMap
from mesh.model import FrozenMap
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port, running_envoys
from tests.sim.harness import make_world, one_request, sample_app

pytestmark = pytest.mark.envoy

PREFERENCE = ["istio-h2", "istio-http/1.1", "istio-peer-exchange", "istio", "h2", "http/1.1"]

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: raw, namespace: t}}
spec:
  selector: {{app: other}}
  ports: [{{name: {name}, port: 7070, targetPort: 9080}}]
"""
SIMPLE = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: raw, namespace: t}
spec:
  host: raw
  trafficPolicy: {tls: {mode: SIMPLE}}
"""


class _TlsServer:
    """Accepts at most 5 TLS connections on 127.0.0.1; records each negotiated ALPN ("" for
    none) and answers one HTTP/1.1 response."""

    def __init__(self, cert: Any) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert_chain), str(cert.private_key))
        context.set_alpn_protocols(PREFERENCE)
        self.context = context
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(15)
        self.port: int = self.socket.getsockname()[1]
        self.negotiated: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(5):
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(5)
                    self.negotiated.append(tls.selected_alpn_protocol() or "")
                    tls.recv(4096)
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
            except OSError:
                continue

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


@pytest.fixture
def server(ca: LocalCA) -> Iterator[_TlsServer]:
    srv = _TlsServer(ca.issue("t", "other"))
    try:
        yield srv
    finally:
        srv.close()


def _resources(extra: str) -> list[Any]:
    return [*sample_app("app").resources, *load_text(extra, default_namespace="t").resources]


def _on_envoy(
    extra: str, tmp_path: Path, ca: LocalCA, server: _TlsServer, connections: int = 1
) -> list[str]:
    listen, admin = free_port(), free_port()
    resources = _resources(extra)
    ports = PortMap.of(
        {
            "client-v1-0": PodPorts(
                listeners=FrozenMap({7070: listen}),
                inbound=FrozenMap({9080: free_port()}),  # its virtualInbound
            ),
            "other-v1-0": PodPorts(inbound=FrozenMap({9080: server.port})),
        }
    )
    options = TranslateOptions(port_map=ports, access_log_path=str(tmp_path / "client.log"))
    proxy = translate(resources, build_topology(resources), options)["client-v1-0"]
    secrets = tuple(ca.issue("t", "client").secrets().values())
    config = tmp_path / "client.yaml"
    config.write_text(yaml.safe_dump(bootstrap(proxy, admin_port=admin, secrets=secrets)))
    with running_envoys([(config, admin)], flush_ms=None) as (_, deadline):
        request = urllib.request.Request(f"http://127.0.0.1:{listen}/x", headers={"host": "raw"})
        # an HTTP/2 cluster talks h2 to a server that answers HTTP/1.1: only the ALPN counts
        with contextlib.suppress(urllib.error.URLError, OSError):
            urllib.request.urlopen(request, timeout=5).close()
        while len(server.negotiated) < connections and time.monotonic() < deadline:
            time.sleep(0.05)
    return server.negotiated[:connections]


def _in_the_sim(extra: str) -> str:
    """The ALPN the sim's client sidecar says its handshake offers ("" = the cluster's own)."""
    _, lines = one_request(make_world(extra), to="raw", path="/x")
    said = [line.split("offers ALPN ", 1)[1] for line in lines if "offers ALPN " in line]
    return said[0].split(" ", 1)[0] if said else ""


@pytest.mark.parametrize(
    ("extra", "negotiated", "simulated"),
    [
        (SERVICE.format(name="web"), "istio-http/1.1", "istio-http/1.1,istio"),
        (SERVICE.format(name="http"), "istio-http/1.1", "istio-http/1.1,istio"),
        (SERVICE.format(name="grpc"), "istio-h2", "istio-h2,istio"),
        (SERVICE.format(name="http") + SIMPLE, "http/1.1", ""),
    ],
    ids=["sniffed", "http", "grpc", "simple-tls-origination"],
)
def test_the_upstream_handshake_offers_istio_alpn_only_for_istio_mtls(
    extra: str,
    negotiated: str,
    simulated: str,
    tmp_path: Path,
    ca: LocalCA,
    server: _TlsServer,
) -> None:
    assert _on_envoy(extra, tmp_path, ca, server) == [negotiated]
    assert _in_the_sim(extra) == simulated


MIRROR = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: raw, namespace: t}
spec:
  hosts: [raw]
  http:
  - route: [{destination: {host: raw}}]
    mirror: {host: raw}
    mirrorPercentage: {value: 100}
"""


def test_a_mirrored_copy_offers_the_clusters_own_alpn(
    tmp_path: Path, ca: LocalCA, server: _TlsServer
) -> None:
    """Envoy 1.40 does not hand a shadow request the filter state: the request negotiates
    ``istio-http/1.1``, its mirror copy the cluster's own ``istio-peer-exchange``. On a sniffed
    port the server's sidecar then takes the copy on its TCP chain, and the sim does the same."""
    extra = SERVICE.format(name="web") + MIRROR
    assert sorted(_on_envoy(extra, tmp_path, ca, server, connections=2)) == [
        "istio-http/1.1",
        "istio-peer-exchange",
    ]
    world = make_world(extra)
    one_request(world, to="raw", path="/x")
    served = sorted(r.request_protocol for r in world.records if r.reporter.value == "destination")
    assert served == ["http", "tcp"]
