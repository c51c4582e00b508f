"""The app factory every service uses.

It adds what a mesh lesson relies on, identically in every service:

- `GET /healthz` (liveness: the process runs) and `GET /readyz` (readiness: storage reachable, not
  refusing), which the Kubernetes probes call;
- `GET /admin/knobs` and `PUT /admin/knobs` to read and change the lesson knobs live;
- injected latency and errors on application routes (see :mod:`services.common.knobs`);
- trace headers remembered for downstream calls (see :mod:`services.common.tracing`);
- ``x-served-by`` on every response: this pod, then the pods downstream
  (see :mod:`services.common.servedby`);
- JSON errors without stack traces (see :mod:`services.common.errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.downstream import Downstream
from services.common.errors import ServiceError, error_body, install_error_handlers
from services.common.knobs import Knobs, KnobState, KnobsUpdate
from services.common.servedby import ServedByMiddleware, entry
from services.common.settings import Settings
from services.common.tracing import TracePropagationMiddleware

log = logging.getLogger("services")

#: Paths that knobs never delay, fail or refuse: probes and the admin API itself.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/admin/")


@dataclass
class Runtime:
    """What a service's handlers share: settings, knobs, the downstream client."""

    settings: Settings
    knobs: KnobState
    downstream: Downstream
    checks: list[Callable[[], Awaitable[bool]]] = field(default_factory=list)
    started: bool = False


def runtime(request: Request) -> Runtime:
    """The :class:`Runtime` of the app serving `request`."""
    rt: Runtime = request.app.state.runtime
    return rt


class KnobsMiddleware:
    """Apply the lesson knobs to application requests: delay, then maybe fail, like Envoy's
    fault filter (delay before abort)."""

    def __init__(self, app: ASGIApp, knobs: KnobState) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        knobs = self.knobs.current
        if knobs.refuse:
            await _send_json(send, 503, error_body("refusing", "the service is refusing"), True)
            return
        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000.0)
        if self.knobs.draw_error():
            await _send_json(send, 500, error_body("injected_fault", "injected error"), False)
            return
        await self.app(scope, receive, send)


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if close:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload})


Hook = Callable[[FastAPI, Runtime], Awaitable[None]]


def knob_state(app: FastAPI) -> KnobState:
    """The live knobs of an app built by :func:`create_app`."""
    state: KnobState = app.state.knobs
    return state


def create_app(
    settings: Settings,
    *,
    title: str,
    description: str,
    startup: Hook | None = None,
    shutdown: Hook | None = None,
    knobs: Knobs | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """A FastAPI app for one service with probes, knobs, trace propagation and JSON errors.

    `transport` replaces the network for downstream calls (tests wire services in-process).
    """
    initial = knobs or Knobs()
    initial = initial.model_copy(
        update={
            "latency_ms": settings.latency_ms,
            "error_rate": settings.error_rate,
            "refuse": settings.refuse,
        }
    )
    state = KnobState(initial, settings.seed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(
            settings=settings,
            knobs=state,
            downstream=Downstream(
                dict(settings.downstream), settings.downstream_timeout_s, transport
            ),
        )
        app.state.runtime = rt
        if startup is not None:
            await startup(app, rt)
        rt.started = True
        log.info("%s %s started", settings.service, settings.version)
        try:
            yield
        finally:
            rt.started = False
            if shutdown is not None:
                await shutdown(app, rt)
            await rt.downstream.aclose()

    app = FastAPI(
        title=title,
        description=description,
        version=settings.version,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.knobs = state
    install_error_handlers(app)
    _add_operational_routes(app, state, settings.admin_port)
    app.add_middleware(KnobsMiddleware, knobs=state)
    app.add_middleware(TracePropagationMiddleware, knobs=state)
    app.add_middleware(
        ServedByMiddleware, me=entry(settings.service, settings.version, settings.pod)
    )
    return app


def _admin_only(request: Request, admin_port: int | None) -> None:
    """The knobs answer on ``ADMIN_PORT`` only, when there is one: the main port is what the
    sidecar exposes to the mesh (and the ingress gateway to the outside), and a lesson knob is
    no business of a caller's. 404, as for a path the service does not have."""
    server = request.scope.get("server")
    if admin_port is not None and (server is None or server[1] != admin_port):
        raise ServiceError(404, "not_found", "Not Found")


def _add_operational_routes(app: FastAPI, state: KnobState, admin_port: int | None) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is running")
    async def healthz(request: Request) -> dict[str, str]:
        rt = runtime(request)
        return {"status": "ok", "service": rt.settings.service, "version": rt.settings.version}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: started, storage reachable, not refusing",
        responses={503: {"description": "not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        rt = runtime(request)
        reasons = []
        if not rt.started:
            reasons.append("starting")
        if state.current.refuse:
            reasons.append("refusing")
        if not all([await check() for check in rt.checks]):
            reasons.append("storage unreachable")
        if reasons:
            return JSONResponse(error_body("not_ready", ", ".join(reasons)), status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/admin/knobs", tags=["operations"], summary="The lesson knobs now")
    async def get_knobs(request: Request) -> Knobs:
        _admin_only(request, admin_port)
        return state.current

    @app.put("/admin/knobs", tags=["operations"], summary="Change lesson knobs (partial)")
    async def put_knobs(request: Request, change: KnobsUpdate) -> Knobs:
        _admin_only(request, admin_port)
        knobs = state.update(change)
        log.info("knobs changed: %s", knobs.model_dump_json())
        return knobs
