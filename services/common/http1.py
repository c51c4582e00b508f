"""A lean keep-alive HTTP/1.1 client for service-to-service calls.

In a pod, every outbound call of the app goes through its Envoy sidecar; here the app sends it to
the sidecar as to an HTTP proxy (``HTTP_PROXY``), in absolute form
(``GET http://product:8080/products HTTP/1.1`` with ``Host: product:8080``), and the sidecar's
outbound listener picks the route by that Host header, as after iptables capture.

A general-purpose client (httpx over httpcore and anyio) spent about half of a forwarding
service's CPU per request on this 2-core machine; this one is an :class:`asyncio.Protocol` with
the C parser ``httptools`` (what uvicorn parses requests with): one ``write`` per request, one
parser feed per read, idle connections kept per proxy or origin. It speaks only what the
services need: plain ``http://`` URLs, a request body given as bytes, ``Content-Length`` or
chunked answers, keep-alive unless either side says ``Connection: close``.

Proxy selection follows the environment like ``trust_env`` clients: ``HTTP_PROXY``/``http_proxy``
and ``NO_PROXY`` (:func:`urllib.request.getproxies_environment`, ``proxy_bypass_environment``).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectError", "HttpClient", "Origin", "RawResponse", "TransportError"]

MAX_IDLE_PER_ORIGIN = 64
"""Idle keep-alive connections kept per proxy or origin; more are closed when given back."""
USER_AGENT = b"meshplay-services/0.1"


class TransportError(OSError):
    """No HTTP answer: the connection failed, was closed early, or the answer was not HTTP."""


class ConnectError(TransportError):
    """The TCP connection could not be made (refused, unreachable)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the TCP connection goes (the proxy, or the origin itself) and in which form the
    request-target is written (absolute through a proxy, origin-form otherwise)."""

    host: str
    port: int
    via_proxy: bool


@dataclass(frozen=True, slots=True)
class RawResponse:
    """Status, headers (names lower-case, in order) and body of one answer."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection with an ``httptools`` response parser; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._got_bytes = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"not an HTTP/1.1 answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(TransportError(f"connection closed before the answer ended ({exc or 'EOF'})"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        response = RawResponse(self._parser.get_status_code(), self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def answered_nothing(self) -> bool:
        """True while no byte of the current answer has arrived."""
        return not self._got_bytes

    def send(self, payload: bytes) -> asyncio.Future[RawResponse]:
        """Write one request; the future resolves with its answer."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._got_bytes = False
        self.transport.write(payload)
        return self._waiter


def _bypass(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``: ``*``, the host itself, or a domain it is in
    (``example.com`` and ``.example.com`` both cover ``api.example.com``)."""
    host = host.lower().strip("[]")
    for raw in no_proxy.replace(" ", "").lower().split(","):
        entry = raw.split(":", 1)[0] if raw.count(":") == 1 else raw
        name = entry.lstrip(".")
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


def _proxies() -> tuple[Origin | None, Mapping[str, str]]:
    env = urllib.request.getproxies_environment()
    proxy = env.get("http")
    if not proxy:
        return None, env
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return Origin(parts.hostname or "127.0.0.1", parts.port or 80, True), env


class HttpClient:
    """Keep-alive HTTP/1.1 requests to ``http://`` URLs, through ``HTTP_PROXY`` when the
    environment says so (``trust_env``), else directly."""

    def __init__(self, *, trust_env: bool = True) -> None:
        self._proxy, self._env = _proxies() if trust_env else (None, {})
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._routes: dict[tuple[str, int], Origin] = {}

    def origin(self, host: str, port: int) -> Origin:
        """The proxy for ``host`` or the host itself (``NO_PROXY`` honoured), memoised."""
        key = (host, port)
        found = self._routes.get(key)
        if found is None:
            bypass = self._proxy is None or _bypass(host, self._env.get("no", ""))
            found = Origin(host, port, False) if bypass else self._proxy
            assert found is not None
            self._routes[key] = found
        return found

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> RawResponse:
        """Send one request and read its answer. Raises :class:`TransportError` (or
        :class:`ConnectError`) when no answer came; cancel it (``asyncio.timeout``) to time out."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported: {url!r}")
        port = parts.port or 80
        origin = self.origin(parts.hostname, port)
        authority = parts.netloc
        target = (
            url
            if origin.via_proxy
            else (parts.path or "/") + ("?" + parts.query if parts.query else "")
        )
        head = [f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("latin-1")]
        for name, value in headers.items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"user-agent: " + USER_AGENT + b"\r\naccept: */*\r\n\r\n")
        payload = b"".join(head) + body
        while True:
            conn, reused = await self._take(origin)
            try:
                response = await conn.send(payload)
            except TransportError:
                conn.close()
                self._open.discard(conn)
                # a kept-alive connection the peer closed while idle: try once on a new one
                if reused and conn.answered_nothing:
                    continue
                raise
            except BaseException:  # cancelled (timeout): the connection is in an unknown state
                conn.close()
                self._open.discard(conn)
                raise
            self._give_back(origin, conn)
            return response

    async def _take(self, origin: Origin) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
            self._open.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            transport, conn = await loop.create_connection(_Connection, origin.host, origin.port)
        except OSError as exc:
            raise ConnectError(f"connect {origin.host}:{origin.port}: {exc}") from exc
        conn.transport = transport  # uvloop calls connection_made after this returns
        self._open.add(conn)
        return conn, False

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        if conn.closed:
            self._open.discard(conn)
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            self._open.discard(conn)
        else:
            idle.append(conn)

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
