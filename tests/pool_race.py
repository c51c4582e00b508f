"""Test data of a connection-pool race: the access-log lines two closed-loop clients leave with
``maxRequestsPerConnection: 1`` on one connection (Istio's circuit-breaking task, lesson
bookinfo-05-breakers), the records of the same requests, and :class:`PoolRaceRunner`, a runner
double that runs bookinfo-05 through the lesson engine and, like the local runner, leaves its
sidecars' access logs in its ``workdir`` (``meshplay compare``'s pool calibration reads them).

A response closes the connection, the pool opens one for the pending request, and the client
whose response came back either lands during that handshake (503 ``UO``, and it tries again after
the handshake) or after it (it becomes the pending request)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesh.engine import LessonRunner
from mesh.lesson import Lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import LessonRun, RunOptions, StepPlan
from tests.fakes import ScriptedExecutor

EPOCH_S = 1_790_000_000.0
SERVICE_US = 3000.0
FRESH_US = 1200.0
RETRY_AFTER_HS_US = 200.0
UO_US = 60.0
SERVER_US = 2600.0


def reconnect_us(k: int) -> float:
    """The ``k``-th reconnect of the scripted race, in microseconds."""
    return 700.0 + (37 * k) % 500


def turnaround_us(k: int) -> float:
    """The turnaround of the client that raced the ``k``-th reconnect, in microseconds."""
    return 400.0 + (53 * k) % 900


@dataclass
class Trial:
    """The client sidecar's log lines of one trial, written as Envoy 1.40 writes them with the
    local runner's ``TIMING_LOG_KEYS``, and the server sidecar's of the served requests."""

    prefix: str
    client: list[str] = field(default_factory=list)
    server: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    overflowed: set[str] = field(default_factory=set)

    def log(
        self,
        conn: int,
        start: float,
        *,
        uo: bool = False,
        cx: float = 0,
        hs: float = 0,
        rx: float = 0,
    ) -> str:
        rid = f"{self.prefix}-{len(self.ids)}"
        entry: dict[str, object] = {
            "reporter": "source",
            "request_id": rid,
            "start_us": f"{EPOCH_S + start / 1e6:.6f}",
            "duration_us": UO_US if uo else rx + 50 - start,
            "response_flags": "UO" if uo else "-",
            "downstream_connection_id": conn,
            "upstream_cx_begin_us": None if uo else cx - start,
            "upstream_handshake_end_us": None if uo else hs - start,
            "upstream_rx_end_us": None if uo else rx - start,
        }
        self.client.append(json.dumps(entry))
        self.ids.append(rid)
        if uo:
            self.overflowed.add(rid)
        else:
            self.server.append(
                json.dumps({"reporter": "destination", "request_id": rid, "duration_us": SERVER_US})
            )
        return rid


def two_clients(prefix: str, cycles: int) -> Trial:
    """Two clients (downstream connections 1 and 2) racing ``cycles`` reconnects."""
    trial = Trial(prefix)
    hs = FRESH_US
    rx = hs + SERVICE_US
    trial.log(1, 0.0, cx=10.0, hs=hs, rx=rx)  # the first request opens a fresh connection
    pending_client, pending_start, served_client = 2, 100.0, 1
    for k in range(cycles):
        # the response of ``served_client`` came back at ``rx``: the pool reconnects for the
        # pending request, and that client answers after its turnaround
        hs = rx + reconnect_us(k)
        nxt = rx + SERVICE_US + reconnect_us(k)
        trial.log(pending_client, pending_start, cx=rx + 5, hs=hs, rx=nxt)
        back = rx + turnaround_us(k)
        if turnaround_us(k) < reconnect_us(k):
            trial.log(served_client, back, uo=True)
            back = hs + RETRY_AFTER_HS_US
        pending_client, pending_start, served_client = served_client, back, pending_client
        rx = nxt
    # sorting by start is the parser's job: hand the lines over in a shuffled order
    trial.client.reverse()
    return trial


def record(rid: str, reporter: Reporter, *, uo: bool = False) -> RequestRecord:
    """A ``fortio-deploy -> httpbin`` record of request ``rid`` (``uo``: 503 UO, never sent)."""
    return RequestRecord(
        start_time=0.0, duration_ms=3.0, reporter=reporter,
        source_workload="fortio-deploy", source_namespace="default", source_principal="",
        source_app="fortio", destination_service="httpbin.default.svc.cluster.local",
        destination_workload="httpbin", destination_namespace="default",
        destination_version="v1", destination_app="httpbin", path="/get",
        response_code=503 if uo else 200, response_flags=("UO",) if uo else (),
        request_id=rid,
    )  # fmt: skip


def trial_records(trial: Trial) -> list[RequestRecord]:
    """The records of a trial's requests: client side, and server side when served."""
    records: list[RequestRecord] = []
    for rid in trial.ids:
        uo = rid in trial.overflowed
        records.append(record(rid, Reporter.SOURCE, uo=uo))
        if not uo:
            records.append(record(rid, Reporter.DESTINATION))
    return records


class PoolRaceRunner(LessonRunner):
    """bookinfo-05 through the lesson engine on a scripted executor: every step after the first
    is a trial of two clients racing ``cycles`` reconnects; with a ``workdir`` (the local runner's
    option), the client and server sidecars' access-log lines go to ``workdir/access`` as the
    local runner writes them. ``pool_timing`` and ``step_timing`` (the simulator's options) are
    kept to be checked, with every lesson it ran in ``lessons``."""

    def __init__(
        self,
        name: str,
        *,
        workdir: Path | None = None,
        pool_timing: object = None,
        step_timing: Mapping[int, object] | None = None,
        cycles: int = 30,
    ) -> None:
        self.workdir = workdir
        self.pool_timing = pool_timing
        self.step_timing = step_timing
        self.cycles = cycles
        self.lessons: list[Lesson] = []
        super().__init__(
            name, lambda: ScriptedExecutor(name, script=self.step, duration_s=1.0, batch=20)
        )

    def step(self, plan: StepPlan, rng: random.Random) -> list[RequestRecord]:
        """A step's records (none in the first), its log lines written to the workdir."""
        if plan.index == 0:
            return []
        trial = two_clients(f"s{plan.index}", self.cycles)
        if self.workdir is not None:
            logs = self.workdir / "access"
            logs.mkdir(parents=True, exist_ok=True)
            for pod, lines in (
                ("fortio-deploy-v1-0", trial.client),
                ("httpbin-v1-0", trial.server),
            ):
                with (logs / f"{pod}.log").open("a", encoding="utf-8") as f:
                    f.write("".join(line + "\n" for line in lines))
        return trial_records(trial)

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        """Run through the engine, remembering the lesson."""
        self.lessons.append(lesson)
        return super().run(lesson, options)
