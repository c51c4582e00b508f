"""Measure, on real Envoy 1.40 and on this machine now, the moments that decide the reconnect
race of Istio's circuit-breaking task, from a local run's access logs (the log side of
``meshplay compare --a sim --b local``'s pool calibration: ``playground.pool_calibration`` turns
these samples into the simulator's :class:`sim.pool_timing.PoolTiming`).

With ``maxRequestsPerConnection: 1`` Envoy closes a connection after its response; the pool opens
a new one for the request pending behind it, which holds the one pending slot until that
connection's TLS handshake is done. The client whose response just came back sends its next
request after its *turnaround*; landing before the handshake completes, it gets 503 ``UO`` and
tries again. So these delays decide the share of ``UO``, and all of them depend on how busy the
machine is (Envoy's event loops, the TLS work, the Python client all share two cores):

* **reconnect**: from the previous response's last byte back at the client sidecar
  (``US_RX_END``, when Envoy closes the connection) to the new connection's ``US_HS_END``
  (handshake done: the pending request is attached at once);
* **answer** (``PoolTiming.answer``): from that same ``US_RX_END`` to the same client's next
  request's first byte at the sidecar (``DS_RX_BEG``); each reconnect is kept with the answer it
  raced (``PoolTiming.reconnect``: one busy moment slows both);
* **fresh connection** (``PoolTiming.connect``): a connection opened for a request that found
  none (a trial's first), from its first byte to ``US_HS_END`` - longer than a reconnect, since
  the request is parsed and routed first;
* **overflow** (``PoolTiming.overflow``): from a 503 ``UO``'s arrival to the same client's next
  request's arrival (Envoy's own local reply, then the client's turnaround), when the pool was not
  opening a connection; while it was, the next arrival relative to that connection's
  ``US_HS_END`` (``PoolTiming.after_handshake``: the client's turnaround follows the handshake's
  end).

The local runner logs these time points on every HTTP request (``cluster.local.xds.TIMING_LOG_KEYS``:
the start in microseconds, ``US_CX_BEG``/``US_HS_END``/``US_RX_END`` after it, the downstream
connection's id). A client is one downstream connection (the load generator's closed-loop
clients keep theirs alive). The server sidecar's ``duration_us`` of the same requests measures
the upstream's service time (first byte in to last byte out at the server's sidecar, in
microseconds: ``%DURATION%`` has only milliseconds), which decides how long the one connection
is busy."""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mesh.records import Reporter
from mesh.runner import LessonRun

__all__ = [
    "CLIENT_POD",
    "LoggedRequest",
    "PoolSamples",
    "ServerDuration",
    "client_log",
    "logged_requests",
    "race_steps",
    "samples",
    "server_durations",
    "step_samples",
]

CLIENT_POD = "api-gateway-v1-0"


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the client sidecar logged it; times in microseconds since the epoch."""

    start: float
    connection: int
    overflow: bool
    end: float
    """Its last byte out to the client (``DS_TX_END``)."""
    cx_begin: float | None
    handshake_end: float | None
    rx_end: float | None


@dataclass(frozen=True, slots=True)
class PoolSamples:
    """The measured delays, in microseconds."""

    reconnect: tuple[float, ...]
    fresh: tuple[float, ...]
    """A connection opened for a request that found none (a trial's first): its first byte in to
    ``US_HS_END``."""
    answer: tuple[float, ...]
    raced: tuple[tuple[float, float], ...]
    """Each reconnect with the turnaround of the client whose response closed the connection."""
    overflow: tuple[float, ...]
    """``UO`` arrival to the same client's next arrival, no handshake under way."""
    after_handshake: tuple[float, ...]
    """While the pool was opening a connection (between a close or a first request and
    ``US_HS_END``): the next arrival less that ``US_HS_END`` (negative: before it)."""
    overflow_duration: tuple[float, ...]

    def won(self) -> float:
        """The share of raced pairs whose turnaround beat the reconnect."""
        return sum(a < r for r, a in self.raced) / len(self.raced) if self.raced else 0.0

    def describe(self) -> str:
        """Medians and counts."""

        def m(xs: tuple[float, ...]) -> str:
            return f"{statistics.median(xs):.0f} us (n={len(xs)})" if xs else "n=0"

        return (
            f"reconnect {m(self.reconnect)}, fresh connection {m(self.fresh)}, "
            f"answer {m(self.answer)}, "
            f"raced pairs {len(self.raced)} (turnaround first {self.won():.2f}), "
            f"UO to next {m(self.overflow)}, in a handshake its end to next {m(self.after_handshake)}, "
            f"UO duration {m(self.overflow_duration)}"
        )


def client_log(workdir: Path, pod: str = CLIENT_POD) -> Path:
    """The access log of the client sidecar ``pod`` (a name or a glob) of the last mesh a local
    runner started under ``workdir``."""
    logs = sorted(workdir.glob(f"**/access/{pod}.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise FileNotFoundError(f"no {pod} access log under {workdir}")
    return logs[-1]


def _offset(entry: dict[str, object], key: str, start: float) -> float | None:
    value = entry.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return start + float(value)
    return None


def logged_requests(log: Path, request_ids: Iterable[str]) -> list[LoggedRequest]:
    """The client sidecar's log lines of ``request_ids``, in arrival order."""
    wanted = set(request_ids)
    out: list[LoggedRequest] = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("request_id") not in wanted or entry.get("reporter") != "source":
            continue
        start = float(entry["start_us"]) * 1e6
        out.append(
            LoggedRequest(
                start=start,
                connection=int(entry["downstream_connection_id"]),
                overflow=entry.get("response_flags") == "UO",
                end=start + float(entry.get("duration_us") or 0),
                cx_begin=_offset(entry, "upstream_cx_begin_us", start),
                handshake_end=_offset(entry, "upstream_handshake_end_us", start),
                rx_end=_offset(entry, "upstream_rx_end_us", start),
            )
        )
    out.sort(key=lambda r: r.start)
    return out


def _pairs(trial: list[LoggedRequest]) -> Iterator[tuple[LoggedRequest, LoggedRequest]]:
    """Each request with the next one of the same client (downstream connection)."""
    last: dict[int, LoggedRequest] = {}
    for r in trial:
        before = last.get(r.connection)
        if before is not None:
            yield before, r
        last[r.connection] = r


def samples(trials: Iterable[list[LoggedRequest]]) -> PoolSamples:
    """The race's delays measured over ``trials`` (each one trial's requests, arrival order)."""
    reconnect: list[float] = []
    fresh: list[float] = []
    answer: list[float] = []
    raced: list[tuple[float, float]] = []
    overflow: list[float] = []
    after_handshake: list[float] = []
    uo_duration: list[float] = []
    for trial in trials:
        following = dict(_pairs(trial))
        served = [r for r in trial if not r.overflow and r.rx_end is not None]
        opening: list[tuple[float, float]] = [
            (r.start, r.handshake_end) for r in served[:1] if r.handshake_end is not None
        ]
        """When the pool was opening a connection: from the decision to ``US_HS_END``."""
        fresh.extend(hi - lo for lo, hi in opening)
        for before, after in itertools.pairwise(served):
            # ``after`` was pending when ``before``'s connection closed: its own connection began
            # after that close and it had arrived before it
            assert before.rx_end is not None
            if after.handshake_end is None or after.cx_begin is None:
                continue
            if after.start < before.rx_end <= after.cx_begin:
                reconnect.append(after.handshake_end - before.rx_end)
                turn = following.get(before)
                if turn is not None:
                    raced.append((reconnect[-1], turn.start - before.rx_end))
                opening.append((before.rx_end, after.handshake_end))
            else:
                opening.append((after.start, after.handshake_end))
                fresh.append(after.handshake_end - after.start)
        for before, after in _pairs(trial):
            if before.overflow:
                ends = [hi for lo, hi in opening if lo <= before.start < hi]
                if ends:
                    after_handshake.append(after.start - ends[0])
                else:
                    overflow.append(after.start - before.start)
            elif before.rx_end is not None:
                answer.append(after.start - before.rx_end)
        uo_duration.extend(r.end - r.start for r in trial if r.overflow)
    return PoolSamples(
        tuple(reconnect),
        tuple(fresh),
        tuple(answer),
        tuple(raced),
        tuple(overflow),
        tuple(after_handshake),
        tuple(uo_duration),
    )


def step_samples(run: LessonRun, log: Path, steps: Iterable[int]) -> PoolSamples:
    """The race's delays measured on ``steps`` (indexes) of a local run, whose client sidecar
    logged to ``log``."""
    trials = []
    for i in steps:
        ids = [r.request_id for r in run.steps[i].records if r.request_id]
        trials.append(logged_requests(log, ids))
    return samples(trials)


def race_steps(run: LessonRun) -> dict[str, tuple[int, ...]]:
    """The steps where a client sidecar answered 503 ``UO`` (a pool's circuit breaker
    overflowed: the steps whose shares the reconnect race decides), per client workload."""
    out: dict[str, list[int]] = {}
    for i, step in enumerate(run.steps):
        for workload in sorted(
            {r.source_workload for r in step.records if "UO" in r.response_flags}
        ):
            out.setdefault(workload, []).append(i)
    return {w: tuple(s) for w, s in out.items()}


@dataclass(frozen=True, slots=True)
class ServerDuration:
    """Requests of one endpoint as its server sidecar logged them."""

    service: str
    """The short service name (``destination_service_name``)."""
    method: str
    path: str
    version: str
    durations_us: tuple[float, ...]


def server_durations(workdir: Path, run: LessonRun, steps: Iterable[int]) -> list[ServerDuration]:
    """Each endpoint's server-sidecar durations (``duration_us``: first byte in to last byte
    out, so the app's own work plus its local legs) of the requests of ``steps``, from every
    access log under ``workdir`` (reporter ``destination``)."""
    wanted: dict[str, tuple[str, str, str, str]] = {}
    for i in steps:
        for r in run.steps[i].records:
            if r.request_id and r.reporter is Reporter.DESTINATION:
                wanted[r.request_id] = (
                    r.destination_service_name, r.method, r.path, r.destination_version
                )  # fmt: skip
    found: dict[tuple[str, str, str, str], list[float]] = {}
    for log in sorted(workdir.glob("**/access/*.log")):
        for line in log.read_text(encoding="utf-8").splitlines():
            if '"destination"' not in line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            key = wanted.get(str(entry.get("request_id")))
            micros = entry.get("duration_us")
            if key is None or entry.get("reporter") != "destination":
                continue
            if isinstance(micros, int | float) and not isinstance(micros, bool):
                found.setdefault(key, []).append(float(micros))
    return [ServerDuration(*key, tuple(v)) for key, v in sorted(found.items())]
