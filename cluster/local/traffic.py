"""The load generator: open loop (Poisson arrivals) or closed loop, always bounded.

Open loop (``rate_rps``) sends requests at exponentially distributed intervals whatever the mesh
does, like ``fortio load -qps`` with ``-jitter``; closed loop (``concurrency``) keeps N clients
each sending the next request when the previous one answered, like ``fortio load -c N``. Both stop
after ``count`` requests or ``duration_s`` seconds, whichever comes first, and when ``cancel`` is
set; in-flight requests are bounded too. Randomness (arrival times, request mix, request ids)
comes from the seeded ``random.Random`` passed in.
"""

from __future__ import annotations

import asyncio
import math
import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.local.http1 import HttpConnection, HttpError
from mesh.lesson import RequestSpec, TrafficSpec

__all__ = ["Outcome", "Target", "TrafficReport", "drive"]

MAX_IN_FLIGHT = 256
"""Open loop never holds more than this many requests at once (extra arrivals are dropped and
counted, so an overloaded mesh cannot make the generator grow without bound)."""
DEFAULT_DURATION_S = 10.0
MAX_COUNT_DURATION_S = 600.0
"""Time bound of a closed-loop run given only a ``count`` (each round may take ``timeout_s``)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: a socket, the Host header, and whether to use absolute-form URIs
    (when the socket is a sidecar acting as the client's HTTP proxy)."""

    host: str
    port: int
    authority: str
    via_proxy: bool = False
    tls: ssl.SSLContext | None = None
    """Speak TLS to the socket (``scheme: https`` to the gateway), SNI ``sni``."""
    sni: str = ""

    def request_target(self, path: str, authority: str = "") -> str:
        """The request-target for ``path`` (``authority`` replaces the target's own)."""
        return f"http://{authority or self.authority}{path}" if self.via_proxy else path


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request as the load generator saw it (0 = no HTTP answer)."""

    start: float
    duration_ms: float
    status: int
    request_id: str
    error: str = ""


@dataclass
class TrafficReport:
    """All outcomes, the wall time and requests the open loop had to drop."""

    outcomes: list[Outcome] = field(default_factory=list)
    started_at: float = 0.0
    wall_s: float = 0.0
    dropped: int = 0

    @property
    def sent(self) -> int:
        """Requests sent."""
        return len(self.outcomes)


def _limits(spec: TrafficSpec) -> tuple[int, float]:
    count = spec.count if spec.count is not None else 10**9
    duration = spec.duration_s if spec.duration_s is not None else DEFAULT_DURATION_S
    if spec.count is not None and spec.duration_s is None:
        # "count requests" means all of them, as on sim; the time bound only stops a stuck run
        if spec.rate_rps:
            duration = spec.count / spec.rate_rps + spec.timeout_s
        else:
            rounds = -(-spec.count // max(spec.concurrency or 1, 1))
            duration = min(MAX_COUNT_DURATION_S, rounds * spec.timeout_s)
    return count, duration


class _Mix:
    """Seeded choice of the next request."""

    def __init__(self, spec: TrafficSpec, rng: random.Random) -> None:
        self.requests = spec.requests or (RequestSpec(),)
        self.weights = [max(r.weight, 0.0) for r in self.requests]
        self.rng = rng

    def next(self) -> tuple[RequestSpec, str]:
        req = self.rng.choices(self.requests, weights=self.weights)[0]
        rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return req, rid


async def _one(
    conn: HttpConnection, target: Target, req: RequestSpec, rid: str, t0: float
) -> Outcome:
    headers = {"x-request-id": rid, **req.headers_for(rid)}
    # a request's own Host header replaces the target's (one Host, as the sim reads it)
    authority = next((headers.pop(k) for k in list(headers) if k.lower() == "host"), "")
    if req.body:
        headers.setdefault("content-type", "application/json")
    start = time.monotonic()
    try:
        resp = await conn.request(
            req.method.upper(),
            target.request_target(req.path, authority),
            authority=authority or target.authority,
            headers=headers,
            body=req.body.encode(),
        )
        status, error = resp.status, ""
    except HttpError as exc:
        status, error = 0, str(exc)
    end = time.monotonic()
    return Outcome(start - t0, (end - start) * 1000.0, status, rid, error)


class _Targets:
    """Round robin over the targets, one choice per request (as many independent clients
    behind a Service would spread); idle keep-alive connections are kept per target."""

    def __init__(self, targets: Sequence[Target], timeout_s: float) -> None:
        if not targets:
            raise ValueError("no traffic target")
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self.next = 0
        self.idle: dict[int, list[HttpConnection]] = {i: [] for i in range(len(self.targets))}

    def take(self) -> tuple[int, HttpConnection, Target]:
        """The next target and an idle connection to it (or a new one)."""
        index = self.next % len(self.targets)
        self.next += 1
        target = self.targets[index]
        pool = self.idle[index]
        conn = pool.pop() if pool else self._connection(target)
        return index, conn, target

    def _connection(self, target: Target) -> HttpConnection:
        return HttpConnection(
            target.host, target.port, self.timeout_s, tls=target.tls, server_hostname=target.sni
        )

    def give_back(self, index: int, conn: HttpConnection) -> None:
        """Return a connection for reuse."""
        self.idle[index].append(conn)

    async def close(self) -> None:
        """Close every idle connection."""
        for pool in self.idle.values():
            for conn in pool:
                await conn.close()
            pool.clear()


async def _send(targets: _Targets, req: RequestSpec, rid: str, t0: float) -> Outcome:
    index, conn, target = targets.take()
    try:
        return await _one(conn, target, req, rid, t0)
    finally:
        targets.give_back(index, conn)


async def _closed(
    spec: TrafficSpec, targets: _Targets, mix: _Mix, report: TrafficReport, stop: Callable[[], bool]
) -> None:
    count, _ = _limits(spec)
    t0 = time.monotonic()
    issued = 0

    async def client() -> None:
        nonlocal issued
        while not stop() and issued < count:
            issued += 1
            req, rid = mix.next()
            report.outcomes.append(await _send(targets, req, rid, t0))

    try:
        await asyncio.gather(*(client() for _ in range(max(1, spec.concurrency or 1))))
    finally:
        await targets.close()


async def _open(
    spec: TrafficSpec, targets: _Targets, mix: _Mix, report: TrafficReport, stop: Callable[[], bool]
) -> None:
    count, _ = _limits(spec)
    rate = spec.rate_rps or 1.0
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()
    next_at = 0.0
    issued = 0

    async def fire(req: RequestSpec, rid: str) -> None:
        report.outcomes.append(await _send(targets, req, rid, t0))

    while issued < count and not stop():
        delay = next_at - (time.monotonic() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
            if stop():
                break
        req, rid = mix.next()
        next_at += mix.rng.expovariate(rate)
        issued += 1
        if len(tasks) >= MAX_IN_FLIGHT:
            report.dropped += 1
            continue
        task = asyncio.create_task(fire(req, rid))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=spec.timeout_s)
    for task in tasks:
        task.cancel()
    await targets.close()


def drive(
    spec: TrafficSpec,
    target: Target | Sequence[Target],
    rng: random.Random,
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[float, int], None] | None = None,
) -> TrafficReport:
    """Send the traffic ``spec`` describes to ``target`` (round robin over several targets);
    blocks until done (bounded)."""
    pool = _Targets([target] if isinstance(target, Target) else target, spec.timeout_s)
    count, duration = _limits(spec)
    report = TrafficReport(started_at=time.time())
    began = time.monotonic()
    stop_event = cancel or threading.Event()

    def stop() -> bool:
        return stop_event.is_set() or time.monotonic() - began >= duration

    async def main() -> None:
        mix = _Mix(spec, rng)
        runner = _closed if spec.concurrency and not spec.rate_rps else _open

        async def progress() -> None:
            while on_progress is not None:
                elapsed = time.monotonic() - began
                done = max(elapsed / duration, report.sent / count if count < 10**9 else 0.0)
                on_progress(min(1.0, done), report.sent)
                await asyncio.sleep(0.25)

        ticker = asyncio.create_task(progress())
        try:
            await runner(spec, pool, mix, report, stop)
        finally:
            ticker.cancel()

    _run_loop(main)
    report.wall_s = time.monotonic() - began
    if on_progress is not None:
        on_progress(1.0, report.sent)
    report.outcomes.sort(key=lambda o: o.start)
    return report


def _run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())``, in a thread of its own when the calling thread already runs an
    event loop (a TUI worker, a Playwright sync session in the same test process)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="meshplay-traffic")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def expected_requests(spec: TrafficSpec) -> float:
    """How many requests a spec will send (for progress bars); ``inf`` when unbounded."""
    count, duration = _limits(spec)
    if spec.rate_rps:
        return min(float(count), spec.rate_rps * duration)
    return float(count) if count < 10**9 else math.inf
