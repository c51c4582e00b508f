"""Run the security filters on a real Envoy: a static bootstrap with one inbound listener whose
filter chains come from ``inbound_filter_chains`` (an HCM with the security filters and a
``direct_response`` route), SPIFFE certificates from the local CA, and small HTTP(S) clients.

Every Envoy is started with ``subprocess.Popen`` on allocated 127.0.0.1 ports and stopped by its
PID when the context manager exits.
"""

from __future__ import annotations

import http.client
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.local.ca import IssuedCert
from mesh.model import MutualTLSMode
from mesh.security import inbound_filter_chains, tls_inspector

ENVOY = Path(sys.executable).parent / "envoy"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
Json = dict[str, Any]


def strip_sds(node: Any) -> Any:
    """Static bootstraps name secrets without an ``sds_config`` source."""
    if isinstance(node, dict):
        if "name" in node and "sds_config" in node and len(node) == 2:
            return {"name": node["name"]}
        return {k: strip_sds(v) for k, v in node.items()}
    if isinstance(node, list):
        return [strip_sds(v) for v in node]
    return node


def static_secrets(cert: IssuedCert) -> list[Json]:
    """The ``default`` and ``ROOTCA`` secrets of one identity, for ``static_resources``."""
    return [{k: v for k, v in s.items() if k != "@type"} for s in cert.secrets().values()]


def hcm(filters: Sequence[Json], stat_prefix: str = "inbound_0.0.0.0_8080") -> Json:
    """An inbound HCM answering 200 ``ok`` after ``filters``."""
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": stat_prefix,
            "route_config": {
                "name": "inbound|8080||",
                "virtual_hosts": [
                    {
                        "name": "inbound|http|8080",
                        "domains": ["*"],
                        "routes": [
                            {
                                "name": "default",
                                "match": {"prefix": "/"},
                                "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
                            }
                        ],
                    }
                ],
            },
            "http_filters": [*filters, ROUTER],
        },
    }


def inbound_bootstrap(
    *,
    port: int,
    admin_port: int,
    mode: MutualTLSMode,
    http_filters: Sequence[Json],
    secrets: Sequence[Json] = (),
    extra_listeners: Sequence[Json] = (),
    clusters: Sequence[Json] = (),
) -> Json:
    """A bootstrap whose inbound listener on ``port`` has the chains of ``mode``."""
    chains = inbound_filter_chains(
        mode, target_port=8080, match_port=port, http=True,
        network_filters=lambda _mtls: [hcm(http_filters)],
    )  # fmt: skip
    listener = {
        "name": "virtualInbound",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "enable_reuse_port": False,
        "listener_filters": [tls_inspector()],
        "filter_chains": chains,
    }
    resources: Json = {"listeners": [listener, *extra_listeners], "clusters": list(clusters)}
    if secrets:
        resources["secrets"] = list(secrets)
    return strip_sds(
        {
            "admin": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
            },
            "node": {
                "id": "sidecar~127.0.0.1~test.shop~shop.svc.cluster.local",
                "cluster": "test.shop",
            },
            "static_resources": resources,
        }
    )


def validate(config: Json, tmp: Path) -> tuple[int, str]:
    """``envoy --mode validate`` on ``config``: (return code, output tail)."""
    path = tmp / f"validate-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--concurrency", "1", "-l", "error"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, (done.stdout + done.stderr)[-2000:]


@contextmanager
def running_envoy(config: Json, tmp: Path, admin_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Start Envoy on ``config``, wait for ``/ready``, stop it by PID afterwards."""
    path = tmp / f"envoy-{admin_port}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [str(ENVOY), "-c", str(path), "--concurrency", "1", "--disable-hot-restart"]
    cmd += ["-l", "error", "--base-id", str(admin_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                raise AssertionError(f"envoy exited with {proc.returncode}: {err}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{admin_port}/ready", timeout=0.5
                ) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("envoy did not become ready in time")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def client_context(cert: IssuedCert | None, root: Path) -> ssl.SSLContext:
    """A TLS client like a sidecar's: Istio ALPN, the mesh root, optionally a SPIFFE cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(str(root))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_chain), str(cert.private_key))
    ctx.set_alpn_protocols(["istio-peer-exchange", "istio"])
    return ctx


@dataclass(frozen=True)
class Reply:
    """What a client got: status (0 = connection closed without a response), body, headers."""

    status: int
    body: str
    headers: dict[str, str]


def send(
    port: int,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Reply:
    """One request on a fresh connection."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=tls)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return Reply(response.status, body, {k.lower(): v for k, v in response.getheaders()})
    except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return Reply(0, "", {})
    finally:
        conn.close()


Sender = Callable[..., Reply]
