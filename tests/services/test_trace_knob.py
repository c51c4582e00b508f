"""The `drop_trace_headers` knob: a service stops copying the trace headers onto its calls.

Lesson 18's step 4 turns it on for api-gateway to show what an app that does not propagate
trace context does to traces. The middleware that remembers the inbound trace headers for the
downstream client remembers none while the knob is on.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from services.common.knobs import Knobs, KnobState, KnobsUpdate
from services.common.tracing import TracePropagationMiddleware, current_trace_headers


def _seen(knobs: KnobState) -> dict[str, str]:
    seen: dict[str, str] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(current_trace_headers())

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {
        "type": "http",
        "headers": [(b"x-request-id", b"r1"), (b"traceparent", b"00-ab-cd-01"), (b"x-user", b"u")],
    }
    asyncio.run(TracePropagationMiddleware(app, knobs)(scope, receive, send))
    return seen


def test_trace_headers_are_remembered_unless_the_knob_drops_them() -> None:
    knobs = KnobState(Knobs(), seed=1)
    assert _seen(knobs) == {"x-request-id": "r1", "traceparent": "00-ab-cd-01"}
    knobs.update(KnobsUpdate(drop_trace_headers=True))
    assert _seen(knobs) == {}
    knobs.update(KnobsUpdate(drop_trace_headers=False))
    assert _seen(knobs) == {"x-request-id": "r1", "traceparent": "00-ab-cd-01"}
