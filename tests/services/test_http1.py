"""The services' lean HTTP/1.1 client: proxy form, NO_PROXY, keep-alive, framing, failures.

Every scenario runs on both event loops a service may run on: asyncio's and uvloop's (uvicorn
picks uvloop when it is installed, and it calls ``connection_made`` at a different moment).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
import uvloop

from services.common.downstream import Downstream
from services.common.errors import ServiceError
from services.common.http1 import ConnectError, HttpClient, TransportError, _bypass
from services.common.tracing import _current

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
Answer = Callable[[int], bytes]


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


@dataclass
class FakeServer:
    """Records each request head and answers with ``answer(n)`` (n = request number)."""

    answer: Answer
    close_after_answer: bool = False
    delay_s: float = 0.0
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.heads.append(head + body)
                await asyncio.sleep(self.delay_s)
                writer.write(self.answer(len(self.heads)))
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable[None]], None]]:
    with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
        yield lambda coro: runner.run(asyncio.wait_for(coro, 10))


def test_through_a_proxy_requests_are_absolute_form_with_the_in_mesh_host(
    run: Callable[[Awaitable[None]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with FakeServer(lambda n: ok()) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
            client = HttpClient()
            got = await client.request(
                "GET", "http://product:8080/products?a=1", {"x-b3-sampled": "1"}
            )
            await client.aclose()
        assert (got.status, got.body) == (200, b'{"ok":true}')
        lines = proxy.heads[0].decode().split("\r\n")
        assert lines[0] == "GET http://product:8080/products?a=1 HTTP/1.1"
        assert "host: product:8080" in lines and "x-b3-sampled: 1" in lines

    run(scenario())


def test_no_proxy_hosts_are_called_directly_in_origin_form(
    run: Callable[[Awaitable[None]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with FakeServer(lambda n: ok()) as origin:
            monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: must not be used
            monkeypatch.setenv("NO_PROXY", "localhost, 127.0.0.1")
            client = HttpClient()
            got = await client.request("POST", f"http://127.0.0.1:{origin.port}/x", {}, b"{}")
            await client.aclose()
        assert got.status == 200
        head = origin.heads[0].decode()
        assert head.startswith("POST /x HTTP/1.1\r\n")
        assert "content-length: 2\r\n" in head and head.endswith("\r\n\r\n{}")

    run(scenario())


def test_no_proxy_matching() -> None:
    assert _bypass("127.0.0.1", "127.0.0.1,localhost")
    assert _bypass("api.example.com", ".example.com") and _bypass("example.com", "example.com")
    assert _bypass("anything", "*")
    assert not _bypass("product", "127.0.0.1,localhost")
    assert not _bypass("notexample.com", "example.com")


def test_keep_alive_reuses_one_connection_and_decodes_chunked_bodies(
    run: Callable[[Awaitable[None]], None],
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )

    async def scenario() -> None:
        async with FakeServer(lambda n: chunked if n == 2 else ok()) as server:
            client = HttpClient(trust_env=False)
            url = f"http://127.0.0.1:{server.port}/"
            bodies = [(await client.request("GET", url, {})).body for _ in range(3)]
            await client.aclose()
        assert bodies == [b'{"ok":true}', b"abcde", b'{"ok":true}']
        assert server.connections == 1

    run(scenario())


def test_a_connection_the_server_closed_while_idle_is_replaced(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def scenario() -> None:
        async with FakeServer(lambda n: ok(), close_after_answer=True) as server:
            client = HttpClient(trust_env=False)
            url = f"http://127.0.0.1:{server.port}/"
            first = await client.request("GET", url, {})
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
            second = await client.request("GET", url, {})
            await client.aclose()
        assert (first.status, second.status) == (200, 200)
        assert server.connections == 2

    run(scenario())


def test_connection_close_answers_are_not_reused(run: Callable[[Awaitable[None]], None]) -> None:
    async def scenario() -> None:
        async with FakeServer(lambda n: ok(extra=b"connection: close\r\n")) as server:
            client = HttpClient(trust_env=False)
            url = f"http://127.0.0.1:{server.port}/"
            for _ in range(2):
                assert (await client.request("GET", url, {})).status == 200
            await client.aclose()
        assert server.connections == 2

    run(scenario())


def test_refused_and_garbled_answers_are_transport_errors(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def scenario() -> None:
        client = HttpClient(trust_env=False)
        async with FakeServer(lambda n: b"SSH-2.0-nope\r\n\r\n") as server:
            port = server.port
            with pytest.raises(TransportError):
                await client.request("GET", f"http://127.0.0.1:{port}/", {})
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectError):
            await client.request("GET", f"http://127.0.0.1:{port}/", {})
        await client.aclose()

    run(scenario())


def test_downstream_maps_failures_to_503_and_504_and_propagates_trace_headers(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def scenario() -> None:
        async with (
            FakeServer(lambda n: ok(), delay_s=0.0) as fast,
            FakeServer(lambda n: ok(), delay_s=1.0) as slow,
        ):
            urls = {
                "product": f"http://127.0.0.1:{fast.port}",
                "order": f"http://127.0.0.1:{slow.port}",
            }
            downstream = Downstream(dict(urls, user="http://127.0.0.1:9"), 0.3)
            token = _current.set({"x-request-id": "rid-1", "traceparent": "00-ab-cd-01"})
            try:
                got = await downstream.call(
                    "POST", "product", "/p", json={"q": "é"}, params={"k": "v w"}
                )
                with pytest.raises(ServiceError) as timeout:
                    await downstream.call("GET", "order", "/o")
                with pytest.raises(ServiceError) as refused:
                    await downstream.call("GET", "user", "/u")
            finally:
                _current.reset(token)
                await downstream.aclose()
        assert got.status_code == 200 and got.json() == {"ok": True}
        head = fast.heads[0].decode()
        assert head.startswith("POST /p?k=v+w HTTP/1.1\r\n")
        assert "x-request-id: rid-1\r\n" in head and "traceparent: 00-ab-cd-01\r\n" in head
        assert "content-type: application/json\r\n" in head
        assert head.endswith('\r\n\r\n{"q":"é"}')
        assert (timeout.value.status, timeout.value.code) == (504, "upstream_timeout")
        assert (refused.value.status, refused.value.code) == (503, "upstream_unavailable")

    run(scenario())
