"""Which pods answered a request: the ``x-served-by`` response header.

In a mesh one click in the storefront crosses several pods (frontend, api-gateway, product v1 or
v2, ...), and which ones depends on the routing rules in force. Envoy does not tell the caller
which upstream pod served a request, so every service says it itself: each response carries
``x-served-by`` with one entry per pod that took part, ``service/version/pod``, the answering
pod first, then the entries of every downstream response it received while serving the
request, in the order they arrived::

    x-served-by: frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0, product/v2/product-v2-0

The storefront's mesh panel shows this chain, so a canary or a fault shows up on the page. A
hop that did not answer (refused, timed out, or aborted by an Envoy fault) adds no entry: its
caller's error status says what happened.

The header is set by the service code, so it is the same on every runner that runs the real
services (local processes, Kubernetes). The pod name comes from ``POD_NAME`` (the manifests set
it from the Downward API ``metadata.name``), else the host name (a pod's host name is its name).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-served-by"
#: At most this many entries travel in one header (a fan-out of fan-outs stays bounded).
MAX_ENTRIES = 24

_collected: ContextVar[list[str] | None] = ContextVar("served_by", default=None)


def entry(service: str, version: str, pod: str) -> str:
    """One pod's entry: ``service/version/pod`` (none of the three contains ``/`` or ``,``)."""
    return "/".join(
        part.replace("/", "-").replace(",", "-").strip() for part in (service, version, pod)
    )


def parse(value: str) -> list[str]:
    """The entries of a header value, in order (empty parts dropped)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def downstream_entries() -> list[str]:
    """The downstream pods noted so far while serving the current request (a copy)."""
    return list(_collected.get() or [])


def note_downstream(headers: Mapping[str, str]) -> None:
    """Remember the pods a downstream response names (called by the downstream client; headers
    with lower-case names). Outside a request this does nothing."""
    collected = _collected.get()
    value = headers.get(HEADER)
    if collected is not None and value:
        collected.extend(parse(value))


class ServedByMiddleware:
    """ASGI middleware that adds ``x-served-by`` (this pod, then the downstream pods) to every
    HTTP response. The list lives in a context variable that concurrent downstream calls
    (``asyncio.gather``) share, since tasks copy the context, not the list."""

    def __init__(self, app: ASGIApp, me: str) -> None:
        self.app = app
        self.me = me

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        collected: list[str] = []
        token = _collected.set(collected)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[HEADER] = ", ".join([self.me, *collected][:MAX_ENTRIES])
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            _collected.reset(token)
