"""A trace collector for the local mesh, speaking Zipkin's v2 API (what Istio's ``zipkin``
provider points Envoy at: ``zipkin.istio-system:9411``) and taking OTLP/HTTP exports (what an
``opentelemetry`` provider with ``http`` points Envoy's OpenTelemetry tracer at: ``POST
/v1/traces``, protobuf or OTLP/JSON, read into the same Zipkin v2 spans by
:mod:`cluster.local.otlp`).

Every sidecar's tracer batches its spans and posts them as a JSON list to
``POST /api/v2/spans`` (chunked: Envoy streams the body), roughly every 5 seconds. This process
appends each batch to ``spans.jsonl`` as it came (parsed only when read), and answers the read side of Zipkin's
API that ``meshplay traces`` and the TUI use:

* ``GET /api/v2/services``: the services (proxies) that reported;
* ``GET /api/v2/traces?limit=N&serviceName=S``: the newest traces, each a list of spans;
* ``GET /api/v2/trace/{traceId}``: one trace's spans;
* ``GET /api/v2/spans/count``: how many spans arrived, and how many batches in each format
  (meshplay's own, to wait for the flush).

Run as ``python -m cluster.local.collector PORT FILE``; the local mesh starts it under its
supervisor.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh.observe.spans import Span

__all__ = [
    "CollectorServer",
    "SpanStore",
    "answer",
    "main",
    "read_body",
    "read_new_spans",
    "read_spans_file",
    "serve",
]

MAX_BODY = 64 * 1024 * 1024
OTLP_TRACES_PATH = "/v1/traces"


class SpanStore:
    """Spans by trace id, in arrival order; each posted batch appended as one JSON line.

    A post costs next to nothing (the body is stored as Envoy sent it, its spans counted by
    their ``traceId`` keys); batches are parsed when the spans are read.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.count = 0
        self.batches: Counter[str] = Counter()
        """Posted batches per format: ``zipkin``, ``otlp-protobuf``, ``otlp-json``."""
        self.lock = threading.Lock()
        self._pending: list[bytes] = []
        self._file = path.open("ab") if path is not None else None

    def add_raw(self, body: bytes) -> None:
        """Keep a posted batch (a JSON list of spans) without parsing it."""
        line = body.replace(b"\n", b" ").strip()
        if not line:
            return
        with self.lock:
            self._pending.append(line)
            self.count += line.count(b'"traceId"')
            if self._file is not None:
                self._file.write(line + b"\n")
                self._file.flush()

    def add(self, spans: list[dict[str, Any]]) -> None:
        """Keep parsed spans."""
        self.add_raw(json.dumps(spans).encode())

    def _index(self) -> None:
        """Parse the batches that arrived since the last read (under the lock)."""
        for raw in self._pending:
            for span in _spans_of(raw):
                trace = str(span.get("traceId", ""))
                self.traces.setdefault(trace, []).append(span)
                self.traces.move_to_end(trace)
        self._pending.clear()

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """One trace's spans."""
        with self.lock:
            self._index()
            return list(self.traces.get(trace_id, []))

    def newest(self, limit: int, service: str = "") -> list[list[dict[str, Any]]]:
        """The ``limit`` traces that got spans last (of ``service`` when given)."""
        with self.lock:
            self._index()
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
            self._index()
            return sorted(
                {
                    str(s.get("localEndpoint", {}).get("serviceName", ""))
                    for spans in self.traces.values()
                    for s in spans
                }
            )


def _spans_of(raw: bytes) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    items = value if isinstance(value, list) else [value]
    return [s for s in items if isinstance(s, dict)]


def read_spans_file(path: Path) -> list[dict[str, Any]]:
    """Every span a collector stored (one posted batch, or one span, per line)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [span for line in data.splitlines() if line.strip() for span in _spans_of(line)]


def read_new_spans(path: Path, offset: int) -> tuple[list[Span], int]:
    """The spans of the whole lines stored after byte ``offset``, and the offset after them
    (a batch being written is left for the next read). Malformed spans are skipped."""
    from mesh.observe.spans import span_from_json  # the collector process itself never needs it

    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    spans = []
    for line in data[:end].splitlines():
        for item in _spans_of(line):
            try:
                spans.append(span_from_json(item))
            except (TypeError, ValueError, AttributeError):
                continue
    return spans, offset + end


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The request body, with ``Transfer-Encoding: chunked`` decoded (Envoy's exporters
    stream their posts)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readline()
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            parts.append(await reader.readexactly(size))
            await reader.readline()  # the CRLF after each chunk
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return await reader.readexactly(length) if length else b""


REASONS = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    404: b"Not Found",
    413: b"Payload Too Large",
}


def answer(
    store: SpanStore, method: str, target: str, body: bytes, content_type: str = ""
) -> tuple[int, Any]:
    """(status, JSON value or None) of one request."""
    url = urllib.parse.urlsplit(target)
    if method == "POST" and url.path == OTLP_TRACES_PATH:
        return _otlp(store, body, content_type)
    if method == "POST":
        if url.path != "/api/v2/spans":
            return 404, {"error": f"no endpoint {url.path}"}
        if not body.lstrip().startswith(b"["):
            return 400, {"error": "a JSON list of spans was expected"}
        store.batches["zipkin"] += 1
        store.add_raw(body)
        return 202, None
    query = dict(urllib.parse.parse_qsl(url.query))
    if url.path == "/healthz":
        return 200, "ok"
    if url.path == "/api/v2/services":
        return 200, store.services()
    if url.path == "/api/v2/spans/count":
        return 200, {"count": store.count, "batches": dict(store.batches)}
    if url.path == "/api/v2/traces":
        limit = int(query.get("limit", "10") or 10)
        return 200, store.newest(limit, query.get("serviceName", ""))
    if url.path.startswith("/api/v2/trace/"):
        spans = store.trace(url.path.rsplit("/", 1)[-1])
        return (200 if spans else 404), spans
    return 404, {"error": f"no endpoint {url.path}"}


def _otlp(store: SpanStore, body: bytes, content_type: str) -> tuple[int, Any]:
    """An OTLP/HTTP export: its spans stored as Zipkin v2 spans; the answer is an empty
    ``ExportTraceServiceResponse`` (no body for protobuf, ``{}`` for JSON)."""
    from cluster.local.otlp import OtlpError, spans_from_otlp_json, spans_from_otlp_protobuf

    is_json = "json" in content_type.lower()
    try:
        spans = (
            spans_from_otlp_json(json.loads(body)) if is_json else spans_from_otlp_protobuf(body)
        )
    except (OtlpError, ValueError) as exc:
        return 400, {"error": f"not an OTLP trace export: {exc}"}
    store.batches["otlp-json" if is_json else "otlp-protobuf"] += 1
    if spans:
        store.add(spans)
    return 200, ({} if is_json else None)


async def _connection(
    store: SpanStore, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """HTTP/1.1 with keep-alive: Envoy's tracer reuses its connection for every batch."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *lines = head.decode("latin-1").split("\r\n")
            method, target, _version = first.split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines:
                name, sep, text = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = text.strip()
            reply: Any
            try:
                body = await read_body(reader, headers)
                code, reply = answer(store, method, target, body, headers.get("content-type", ""))
            except ValueError as exc:
                code, reply = 413, {"error": str(exc)}
            data = b"" if reply is None else json.dumps(reply).encode()
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (code, REASONS.get(code, b"OK"), len(data))
                + data
            )
            await writer.drain()
            if headers.get("connection", "").lower() == "close" or code == 413:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (uvicorn brings it): about half the CPU per
    posted batch of asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class CollectorServer:
    """The collector's server: ``serve_forever`` in one thread, ``shutdown`` from another."""

    def __init__(self, port: int, store: SpanStore) -> None:
        self.port = port
        self.store = store
        self.loop = _new_loop()
        self._server: asyncio.base_events.Server | None = None
        self._stopped = threading.Event()
        self._server = self.loop.run_until_complete(
            asyncio.start_server(
                lambda r, w: _connection(store, r, w), "127.0.0.1", port, reuse_address=True
            )
        )

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`."""
        try:
            self.loop.run_forever()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving (from another thread) and wait until the loop stopped."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._stopped.wait(5.0)

    def server_close(self) -> None:
        """Close the listening socket and the loop."""
        if self._server is not None:
            self._server.close()
        self.loop.close()


def serve(port: int, store: SpanStore) -> CollectorServer:
    """A collector on 127.0.0.1:``port`` (call ``serve_forever``)."""
    return CollectorServer(port, store)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cluster.local.collector PORT FILE``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -m cluster.local.collector PORT FILE\n")
        return 2
    server = serve(int(args[0]), SpanStore(Path(args[1])))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
