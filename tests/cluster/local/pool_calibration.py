"""Measure, on real Envoy 1.40 and on this machine now, the moments that decide the reconnect
race of Istio's circuit-breaking task, as a :class:`sim.connpool.PoolTiming` for the simulator.

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
clients keep theirs alive). The measured values are used as they are (:class:`sim.connpool.Sampled`).
The pool decides about ``request_leg`` after a request's first byte: half a ``UO``'s own duration
(parse, route, decide, answer); ``answer`` and ``overflow`` are measured arrival to arrival, so
that leg cancels out of the race.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesh.runner import LessonRun
from sim.connpool import Delay, Paired, PoolTiming, Sampled

__all__ = [
    "LoggedRequest",
    "PoolSamples",
    "calibrate",
    "client_log",
    "cross_fit",
    "logged_requests",
    "samples",
]

CLIENT_POD = "api-gateway-v1-0"
MIN_SAMPLES = 20
IDLE_TURNAROUND_S = 90e-6
MIN_FRESH = 10


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


def calibrate(run: LessonRun, log: Path, steps: Iterable[int]) -> tuple[PoolTiming, PoolSamples]:
    """The pool timing measured on ``steps`` (indexes) of a local run of the scenario, whose
    client sidecar logged to ``log``."""
    trials = []
    for i in steps:
        ids = [r.request_id for r in run.steps[i].records if r.request_id]
        trials.append(logged_requests(log, ids))
    s = samples(trials)
    if min(len(s.reconnect), len(s.answer)) < MIN_SAMPLES:
        raise ValueError(f"too few samples to calibrate: {s.describe()}")
    leg_us = statistics.median(s.overflow_duration) / 2 if s.overflow_duration else 30.0

    def after_leg(values: tuple[float, ...]) -> Sampled | None:
        # arrival to arrival, less the next request's leg to the pool's decision
        return Sampled(tuple(max(x - leg_us, 1.0) / 1e6 for x in values)) if values else None

    timing = PoolTiming(
        # a fresh connection from the pool's decision (the request's first byte plus its leg)
        connect=Sampled(tuple(max(x - leg_us, 1.0) / 1e6 for x in s.fresh))
        if len(s.fresh) >= MIN_FRESH
        else Sampled(tuple(x / 1e6 for x in s.reconnect)),
        request_leg=Delay(leg_us / 1e6, 0.3),
        answer=Sampled(tuple(max(x, 1.0) / 1e6 for x in s.answer)),
        # a run whose every UO came during a handshake (two clients alone): the idle turnaround
        # measured on this machine, 82-100 us, matters only as a floor there
        overflow=after_leg(s.overflow) or Delay(IDLE_TURNAROUND_S, 0.3),
        after_handshake=Sampled(tuple(x / 1e6 for x in s.after_handshake))
        if s.after_handshake
        else None,
        reconnect=Paired(tuple((r / 1e6, max(a, 1.0) / 1e6) for r, a in s.raced))
        if s.raced
        else None,
    )
    return timing, s


def cross_fit(
    run: LessonRun, log: Path, phase: Sequence[int], every: Sequence[int]
) -> tuple[PoolTiming, PoolTiming]:
    """Two calibrations for predicting the trials (steps) of ``phase``: the first measured on its
    odd trials (to predict the even ones), the second on its even trials. The delays depend on what
    else runs during the race (a third client overflowing through every handshake slows the
    others' turnarounds), so a phase is calibrated on its own trials - unless they serve too few
    requests to measure reconnects (three clients serve two a trial): then on the same half of
    ``every`` trial."""
    out = []
    for half in (1, 0):
        try:
            timing, _ = calibrate(run, log, [s for s in phase if s % 2 == half])
        except ValueError:
            timing, _ = calibrate(run, log, [s for s in every if s % 2 == half])
        out.append(timing)
    return out[0], out[1]
