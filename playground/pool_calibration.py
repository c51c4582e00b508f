"""Calibrate the simulator's connection-pool race from a local run (``meshplay compare --a sim
--b local``, on by default; ``--no-pool-calibration`` turns it off).

With ``maxRequestsPerConnection: 1``, one connection and one pending request (Istio's
circuit-breaking task), the share of 503 ``UO`` is a race between a client's turnaround and
Envoy's close, connect and TLS handshake; all of them move with the machine's load. The local
side's client sidecar logs those moments (``cluster.pool_calibration``); this module turns them
into the :class:`sim.pool_timing.PoolTiming` the simulator runs the same lesson with:

* **connect**: a connection opened for a request that found none, from the pool's decision (the
  request's first byte plus ``request_leg``); with too few of them, the reconnects;
* **request_leg**: half a ``UO``'s own duration (parse, route, decide, answer);
* **answer**, **overflow**, **after_handshake**, **reconnect** (paired with the turnaround it
  raced): as measured, arrival to arrival (the request leg cancels out of the race).

The race also depends on how long the one connection is busy, the upstream's service time: the
server sidecar's ``duration_us`` of the same requests replaces the endpoint's declared
``serviceTime`` in the simulated lesson (not in ``behavior.yaml``), unless the lesson breaks a
workload (an injected delay is logged in that duration too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster.pool_calibration import (
    PoolSamples,
    ServerDuration,
    client_log,
    race_steps,
    server_durations,
    step_samples,
)
from mesh.app.model import EndpointBehavior, LatencyModel, ServiceBehavior
from mesh.lesson import Lesson
from mesh.metrics import percentile
from mesh.model.common import Duration, FrozenMap
from mesh.runner import LessonRun
from sim.pool_timing import Delay, Paired, PoolTiming, Sampled

__all__ = [
    "PoolCalibration",
    "calibrate",
    "calibrate_from_local",
    "cross_fit",
    "timing",
    "with_service_times",
]

MIN_SAMPLES = 20
"""Reconnects and answers needed to calibrate (fewer: the sim keeps its default timing)."""
MIN_FRESH = 10
IDLE_TURNAROUND_S = 90e-6
"""A ``UO``'s turnaround when nothing else is going on, measured on this machine (82-100 us):
the floor when a run's every ``UO`` came during a handshake (two clients alone)."""
DEFAULT_LEG_US = 30.0


def timing(s: PoolSamples) -> PoolTiming:
    """The pool timing of measured samples; ``ValueError`` when they are too few."""
    if min(len(s.reconnect), len(s.answer)) < MIN_SAMPLES:
        raise ValueError(f"too few samples to calibrate: {s.describe()}")
    leg_us = statistics.median(s.overflow_duration) / 2 if s.overflow_duration else DEFAULT_LEG_US

    def after_leg(values: tuple[float, ...]) -> Sampled | None:
        # arrival to arrival, less the next request's leg to the pool's decision
        return Sampled(tuple(max(x - leg_us, 1.0) / 1e6 for x in values)) if values else None

    return PoolTiming(
        # a fresh connection from the pool's decision (the request's first byte plus its leg)
        connect=Sampled(tuple(max(x - leg_us, 1.0) / 1e6 for x in s.fresh))
        if len(s.fresh) >= MIN_FRESH
        else Sampled(tuple(x / 1e6 for x in s.reconnect)),
        request_leg=Delay(leg_us / 1e6, 0.3),
        answer=Sampled(tuple(max(x, 1.0) / 1e6 for x in s.answer)),
        overflow=after_leg(s.overflow) or Delay(IDLE_TURNAROUND_S, 0.3),
        after_handshake=Sampled(tuple(x / 1e6 for x in s.after_handshake))
        if s.after_handshake
        else None,
        reconnect=Paired(tuple((r / 1e6, max(a, 1.0) / 1e6) for r, a in s.raced))
        if s.raced
        else None,
    )


def calibrate(run: LessonRun, log: Path, steps: Iterable[int]) -> tuple[PoolTiming, PoolSamples]:
    """The pool timing measured on ``steps`` (indexes) of a local run whose client sidecar logged
    to ``log``, with the samples it came from."""
    s = step_samples(run, log, steps)
    return timing(s), s


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
            measured, _ = calibrate(run, log, [s for s in phase if s % 2 == half])
        except ValueError:
            measured, _ = calibrate(run, log, [s for s in every if s % 2 == half])
        out.append(measured)
    return out[0], out[1]


def _model(durations_us: Sequence[float]) -> LatencyModel:
    ms = [d / 1000.0 for d in durations_us]
    median, p99 = percentile(ms, 50), percentile(ms, 99)
    return LatencyModel(median=Duration(median / 1000.0), p99=Duration(max(p99, median) / 1000.0))


def _replaced(
    endpoints: tuple[EndpointBehavior, ...], old: EndpointBehavior, new: EndpointBehavior
) -> tuple[EndpointBehavior, ...]:
    return tuple(new if e is old else e for e in endpoints)


def with_service_times(
    lesson: Lesson, measured: Iterable[ServerDuration]
) -> tuple[Lesson, list[str]]:
    """``lesson`` with the measured endpoints' service times (at least :data:`MIN_SAMPLES`
    requests each) in its app's behaviour, and one ``service route median`` note per change."""
    behavior = lesson.app.behavior
    services: dict[str, ServiceBehavior] = dict(behavior.services)
    # an endpoint's requests may be logged under several keys (versions, query strings)
    grouped: dict[tuple[str, str], tuple[EndpointBehavior, list[float]]] = {}
    for m in measured:
        service = services.get(m.service)
        endpoint = service.endpoint(m.method, m.path, m.version) if service else None
        if endpoint is not None:
            key = (m.service, f"{endpoint.route} {id(endpoint)}")
            grouped.setdefault(key, (endpoint, []))[1].extend(m.durations_us)
    notes: list[str] = []
    for (name, _), (endpoint, durations) in grouped.items():
        if len(durations) < MIN_SAMPLES:
            continue
        service = services[name]
        model = _model(durations)
        new = dataclasses.replace(endpoint, service_time=model)
        versions = FrozenMap(
            {
                v_name: dataclasses.replace(v, endpoints=_replaced(v.endpoints, endpoint, new))
                for v_name, v in service.versions.items()
            }
        )
        services[name] = dataclasses.replace(
            service, endpoints=_replaced(service.endpoints, endpoint, new), versions=versions
        )
        declared = endpoint.service_time
        was = f" (declared {declared.median.seconds * 1e3:.2f} ms)" if declared else ""
        notes.append(
            f"{name} {endpoint.route} {model.median.seconds * 1e3:.2f} ms{was}, n={len(durations)}"
        )
    app = dataclasses.replace(
        lesson.app, behavior=dataclasses.replace(behavior, services=FrozenMap(services))
    )
    return dataclasses.replace(lesson, app=app), notes


@dataclass(frozen=True, slots=True)
class PoolCalibration:
    """What a local run measured for the simulator's pool race."""

    steps: tuple[int, ...]
    """The race's steps (0-based): those where the client sidecar answered ``UO``."""
    workload: str
    timing: PoolTiming | None
    """Measured on all the race's steps; ``None``: too few samples (the sim keeps its default
    timing)."""
    samples: PoolSamples
    lesson: Lesson
    """The lesson to simulate: the measured service times in its app's behaviour."""
    service_times: tuple[str, ...] = ()
    step_timing: FrozenMap[int, PoolTiming] = field(default_factory=FrozenMap)
    """The race steps measured on their own (enough reconnects in the step alone): the delays
    depend on what else runs during the race (a third client overflowing through every handshake
    slows the others' turnarounds), so such a step is simulated with its own."""

    def describe(self) -> str:
        """One line for ``meshplay compare``."""
        steps = ", ".join(str(s + 1) for s in self.steps)
        plural = "s" if len(self.steps) > 1 else ""
        where = f"pool race of step{plural} {steps} ({self.workload}'s sidecar)"
        if self.timing is None:
            n = len(self.samples.reconnect)
            return (
                f"{where}: {n} reconnects measured ({MIN_SAMPLES} needed: no reconnect race), "
                "sim used its default pool timing"
            )
        s = self.samples

        def us(xs: tuple[float, ...]) -> str:
            return f"{statistics.median(xs):.0f} us" if xs else "-"

        own = sorted(self.step_timing)
        per_step = ""
        if len(own) == 1:
            per_step = f" (step {own[0] + 1} simulated with its own)"
        elif own:
            per_step = f" (steps {', '.join(str(i + 1) for i in own)} with their own)"
        served = f"; service time {'; '.join(self.service_times)}" if self.service_times else ""
        return (
            f"{where}: sim used the delays measured on local: reconnect {us(s.reconnect)} "
            f"(n={len(s.reconnect)}), new connection {us(s.fresh)}, client turnaround "
            f"{us(s.answer)}, UO to next request {us(s.overflow)}{per_step}{served}"
        )


def calibrate_from_local(lesson: Lesson, run: LessonRun, workdir: Path) -> PoolCalibration | None:
    """The pool calibration of a local run of ``lesson`` whose mesh ran in ``workdir``; ``None``
    when no step overflowed a pool (nothing to calibrate). The client workload with the most
    race steps is measured (a lesson races one pool)."""
    races = race_steps(run)
    if not races:
        return None
    workload, steps = max(races.items(), key=lambda kv: (len(kv[1]), kv[0]))
    try:
        log = client_log(workdir, f"{workload}-*")
    except FileNotFoundError:
        return None
    s = step_samples(run, log, steps)
    try:
        measured: PoolTiming | None = timing(s)
    except ValueError:
        measured = None
    simulated, notes = lesson, list[str]()
    own: dict[int, PoolTiming] = {}
    if measured is not None:
        for i in steps:
            with contextlib.suppress(ValueError):
                own[i] = timing(step_samples(run, log, [i]))
        if not any(step.break_ or step.events for step in lesson.steps):
            simulated, notes = with_service_times(lesson, server_durations(workdir, run, steps))
    return PoolCalibration(steps, workload, measured, s, simulated, tuple(notes), FrozenMap(own))
