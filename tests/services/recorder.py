"""A recording forward proxy standing where a sidecar would: a service's `HTTP_PROXY`.

The service keeps its in-mesh URLs (`http://product:8080/...`), so requests reach the proxy in
absolute form with `Host: product:8080`, exactly as Envoy's outbound listener sees them after
iptables capture. The proxy maps that authority to the real 127.0.0.1 port, forwards the request,
and records who called what, with which trace headers, and how long it took.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


@dataclass(frozen=True)
class RecordedCall:
    source: str
    method: str
    service: str
    path: str
    headers: dict[str, str]
    started: float
    duration_s: float
    status: int

    @property
    def request_id(self) -> str:
        return self.headers.get("x-request-id", "")


class Recorder:
    """One recording proxy for one source service (like its sidecar)."""

    def __init__(self, source: str, routes: dict[str, int]) -> None:
        self.source = source
        self.routes = routes  # "product:8080" -> real port on 127.0.0.1
        self.calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                recorder.forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        url = urlsplit(handler.path)
        authority = url.netloc or handler.headers.get("Host", "")
        path = url.path + (f"?{url.query}" if url.query else "")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        port = self.routes.get(authority)
        if port is None:
            status, payload, out_headers = 503, b"no route", [("Content-Type", "text/plain")]
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(handler.command, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                out_headers = [
                    (k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP
                ]
            finally:
                conn.close()
        handler.send_response(status)
        for k, v in out_headers:
            if k.lower() != "content-length":
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        call = RecordedCall(
            source=self.source,
            method=handler.command,
            service=authority.split(":")[0],
            path=url.path,
            headers=headers,
            started=started,
            duration_s=time.monotonic() - started,
            status=status,
        )
        with self._lock:
            self.calls.append(call)

    def take(self) -> list[RecordedCall]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
