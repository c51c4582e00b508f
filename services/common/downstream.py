"""Calls to other services.

One client per process that follows the environment (``trust_env``), so `HTTP_PROXY`/`NO_PROXY`
put a sidecar in the path: the URL keeps the in-mesh name (`http://product:8080/...`), the proxy
gets the request in absolute form and routes by its Host header, like Envoy's outbound listener
after iptables capture. Every call carries the inbound trace headers and has a timeout (the
whole exchange, connect to last byte). Transport failures become 503 (`upstream_unavailable`),
timeouts 504; upstream answers pass through.

The client is :class:`services.common.http1.HttpClient` (keep-alive HTTP/1.1 on the C parser
uvicorn uses); when a test wires services in-process it passes an httpx transport instead, and
the calls go through httpx over that transport.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi.responses import JSONResponse, Response

from services.common.errors import ServiceError, error_body
from services.common.http1 import HttpClient, TransportError
from services.common.servedby import note_downstream
from services.common.tracing import current_trace_headers

JSON_TYPE = "application/json"


class UpstreamResponse:
    """An upstream answer: status, headers (lower-case names) and body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _encode(json: Any) -> bytes:
    # the encoding httpx uses for ``json=``: compact, UTF-8, no NaN
    return jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class Downstream:
    """The service's HTTP client for the services it calls, by Kubernetes Service name."""

    def __init__(
        self,
        urls: dict[str, str],
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._timeout_s = timeout_s
        self._client = HttpClient(trust_env=True) if transport is None else None
        self._httpx = (
            None
            if transport is None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s),
                trust_env=False,
                transport=transport,
                follow_redirects=False,
            )
        )

    def url(self, service: str, path: str) -> str:
        return self._urls[service] + path

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send one request to `service`; raise :class:`ServiceError` if it cannot be had."""
        sent = current_trace_headers()
        if headers:
            sent.update(headers)
        for name, value in sent.items():
            if not value.isascii():
                raise ServiceError(400, "bad_request", f"header {name} is not ASCII")
        url = self.url(service, path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        body = b""
        if json is not None:
            body = _encode(json)
            sent.setdefault("content-type", JSON_TYPE)
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._send(method, url, sent, body)
        except TimeoutError:
            raise ServiceError(
                504, "upstream_timeout", f"{service} did not answer in time"
            ) from None
        except (TransportError, httpx.TransportError) as exc:
            raise ServiceError(
                503, "upstream_unavailable", f"{service} is unreachable: {type(exc).__name__}"
            ) from None
        note_downstream(response.headers)
        return response

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        if self._client is not None:
            raw = await self._client.request(method, url, headers, body)
            return UpstreamResponse(raw.status, dict(raw.headers), raw.body)
        assert self._httpx is not None
        got = await self._httpx.request(method, url, content=body or None, headers=headers)
        return UpstreamResponse(got.status_code, dict(got.headers), got.content)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._httpx is not None:
            await self._httpx.aclose()


def json_or_error(response: UpstreamResponse, service: str) -> Any:
    """The JSON body of an upstream answer, or a 502 when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            502, "bad_gateway", f"{service} answered {response.status_code} without JSON"
        ) from None


def raise_for_upstream(response: UpstreamResponse, service: str) -> None:
    """Pass an upstream error through with its status and body code."""
    if response.status_code < 400:
        return
    code, message = "upstream_error", f"{service} answered {response.status_code}"
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
    except ValueError:
        pass
    raise ServiceError(response.status_code, code, message)


def relay(response: UpstreamResponse, service: str) -> Response:
    """An upstream answer as ours: same status and JSON body (the upstream's bytes, checked to be
    JSON, not re-encoded); a JSON error when the body is not JSON (for example Envoy's plain-text
    `no healthy upstream`)."""
    try:
        response.json()
    except ValueError:
        status = response.status_code if response.status_code >= 400 else 502
        message = f"{service} answered {response.status_code} without JSON"
        return JSONResponse(error_body("upstream_error", message), status_code=status)
    return Response(response.content, status_code=response.status_code, media_type=JSON_TYPE)
