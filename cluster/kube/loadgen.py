"""The load generator pod's program: ``python -m cluster.kube.loadgen`` in the app's own image.

The ``kube`` runner starts one pod per step from the services image (which carries ``mesh`` and
``cluster`` for this) with the step's traffic in ``MESHPLAY_TRAFFIC`` (JSON: the TrafficSpec, the
targets, the seed). This program drives it with the project's generator
(:func:`cluster.local.traffic.drive`: open or closed loop, ``${request_id}``), after replacing
``${jwt:EMAIL}`` with tokens the app's user service issues (:class:`cluster.local.identity.Identity`
over the in-cluster URL), and writes one JSON line per event on stdout, which the runner follows:
``started`` (with the epoch time the traffic began), ``progress``, then ``done`` or ``error``.
``protocol: tcp`` traffic opens one TCP connection per "request" instead.

``python -m cluster.kube.loadgen knobs PORT JSON`` sets a service's lesson knobs on 127.0.0.1
(run by ``kubectl exec`` in the service's container). Nothing here imports a Kubernetes client:
this module runs inside the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, cast

from cluster.local.identity import Identity
from cluster.local.traffic import Target, drive
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model import FrozenMap

if TYPE_CHECKING:
    from cluster.local.mesh import LocalMesh

__all__ = ["GeneratorJob", "main", "traffic_from_json", "traffic_to_json"]

ENV_VAR = "MESHPLAY_TRAFFIC"


def traffic_to_json(spec: TrafficSpec) -> dict[str, Any]:
    """A TrafficSpec as plain JSON (snake_case keys, as the dataclass names them)."""
    data = asdict(spec)
    data["requests"] = [{**asdict(r), "headers": dict(r.headers)} for r in spec.requests]
    return data


def traffic_from_json(data: Mapping[str, Any]) -> TrafficSpec:
    """Inverse of :func:`traffic_to_json`."""
    names = {f.name for f in fields(TrafficSpec)}
    values = {k: v for k, v in data.items() if k in names}
    values["requests"] = tuple(
        RequestSpec(**{**r, "headers": FrozenMap(r.get("headers") or {})})
        for r in data.get("requests") or ()
    )
    return TrafficSpec(**values)


@dataclass(frozen=True)
class GeneratorJob:
    """Everything the generator pod needs, as ``MESHPLAY_TRAFFIC`` carries it."""

    traffic: TrafficSpec
    targets: tuple[Target, ...]
    seed: int
    token_url: str = ""
    """Base URL of the service that issues ``${jwt:...}`` tokens ("" when none is used)."""

    def to_json(self) -> str:
        """The job as one line of JSON (stable key order)."""
        return json.dumps(
            {
                "traffic": traffic_to_json(self.traffic),
                "targets": [asdict(t) for t in self.targets],
                "seed": self.seed,
                "token_url": self.token_url,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> GeneratorJob:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            traffic=traffic_from_json(data["traffic"]),
            targets=tuple(Target(**t) for t in data["targets"]),
            seed=int(data["seed"]),
            token_url=str(data.get("token_url", "")),
        )


class ClusterIdentity(Identity):
    """The local runner's ``${jwt:EMAIL}`` expansion, against the user service's in-cluster URL."""

    def __init__(self, base_url: str) -> None:
        super().__init__(cast("LocalMesh", None))
        self.base_url = base_url.rstrip("/")

    def _app_url(self, host: str) -> str | None:
        return self.base_url or None


def _emit(event: str, **fields_: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields_}, sort_keys=True) + "\n")
    sys.stdout.flush()


def _tcp_limits(spec: TrafficSpec) -> tuple[int, float]:
    count = spec.count if spec.count is not None else 10**9
    if spec.duration_s is not None:
        return count, spec.duration_s
    if spec.count is not None and spec.rate_rps:
        return count, spec.count / spec.rate_rps + spec.timeout_s
    return count, 10.0


async def _tcp_one(target: Target, spec: TrafficSpec) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), spec.timeout_s
        )
    except (OSError, TimeoutError):
        return False
    ok = True
    try:
        if spec.send_bytes:
            writer.write(b"\x16" * spec.send_bytes)
            await writer.drain()
        if spec.receive_bytes:
            await asyncio.wait_for(reader.read(spec.receive_bytes), spec.timeout_s)
        if spec.hold_s:
            await asyncio.sleep(spec.hold_s)
    except (OSError, TimeoutError):
        ok = False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return ok


def drive_tcp(
    spec: TrafficSpec,
    target: Target,
    rng: random.Random,
    on_progress: Callable[[float, int], None],
) -> tuple[int, int]:
    """One TCP connection per "request" (open loop at ``rate_rps``, else ``concurrency``
    clients), bounded by count and duration; returns (sent, failed)."""
    count, duration = _tcp_limits(spec)
    sent = failed = 0
    began = time.monotonic()

    async def run() -> None:
        nonlocal sent, failed
        tasks: set[asyncio.Task[bool]] = set()

        def done(task: asyncio.Task[bool]) -> None:
            nonlocal failed
            tasks.discard(task)
            if not task.cancelled() and not task.result():
                failed += 1

        next_at = 0.0
        while sent < count and time.monotonic() - began < duration:
            if spec.rate_rps:
                delay = next_at - (time.monotonic() - began)
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += rng.expovariate(spec.rate_rps)
            elif len(tasks) >= max(spec.concurrency or 1, 1):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            task = asyncio.create_task(_tcp_one(target, spec))
            task.add_done_callback(done)
            tasks.add(task)
            sent += 1
            on_progress(min(1.0, max(sent / count, (time.monotonic() - began) / duration)), sent)
        if tasks:
            await asyncio.wait(tasks, timeout=spec.timeout_s + spec.hold_s)

    asyncio.run(run())
    return sent, failed


def run_job(job: GeneratorJob, cancel: threading.Event | None = None) -> int:
    """Drive ``job`` and report on stdout; the exit code (0 done, 1 error)."""
    spec = job.traffic
    try:
        if job.token_url:
            spec = ClusterIdentity(job.token_url).expand(spec)
    except Exception as exc:  # the runner shows the generator's own words
        _emit("error", message=f"cannot get tokens from {job.token_url}: {exc}")
        return 1
    last = [0.0]

    def progress(fraction: float, sent: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or fraction >= 1.0:
            last[0] = now
            _emit("progress", fraction=round(fraction, 4), sent=sent)

    rng = random.Random(job.seed)
    _emit("started", at=time.time())
    if spec.is_tcp:
        sent, failed = drive_tcp(spec, job.targets[0], rng, progress)
        _emit("done", sent=sent, failed=failed, dropped=0)
        return 0
    report = drive(spec, list(job.targets), rng, cancel=cancel, on_progress=progress)
    failed = sum(1 for o in report.outcomes if o.status == 0)
    _emit(
        "done",
        sent=report.sent,
        failed=failed,
        dropped=report.dropped,
        wall_s=round(report.wall_s, 3),
    )
    return 0


def set_knobs(port: int, body: Mapping[str, Any], timeout_s: float = 10.0) -> tuple[int, str]:
    """``PUT http://127.0.0.1:PORT/admin/knobs`` with ``body``; (status, response text)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/knobs",
        data=json.dumps(dict(body)).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    try:
        with opener.open(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: no arguments drives ``$MESHPLAY_TRAFFIC``; ``knobs PORT JSON`` sets knobs."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["knobs"] and len(args) == 3:
        status, text = set_knobs(int(args[1]), json.loads(args[2]))
        sys.stdout.write(text + "\n")
        return 0 if status == 200 else 1
    text = os.environ.get(ENV_VAR, "")
    if not text:
        sys.stderr.write(f"usage: {ENV_VAR}=<job JSON> python -m cluster.kube.loadgen\n")
        return 2
    return run_job(GeneratorJob.from_json(text))


if __name__ == "__main__":
    sys.exit(main())
