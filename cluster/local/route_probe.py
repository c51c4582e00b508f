"""Ask a real Envoy how it routes requests: one throw-away Envoy with the route configuration
under test on one listener and an echo server behind every cluster it names.

No admin endpoint and no app: the caller instruments the route configuration so that Envoy's
answers say what it matched (response headers added per route, the ``%UPSTREAM_CLUSTER%`` it
picked); the echo server (a small HTTP/1.1 server in this process) answers every forwarded request
with response headers carrying the request exactly as it arrived upstream (``:path``,
``:authority``, ``:method`` and every value of any header asked for, joined with ``,``). Envoy and
the echo bind 127.0.0.1 only; Envoy runs with ``--concurrency 1`` and is stopped by its PID when
the probe ends.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cluster.local.ca import LocalCA
from cluster.local.envoy import envoy_binary
from cluster.local.ports import LOOPBACK, free_ports
from mesh.envoy_api import type_urls as tu
from mesh.runner import RunnerError

__all__ = ["ECHO_PREFIX", "ProbeRequest", "ProbeResponse", "probe_routes"]

ECHO_PREFIX = "x-mpy-echo-"
"""Response headers the echo server adds: ``x-mpy-echo-path``, ``x-mpy-echo-<name>``..."""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One HTTP/1.1 request: method, path (with query), Host and extra headers."""

    method: str
    path: str
    authority: str
    headers: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    """Sent to a listener that treats 127.0.0.1 as internal (``use_remote_address``): Envoy
    sets ``x-envoy-internal: true`` itself (and ``x-forwarded-proto`` from the connection), as
    it strips a client's own ``x-envoy-internal``."""
    tls: bool = False
    """With ``internal``: over TLS (to the internal listener that terminates TLS), so that Envoy
    sets ``x-forwarded-proto: https`` itself."""


@dataclass(slots=True)
class ProbeResponse:
    """What Envoy answered: status and headers (lower-case names; repeats joined by ``,``, and
    each value of a repeated header in ``values``)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    values: dict[str, list[str]] = field(default_factory=dict)


def _hcm(name: str, route_config: Mapping[str, Any], internal: bool) -> dict[str, Any]:
    edge: dict[str, Any] = {}
    if internal:
        edge = {
            "use_remote_address": True,
            "internal_address_config": {
                "cidr_ranges": [{"address_prefix": LOOPBACK, "prefix_len": 32}]
            },
        }
    return {
        "name": tu.FILTER_HCM,
        "typed_config": {
            "@type": tu.HCM,
            **edge,
            "stat_prefix": name,
            "route_config": route_config,
            "http_filters": [{"name": tu.FILTER_ROUTER, "typed_config": {"@type": tu.ROUTER}}],
        },
    }


def _listener(
    name: str,
    port: int,
    route_config: Mapping[str, Any],
    internal: bool = False,
    cert: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    chain: dict[str, Any] = {"filters": [_hcm(name, route_config, internal)]}
    if cert is not None:
        chain["transport_socket"] = {
            "name": tu.TLS_TRANSPORT_SOCKET,
            "typed_config": {
                "@type": tu.DOWNSTREAM_TLS_CONTEXT,
                "common_tls_context": {
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(cert[0])},
                            "private_key": {"filename": str(cert[1])},
                        }
                    ]
                },
            },
        }
    return {
        "name": name,
        "enable_reuse_port": False,
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [chain],
    }


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    names: tuple[str, ...] = ()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        # the request line's own target: http.server folds a leading "//" in self.path
        words = self.requestline.split()
        self.send_header(ECHO_PREFIX + "path", words[1] if len(words) > 1 else self.path)
        self.send_header(ECHO_PREFIX + "authority", self.headers.get("host", ""))
        self.send_header(ECHO_PREFIX + "method", self.command)
        for name in self.names:
            if name.startswith(":"):
                continue
            for value in self.headers.get_all(name) or ():
                self.send_header(ECHO_PREFIX + name, value)  # one line per value
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer  # noqa: N815 - http.server names

    def log_message(self, format: str, *args: Any) -> None:
        return


def _echo_server(port: int, names: Sequence[str]) -> ThreadingHTTPServer:
    handler = type("Echo", (_Echo,), {"names": tuple(n.lower() for n in names)})
    server = ThreadingHTTPServer((LOOPBACK, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="route-check-echo", daemon=True).start()
    return server


def bootstrap(
    route_config: Mapping[str, Any],
    clusters: Sequence[str],
    ports: Sequence[int],
    cert: tuple[Path, Path],
) -> dict[str, Any]:
    """The Envoy bootstrap: the listener under test (three times: for external clients, for
    internal ones, for internal ones over TLS) and one cluster per name, each sending to the
    echo server."""
    front, internal, echo, internal_tls = ports
    return {
        "node": {"id": "route-check", "cluster": "route-check"},
        "static_resources": {
            "listeners": [
                _listener("under_test", front, route_config),
                _listener("under_test_internal", internal, route_config, internal=True),
                _listener(
                    "under_test_internal_tls", internal_tls, route_config, internal=True, cert=cert
                ),
            ],
            "clusters": [
                {
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": LOOPBACK,
                                                    "port_value": echo,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
                for name in dict.fromkeys(clusters)
            ],
        },
    }


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunnerError(f"envoy exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RunnerError("envoy did not start listening within 20 s")


def _send(conn: http.client.HTTPConnection, req: ProbeRequest) -> ProbeResponse:
    conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", req.authority)
    for name, value in req.headers:
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    values: dict[str, list[str]] = {}
    for name, value in resp.getheaders():
        values.setdefault(name.lower(), []).append(value)
    return ProbeResponse(resp.status, {k: ",".join(v) for k, v in values.items()}, "", values)


def _certificate(directory: Path) -> tuple[Path, Path]:
    issued = LocalCA(directory / "ca").issue("route-check", "probe")
    return issued.cert_chain, issued.private_key


def _connect(port: int, tls: bool) -> http.client.HTTPConnection:
    if not tls:
        return http.client.HTTPConnection(LOOPBACK, port, timeout=5.0)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the probe's own throw-away certificate
    return http.client.HTTPSConnection(LOOPBACK, port, timeout=5.0, context=context)


def _send_all(
    requests: Sequence[ProbeRequest], ports: Sequence[int], deadline: float
) -> list[ProbeResponse]:
    # external, internal, internal over TLS (ports[2] is the echo server's)
    targets = [(ports[0], False), (ports[1], False), (ports[3], True)]
    conns = [_connect(port, tls) for port, tls in targets]
    out: list[ProbeResponse] = []
    try:
        for req in requests:
            if time.monotonic() > deadline:
                raise RunnerError("the route probe ran out of time")
            which = (2 if req.tls else 1) if req.internal else 0
            try:
                out.append(_send(conns[which], req))
            except (OSError, http.client.HTTPException) as exc:
                conns[which].close()
                conns[which] = _connect(*targets[which])
                out.append(ProbeResponse(0, {}, f"{type(exc).__name__}: {exc}"))
    finally:
        for conn in conns:
            conn.close()
    return out


def probe_routes(
    route_config: Mapping[str, Any],
    clusters: Sequence[str],
    requests: Sequence[ProbeRequest],
    *,
    echo_headers: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> list[ProbeResponse]:
    """Start Envoy with ``route_config``, send ``requests`` one by one, stop Envoy.

    Raises :class:`RunnerError` with Envoy's own message when it refuses the configuration.
    """
    ports = free_ports(4)
    with tempfile.TemporaryDirectory(prefix="meshplay-route-check-") as tmp:
        config = Path(tmp) / "bootstrap.json"
        log = Path(tmp) / "proxy.log"
        config.write_text(
            json.dumps(bootstrap(route_config, clusters, ports, _certificate(Path(tmp))))
        )
        argv = [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                "--log-level", "error", "--log-path", str(log)]  # fmt: skip
        echo = _echo_server(ports[2], echo_headers)
        try:
            with log.open("wb") as sink:
                proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        except OSError as exc:
            echo.shutdown()
            echo.server_close()
            raise RunnerError(f"cannot start envoy: {exc}") from exc
        try:
            try:
                _wait_listening(ports[0], proc, time.monotonic() + 20.0)
            except RunnerError as exc:
                text = log.read_text(errors="replace").strip().splitlines()
                raise RunnerError(f"{exc}: {text[-1] if text else 'no log'}") from exc
            _wait_listening(ports[1], proc, time.monotonic() + 20.0)
            _wait_listening(ports[3], proc, time.monotonic() + 20.0)
            return _send_all(requests, ports, time.monotonic() + timeout_s)
        finally:
            echo.shutdown()
            echo.server_close()
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
