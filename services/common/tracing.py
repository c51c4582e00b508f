"""Trace-context propagation.

Envoy starts or continues a trace at every sidecar, but it cannot link an inbound request to the
outbound calls the application makes for it: the application must copy the trace headers from
the request it is serving onto each downstream call. Istio documents this list; we copy
`x-request-id`, W3C `traceparent`/`tracestate` and the Zipkin `x-b3-*` family.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from services.common.knobs import KnobState

PROPAGATED_HEADERS = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
)

_current: ContextVar[dict[str, str] | None] = ContextVar("trace_headers", default=None)


def current_trace_headers() -> dict[str, str]:
    """The trace headers of the request being served (empty outside a request)."""
    return dict(_current.get() or {})


class TracePropagationMiddleware:
    """ASGI middleware that remembers the inbound trace headers for the downstream client
    (none while the ``drop_trace_headers`` knob is on)."""

    def __init__(self, app: ASGIApp, knobs: KnobState | None = None) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found: dict[str, str] = {}
        dropping = self.knobs is not None and self.knobs.current.drop_trace_headers
        for raw_name, raw_value in () if dropping else scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            if name in PROPAGATED_HEADERS:
                found[name] = raw_value.decode("latin-1")
        token = _current.set(found)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
