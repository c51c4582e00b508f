"""An app replica's worker slots (:mod:`sim.workers`): ``concurrency`` requests work at once,
the rest queue first come, first served, and a finishing request hands its slot over."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.workers import Workers

Proc = Generator[Any, Any, Any]


def fired(ev: simpy.Event) -> bool:
    """Whether ``ev`` was triggered (a call, so that a later check is not narrowed away)."""
    return ev.triggered


def test_free_slots_are_taken_at_once_and_the_next_request_queues() -> None:
    env = simpy.Environment()
    workers = Workers(env, 2)
    assert workers.acquire() is None
    assert workers.acquire() is None
    queued = workers.acquire()
    assert queued is not None and not queued.triggered
    assert workers.busy == 2


def test_a_released_slot_goes_to_the_oldest_queued_request() -> None:
    env = simpy.Environment()
    workers = Workers(env, 1)
    assert workers.acquire() is None
    first, second = workers.acquire(), workers.acquire()
    assert first is not None and second is not None
    workers.release()
    assert fired(first) and not fired(second)
    assert workers.busy == 1  # handed over, never free in between
    workers.release()
    assert fired(second)
    workers.release()
    assert workers.busy == 0
    assert workers.acquire() is None


def test_a_handed_over_slot_cannot_be_taken_by_a_newcomer() -> None:
    """Between the release and the queued request resuming, a new request must queue too."""
    env = simpy.Environment()
    workers = Workers(env, 1)
    workers.acquire()
    queued = workers.acquire()
    workers.release()
    assert queued is not None and queued.triggered
    assert workers.acquire() is not None


def _serve(
    env: simpy.Environment, take: Any, give: Any, arrive: float, work: float, log: list[float]
) -> Proc:
    yield env.timeout(arrive)
    ev = take()
    if ev is not None:
        yield ev
    log.append(env.now)
    yield env.timeout(work)
    give(ev)


def test_requests_start_when_a_simpy_resource_would_let_them() -> None:
    """The same arrivals through Workers and through ``simpy.Resource`` start at the same
    instants: first come, first served, ``capacity`` at a time."""
    arrivals = [(0.0, 1.0), (0.1, 0.3), (0.2, 2.0), (0.25, 0.5), (0.3, 0.1), (1.4, 0.2)]

    env = simpy.Environment()
    workers = Workers(env, 2)
    ours: list[float] = []
    for arrive, work in arrivals:
        env.process(_serve(env, workers.acquire, lambda _ev: workers.release(), arrive, work, ours))
    env.run()

    env = simpy.Environment()
    resource = simpy.Resource(env, 2)
    theirs: list[float] = []
    for arrive, work in arrivals:
        env.process(_serve(env, resource.request, resource.release, arrive, work, theirs))
    env.run()

    assert ours == theirs
    assert ours == [0.0, 0.1, 0.4, 1.0, 1.5, 1.6]
