"""A small keep-alive HTTP/1.1 client on asyncio streams, for the load generator.

A general client (httpx) spends more CPU per request than the Envoys it measures, and this
machine has two cores shared by every process of the mesh. This one writes a request, reads the
status line, headers and a ``Content-Length`` or chunked body, and keeps the connection for the
next request. Talking to a sidecar as an HTTP proxy means sending the request in absolute form
(``GET http://product:8080/products HTTP/1.1``), as an app with ``HTTP_PROXY`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["HttpConnection", "HttpError", "Response"]


class HttpError(OSError):
    """The connection failed or the answer was not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    """Status, headers (lower-case names) and body of one answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpConnection:
    """One keep-alive connection to ``host:port``; reconnects when the server closed it."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float = 30.0,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.tls = tls
        """TLS to the server (SNI ``server_hostname``); None: plaintext."""
        self.server_hostname = server_hostname
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            try:
                if self.tls is None:
                    opened = await asyncio.open_connection(self.host, self.port)
                else:
                    opened = await asyncio.open_connection(
                        self.host,
                        self.port,
                        ssl=self.tls,
                        server_hostname=self.server_hostname or self.host,
                    )
                self._reader, self._writer = opened
            except OSError as exc:
                raise HttpError(f"connect {self.host}:{self.port}: {exc}") from exc
        return self._reader, self._writer

    async def close(self) -> None:
        """Close the connection."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def request(
        self,
        method: str,
        target: str,
        *,
        authority: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request (``target`` is a path, or an absolute URL through a proxy)."""
        try:
            return await asyncio.wait_for(
                self._exchange(method, target, authority, headers or {}, body), self.timeout_s
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            if isinstance(exc, HttpError):
                raise
            raise HttpError(f"{method} {target}: {type(exc).__name__}: {exc}") from exc

    async def _exchange(
        self, method: str, target: str, authority: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        reader, writer = await self._connect()
        lines = [f"{method} {target} HTTP/1.1", f"host: {authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"content-length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise HttpError("connection closed before the status line")
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        status = int(parts[1])
        got: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        data = b""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif "content-length" in got:
            data = await reader.readexactly(int(got["content-length"]))
        elif got.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            data = b"".join(chunks)
        else:
            data = await reader.read()
            got["connection"] = "close"
        if got.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, got, data)
