"""A trace collector for the local mesh, speaking Zipkin's v2 API (what Istio's ``zipkin``
provider points Envoy at: ``zipkin.istio-system:9411``).

Every sidecar's tracer batches its spans and posts them as a JSON list to
``POST /api/v2/spans`` (chunked: Envoy streams the body), roughly every 5 seconds. This process
keeps them in memory and appends each to ``spans.jsonl``, and answers the read side of Zipkin's
API that ``meshplay traces`` and the TUI use:

* ``GET /api/v2/services``: the services (proxies) that reported;
* ``GET /api/v2/traces?limit=N&serviceName=S``: the newest traces, each a list of spans;
* ``GET /api/v2/trace/{traceId}``: one trace's spans;
* ``GET /api/v2/spans/count``: how many spans arrived (meshplay's own, to wait for the flush).

Run as ``python -m cluster.local.collector PORT FILE``; the local mesh starts it under its
supervisor.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["SpanStore", "main", "read_body", "serve"]

MAX_BODY = 64 * 1024 * 1024


class SpanStore:
    """Spans by trace id, in arrival order, persisted as JSON lines."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.count = 0
        self.lock = threading.Lock()

    def add(self, spans: list[dict[str, Any]]) -> None:
        """Keep a batch of spans (and append them to the file)."""
        with self.lock:
            for span in spans:
                trace = str(span.get("traceId", ""))
                self.traces.setdefault(trace, []).append(span)
                self.traces.move_to_end(trace)
            self.count += len(spans)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(s, sort_keys=True) + "\n" for s in spans)

    def newest(self, limit: int, service: str = "") -> list[list[dict[str, Any]]]:
        """The ``limit`` traces that got spans last (of ``service`` when given)."""
        with self.lock:
            out = []
            for spans in reversed(self.traces.values()):
                if service and not any(
                    s.get("localEndpoint", {}).get("serviceName") == service for s in spans
                ):
                    continue
                out.append(list(spans))
                if len(out) >= limit:
                    break
            return out

    def services(self) -> list[str]:
        """Every ``localEndpoint.serviceName`` seen."""
        with self.lock:
            return sorted(
                {
                    str(s.get("localEndpoint", {}).get("serviceName", ""))
                    for spans in self.traces.values()
                    for s in spans
                }
            )


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, with ``Transfer-Encoding: chunked`` decoded (Envoy's exporters
    stream their posts)."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            line = handler.rfile.readline(1024)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(16)  # the CRLF after each chunk
    length = int(handler.headers.get("Content-Length", "0") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return handler.rfile.read(length)


def _handler(store: SpanStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                body = read_body(self)
            except ValueError as exc:
                self._json(413, {"error": str(exc)})
                return
            if path != "/api/v2/spans":
                self._json(404, {"error": f"no endpoint {path}"})
                return
            try:
                spans = json.loads(body or b"[]")
            except ValueError:
                self._json(400, {"error": "not JSON"})
                return
            if not isinstance(spans, list):
                self._json(400, {"error": "a list of spans was expected"})
                return
            store.add([s for s in spans if isinstance(s, dict)])
            self._json(202, None)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/healthz":
                self._json(200, "ok")
            elif url.path == "/api/v2/services":
                self._json(200, store.services())
            elif url.path == "/api/v2/spans/count":
                self._json(200, {"count": store.count, "traces": len(store.traces)})
            elif url.path == "/api/v2/traces":
                limit = int(query.get("limit", "10") or 10)
                self._json(200, store.newest(limit, query.get("serviceName", "")))
            elif url.path.startswith("/api/v2/trace/"):
                trace = url.path.rsplit("/", 1)[-1]
                with store.lock:
                    spans = list(store.traces.get(trace, []))
                self._json(200 if spans else 404, spans)
            else:
                self._json(404, {"error": f"no endpoint {url.path}"})

        def _json(self, code: int, value: Any) -> None:
            data = b"" if value is None else json.dumps(value).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def serve(port: int, store: SpanStore) -> ThreadingHTTPServer:
    """A collector on 127.0.0.1:``port`` (call ``serve_forever``)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(store))
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cluster.local.collector PORT FILE``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -m cluster.local.collector PORT FILE\n")
        return 2
    server = serve(int(args[0]), SpanStore(Path(args[1])))
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
