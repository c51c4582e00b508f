"""Calls to other services.

One `httpx.AsyncClient` per process with `trust_env=True`, so `HTTP_PROXY`/`NO_PROXY` put a
sidecar in the path: the URL keeps the in-mesh name (`http://product:8080/...`), the proxy gets
the request in absolute form and routes by its Host header, like Envoy's outbound listener after
iptables capture. Every call carries the inbound trace headers and has a timeout. Transport
failures become 503 (`upstream_unavailable`), timeouts 504; upstream answers pass through.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.responses import JSONResponse

from services.common.errors import ServiceError, error_body
from services.common.tracing import current_trace_headers


class Downstream:
    """The service's HTTP client for the services it calls, by Kubernetes Service name."""

    def __init__(
        self,
        urls: dict[str, str],
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._urls = urls
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            trust_env=transport is None,
            transport=transport,
            follow_redirects=False,
        )

    def url(self, service: str, path: str) -> str:
        return self._urls[service].rstrip("/") + path

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request to `service`; raise :class:`ServiceError` if it cannot be had."""
        sent = current_trace_headers()
        if headers:
            sent.update(headers)
        for name, value in sent.items():
            if not value.isascii():
                raise ServiceError(400, "bad_request", f"header {name} is not ASCII")
        try:
            return await self._client.request(
                method, self.url(service, path), json=json, params=params, headers=sent
            )
        except httpx.TimeoutException:
            raise ServiceError(
                504, "upstream_timeout", f"{service} did not answer in time"
            ) from None
        except httpx.TransportError as exc:
            raise ServiceError(
                503, "upstream_unavailable", f"{service} is unreachable: {type(exc).__name__}"
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def json_or_error(response: httpx.Response, service: str) -> Any:
    """The JSON body of an upstream answer, or a 502 when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            502, "bad_gateway", f"{service} answered {response.status_code} without JSON"
        ) from None


def raise_for_upstream(response: httpx.Response, service: str) -> None:
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


def relay(response: httpx.Response, service: str) -> JSONResponse:
    """An upstream answer as ours: same status and JSON body; a JSON error when the body is not
    JSON (for example Envoy's plain-text `no healthy upstream`)."""
    try:
        body = response.json()
    except ValueError:
        status = response.status_code if response.status_code >= 400 else 502
        message = f"{service} answered {response.status_code} without JSON"
        return JSONResponse(error_body("upstream_error", message), status_code=status)
    return JSONResponse(body, status_code=response.status_code)
