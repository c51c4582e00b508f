"""The behaviour server: one replica of an app that has no code, executing its declaration.

An app brought as manifests plus ``behavior.yaml`` has no program to run on the ``local``
runner. This server is that program: the local runner writes the service's declaration for the
pod's version as JSON (``BEHAVIOR_FILE``, see ``cluster/local/behavior.py``) and starts one
process per replica behind the pod's Envoy sidecar. For every request it does what the simulator
does for the same declaration:

* finds the declared endpoint (404 otherwise), waits for one of ``concurrency`` slots, spends a
  lognormal service time (seeded by ``SEED``), fails with ``errorRate`` (500);
* makes the declared calls in order (``parallel`` steps concurrently) through ``HTTP_PROXY``
  (the sidecar), each under the app's own ``timeout`` and ``retries``, copying the declared
  request headers (the trace headers unless it does not propagate them) and the headers derived
  from session cookies;
* answers the declared status with a body of the declared size, or, when a call failed,
  the error (``propagate``) or a 200 without the section (``degrade``, marked with the declared
  header).

Probes, lesson knobs (``latency_ms``, ``error_rate``, ``refuse``), ``x-served-by`` and the app
log lines come from :mod:`services.common`, as for the shop's services. Only the standard library
and what the services already use; nothing of meshplay's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.common.app import create_app, knob_state
from services.common.http1 import HttpClient, TransportError
from services.common.knobs import KnobState
from services.common.servedby import note_downstream
from services.common.settings import Settings, SettingsError
from services.common.tracing import PROPAGATED_HEADERS

log = logging.getLogger("services.behavior")

_Z99 = 2.3263478740408408
NO_ANSWER = 0
_PARAM = re.compile(r"\{[^/}]+\}")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One declared call, as the local runner resolved it."""

    method: str
    service: str
    port: int
    path: str
    once: bool
    timeout_s: float | None
    retries: int
    degrade: bool
    error_status: int | None
    degrade_size: int
    forward: tuple[str, ...]

    @classmethod
    def of(cls, data: dict[str, Any]) -> CallSpec:
        return cls(
            method=str(data["method"]),
            service=str(data["service"]),
            port=int(data["port"]),
            path=str(data["path"]),
            once=bool(data.get("once", False)),
            timeout_s=None if data.get("timeout_s") is None else float(data["timeout_s"]),
            retries=int(data.get("retries", 0)),
            degrade=data.get("on_error") == "degrade",
            error_status=None if data.get("error_status") is None else int(data["error_status"]),
            degrade_size=int(data.get("degrade_size", 0)),
            forward=tuple(str(h).lower() for h in data.get("forward", ())),
        )

    @property
    def name(self) -> str:
        return f"{self.method} {self.service} {self.path}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One declared route and what the app does for it."""

    method: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    median_s: float | None
    sigma: float
    error_rate: float
    status: int
    size: int
    steps: tuple[tuple[CallSpec, ...], ...]

    @classmethod
    def of(cls, data: dict[str, Any]) -> Endpoint:
        method, template = str(data["route"]).split()[:2]
        escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        regex = re.compile("^" + _PARAM.sub("([^/]+)", escaped) + "$")
        names = tuple(m.group(0)[1:-1] for m in _PARAM.finditer(template))
        st = data.get("service_time")
        median = float(st["median_s"]) if st else None
        p99 = float(st["p99_s"]) if st else 0.0
        ratio = max(p99, median or 0.0) / max(median or 1e-9, 1e-9)
        steps = tuple(tuple(CallSpec.of(c) for c in step) for step in data.get("steps", ()))
        return cls(
            method=method.upper(),
            regex=regex,
            names=names,
            median_s=median,
            sigma=math.log(ratio) / _Z99 if ratio > 1 else 0.0,
            error_rate=float(data.get("error_rate", 0.0)),
            status=int(data.get("status", 200)),
            size=int(data.get("size") or 0),
            steps=steps,
        )


@dataclass(frozen=True, slots=True)
class Declaration:
    """The service's declaration for this replica's version."""

    service: str
    concurrency: int
    sessions: tuple[tuple[str, str], ...]
    degraded_header: str
    endpoints: tuple[Endpoint, ...]

    @classmethod
    def load(cls, path: Path) -> Declaration:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            service=str(data["service"]),
            concurrency=max(1, int(data.get("concurrency", 16))),
            sessions=tuple((str(s["cookie"]), str(s["header"]).lower()) for s in data["sessions"]),
            degraded_header=str(data.get("degraded_header", "x-app-degraded")),
            endpoints=tuple(Endpoint.of(e) for e in data.get("endpoints", ())),
        )

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for e in self.endpoints:
            if e.method == method:
                found = e.regex.match(path)
                if found:
                    return e, dict(zip(e.names, found.groups(), strict=True))
        return None


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out.setdefault(name, value)
    return out


class Behavior:
    """Executes the declaration for each request (one per process)."""

    def __init__(self, declaration: Declaration, seed: str, knobs: KnobState) -> None:
        self.declaration = declaration
        self.knobs = knobs
        self.rng = random.Random(seed)
        self.slots = asyncio.Semaphore(declaration.concurrency)
        self.client = HttpClient(trust_env=True)
        self.once_done: set[str] = set()

    async def handle(self, request: Request) -> Response:
        found = self.declaration.match(request.method.upper(), request.url.path)
        if found is None:
            return Response(status_code=404)
        ep, params = found
        if ep.median_s is not None:
            work = (
                self.rng.lognormvariate(math.log(max(ep.median_s, 1e-9)), ep.sigma)
                if ep.sigma > 0
                else ep.median_s
            )
            async with self.slots:
                await asyncio.sleep(work)
        if ep.error_rate > 0.0 and self.rng.random() < ep.error_rate:
            return Response(status_code=500)
        incoming = {k.lower(): v for k, v in request.headers.items()}
        failed: list[CallSpec] = []
        for step in ep.steps:
            todo = [c for c in step if self._due(c)]
            codes = await asyncio.gather(*(self._call(c, incoming, params) for c in todo))
            for c, code in zip(todo, codes, strict=True):
                if code != NO_ANSWER and code < 400:
                    continue
                if c.degrade:
                    failed.append(c)
                    continue
                status = c.error_status or (504 if code == NO_ANSWER else code)
                return Response(status_code=status)
        if not failed:
            return Response(b"x" * ep.size, status_code=ep.status)
        size = max(0, ep.size + sum(c.degrade_size for c in failed))
        marker = ",".join(dict.fromkeys(c.service for c in failed))
        headers = {self.declaration.degraded_header: marker}
        return Response(b"x" * size, status_code=ep.status, headers=headers)

    def _due(self, call: CallSpec) -> bool:
        if not call.once:
            return True
        if call.name in self.once_done:
            return False
        self.once_done.add(call.name)
        return True

    def _headers(self, call: CallSpec, incoming: dict[str, str]) -> dict[str, str]:
        sent = {k: incoming[k] for k in call.forward if k in incoming}
        if self.knobs.current.drop_trace_headers:
            for name in PROPAGATED_HEADERS:
                sent.pop(name, None)
        if self.declaration.sessions and "cookie" in incoming:
            cookies = _cookies(incoming["cookie"])
            for cookie, header in self.declaration.sessions:
                if cookie in cookies:
                    sent[header] = cookies[cookie]
        return sent

    async def _call(self, call: CallSpec, incoming: dict[str, str], params: dict[str, str]) -> int:
        path = _PARAM.sub(lambda m: params.get(m.group(0)[1:-1], m.group(0)), call.path)
        url = f"http://{call.service}:{call.port}{path}"
        headers = self._headers(call, incoming)
        code = 503
        for _ in range(1 + call.retries):
            try:
                if call.timeout_s is None:
                    raw = await self.client.request(call.method, url, headers)
                else:
                    async with asyncio.timeout(call.timeout_s):
                        raw = await self.client.request(call.method, url, headers)
                code = raw.status
                note_downstream(dict(raw.headers))
            except TimeoutError:
                code = NO_ANSWER
                log.info("%s: no answer within the app's own %ss", call.name, call.timeout_s)
            except (TransportError, OSError) as exc:
                code = 503
                log.info("%s: %s", call.name, exc)
            if code != NO_ANSWER and code < 500:
                return code
        return code


def build_app(settings: Settings) -> FastAPI:
    """The service's FastAPI app: the shop's probes and knobs, then the declared endpoints."""
    path = os.environ.get("BEHAVIOR_FILE", "")
    if not path:
        raise SettingsError("BEHAVIOR_FILE is not set (the declaration to execute)")
    try:
        declaration = Declaration.load(Path(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(f"cannot read BEHAVIOR_FILE {path}: {exc}") from None
    state: dict[str, Behavior] = {}

    async def startup(_: FastAPI, __: Any) -> None:
        state["behavior"] = Behavior(declaration, f"{settings.seed}/{settings.pod}", knobs)

    async def shutdown(_: FastAPI, __: Any) -> None:
        await state["behavior"].client.aclose()

    app = create_app(
        settings,
        title=declaration.service,
        description="meshplay's behaviour server executing a behavior.yaml declaration",
        startup=startup,
        shutdown=shutdown,
    )
    knobs = knob_state(app)

    @app.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
    async def serve(request: Request) -> Response:
        return await state["behavior"].handle(request)

    return app
