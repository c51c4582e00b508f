"""Envoy's per-try and route timeouts as the simulator races them (:mod:`sim.timeouts`).

An upstream attempt runs inside the router's process and races its deadline; all deadlines of a
world share one alarm. These tests drive the helpers with bare simpy processes and check the
promises the router relies on: who wins, at which simulated instant, in which order, and that a
finished attempt's deadline never wakes anything up.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.timeouts import TIMED_OUT, Deadlines, detached, raced

Proc = Generator[Any, Any, Any]


def work(env: simpy.Environment, seconds: float, log: list[Any], value: Any = "200") -> Proc:
    """An attempt: the upstream answers ``value`` after ``seconds``."""
    yield env.timeout(seconds)
    log.append((env.now, "answered", value))
    return value


def router(
    env: simpy.Environment,
    deadlines: Deadlines,
    attempt: Proc,
    delay: float,
    out: list[Any],
    after: float = 0.0,
) -> Proc:
    """Race ``attempt`` against ``delay``, note the outcome, then (optionally) wait ``after``
    more and note every value the process is resumed with then."""
    in_time, result = yield from raced(deadlines, attempt, delay)
    out.append((env.now, in_time, result))
    if after:
        value = yield env.timeout(after, "later")
        out.append((env.now, "resumed with", value))


def test_an_attempt_that_answers_first_returns_its_response() -> None:
    env = simpy.Environment()
    log: list[Any] = []
    out: list[Any] = []
    env.process(router(env, Deadlines(env), work(env, 0.5, log), 1.0, out))
    env.run()
    assert out == [(0.5, True, "200")]


def test_a_deadline_that_passes_first_resumes_the_router_at_that_instant() -> None:
    env = simpy.Environment()
    log: list[Any] = []
    out: list[Any] = []
    env.process(router(env, Deadlines(env), work(env, 2.0, log), 1.0, out))
    env.run(until=1.5)
    assert len(out) == 1
    now, in_time, (_gen, waiting_on) = out[0]
    assert (now, in_time) == (1.0, False)
    assert log == []  # the upstream has not answered: the attempt is suspended, not finished
    assert isinstance(waiting_on, simpy.Timeout) and not waiting_on.processed


def test_a_detached_attempt_runs_on_after_its_deadline() -> None:
    """The router answers 504 at the deadline; the server still finishes its work later."""
    env = simpy.Environment()
    log: list[Any] = []
    out: list[Any] = []
    env.process(router(env, Deadlines(env), work(env, 2.0, log), 1.0, out))
    env.run(until=1.5)
    _, _, (gen, waiting_on) = out[0]
    env.process(detached(gen, waiting_on))
    env.run()
    assert log == [(2.0, "answered", "200")]


def test_an_attempt_and_its_deadline_on_one_instant_the_attempt_wins() -> None:
    """The attempt's event was created before its deadline's alarm, so it comes first: the
    same order a per-attempt ``env.timeout`` set after starting the attempt would give."""
    env = simpy.Environment()
    out: list[Any] = []
    env.process(router(env, Deadlines(env), work(env, 1.0, []), 1.0, out))
    env.run()
    assert out == [(1.0, True, "200")]


def test_deadlines_on_one_instant_fire_in_the_order_they_were_set() -> None:
    """Three deadlines set at 0, 0.25 and 0.5 all fall on t=1.0: they fire in that order."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    fired: list[str] = []

    def one(name: str, start: float, delay: float) -> Proc:
        yield env.timeout(start)
        in_time, _ = yield from raced(deadlines, work(env, 5.0, []), delay)
        assert not in_time
        fired.append(f"{name}@{env.now}")

    env.process(one("a", 0.0, 1.0))
    env.process(one("c", 0.5, 0.5))
    env.process(one("b", 0.25, 0.75))
    env.run()
    assert fired == ["a@1.0", "b@1.0", "c@1.0"]


def test_a_finished_attempts_deadline_wakes_nothing_up() -> None:
    """Lazy cancellation: a finished attempt's deadline is skipped when it comes up, and the
    process that ran the attempt, now waiting for something else, is not resumed by it."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []
    for delay in (1.0, 2.0, 3.0):
        env.process(router(env, deadlines, work(env, 0.1, []), delay, out, after=5.0))
    env.run()
    assert [o for o in out if o[1] == "resumed with"] == [(5.1, "resumed with", "later")] * 3
    assert TIMED_OUT not in [o[2] for o in out]


def test_the_alarm_stops_at_the_first_deadline_when_every_attempt_finished() -> None:
    """One alarm for all deadlines: once it finds every attempt done it sets no further alarm,
    so a run with three finished attempts (deadlines 1, 2, 3 s) ends at the first one."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []
    for delay in (1.0, 2.0, 3.0):
        env.process(router(env, deadlines, work(env, 0.1, []), delay, out))
    env.run()
    assert [o[:2] for o in out] == [(0.1, True)] * 3
    assert env.now == 1.0


def test_a_nested_deadline_that_passes_first_belongs_to_the_nested_race() -> None:
    """A downstream call made while serving the attempt races its own, shorter deadline in the
    same process: it times out there and the outer attempt carries on."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []

    def serve() -> Proc:
        in_time, _ = yield from raced(deadlines, work(env, 5.0, []), 1.0)
        yield env.timeout(0.5)
        return f"downstream in time: {in_time} at {env.now - 0.5}"

    env.process(router(env, deadlines, serve(), 3.0, out, after=5.0))
    env.run()
    assert out == [
        (1.5, True, "downstream in time: False at 1.0"),
        (6.5, "resumed with", "later"),
    ]


def test_an_outer_deadline_lets_the_attempt_go_and_its_nested_deadline_still_fires() -> None:
    """The outer deadline (1 s) passes first: the router goes on with a 504 and the abandoned
    attempt runs on detached; its own downstream call still times out at its deadline (3 s)."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []
    inner: list[Any] = []

    def serve() -> Proc:
        in_time, _ = yield from raced(deadlines, work(env, 5.0, []), 3.0)
        inner.append((env.now, in_time))
        return "served"

    env.process(router(env, deadlines, serve(), 1.0, out))
    env.run(until=2.0)
    (now, in_time, (gen, waiting_on)) = out[0]
    assert (now, in_time) == (1.0, False)
    env.process(detached(gen, waiting_on))
    env.run()
    assert inner == [(3.0, False)]


def fail_at(env: simpy.Environment, ev: simpy.Event, when: float) -> None:
    """Fail ``ev`` with a connection reset at ``when``."""

    def reset(_timer: simpy.Event) -> None:
        ev.fail(ConnectionResetError("rst"))

    env.timeout(when).callbacks.append(reset)


def test_a_failed_event_is_thrown_into_the_attempt() -> None:
    """A failed event (a reset connection) is the attempt's to handle, not the race's."""
    env = simpy.Environment()
    out: list[Any] = []

    def attempt() -> Proc:
        reset = env.event()
        fail_at(env, reset, 0.5)
        try:
            yield reset
        except ConnectionResetError as exc:
            return f"handled {exc} at {env.now}"
        return "not reached"

    env.process(router(env, Deadlines(env), attempt(), 1.0, out))
    env.run()
    assert out == [(0.5, True, "handled rst at 0.5")]


def test_a_failure_the_attempt_does_not_handle_reaches_the_router() -> None:
    env = simpy.Environment()
    deadlines = Deadlines(env)
    caught: list[str] = []

    def attempt() -> Proc:
        reset = env.event()
        fail_at(env, reset, 0.5)
        yield reset

    def guarded() -> Proc:
        try:
            yield from raced(deadlines, attempt(), 1.0)
        except ConnectionResetError as exc:
            caught.append(f"{exc} at {env.now}")

    env.process(guarded())
    env.run()
    assert caught == ["rst at 0.5"]


def test_a_failed_event_reaches_a_detached_attempt() -> None:
    env = simpy.Environment()
    out: list[Any] = []
    handled: list[float] = []

    def attempt() -> Proc:
        reset = env.event()
        fail_at(env, reset, 2.0)
        try:
            yield reset
        except ConnectionResetError:
            handled.append(env.now)

    env.process(router(env, Deadlines(env), attempt(), 1.0, out))
    env.run(until=1.5)
    _, _, (gen, waiting_on) = out[0]
    env.process(detached(gen, waiting_on))
    env.run()
    assert handled == [2.0]


def test_an_attempt_that_needs_no_wait_never_sets_a_deadline() -> None:
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []

    def instant(cached: bool) -> Proc:
        if cached:
            return "cached"
        yield env.timeout(1.0)  # not reached: the attempt returns before its first event
        return "fetched"

    env.process(router(env, deadlines, instant(True), 1.0, out))
    env.run()
    assert out == [(0, True, "cached")]
    assert env.now == 0


def test_a_deadline_out_of_reach_of_one_float_addition_still_fires_on_time() -> None:
    """The alarm for the second deadline is set when the first rings, at ``now = 0.25 + 2**-53``.
    ``1.5 + 2**-52`` cannot be reached from there by adding any float delay (the sum rounds to
    an even neighbour), yet the deadline fires at exactly that float, as ``env.timeout`` from
    t=0 would."""
    first = 0.25 + 2**-53
    second = 1.5 + 2**-52
    assert first + (second - first) != second  # the case this test is about
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []
    env.process(router(env, deadlines, work(env, 9.0, []), first, out))
    env.process(router(env, deadlines, work(env, 9.0, []), second, out))
    env.run(until=5.0)
    assert [(o[0], o[1]) for o in out] == [(first, False), (second, False)]


ATTEMPTS = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 0.25, 0.5, 2**-53, 0.25 + 2**-53]), st.floats(0.0, 30.0)),
        st.one_of(st.sampled_from([0.5, 0.75, 1.0, 1.5 + 2**-52]), st.floats(1e-6, 30.0)),
        st.one_of(st.sampled_from([1.0, 2.0]), st.floats(1e-6, 30.0)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(ATTEMPTS)
def test_deadlines_fire_when_and_in_the_order_per_attempt_timeouts_would(
    attempts: list[tuple[float, float, float]],
) -> None:
    """Attempts (start, deadline delay, upstream time) race on one alarm. Each finishes at
    ``start + time`` or times out at exactly the float ``start + delay`` (what ``env.timeout``
    set at the start would give), whichever is earlier; deadlines on one instant fire in the
    order they were set."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    outcome: dict[int, tuple[float, bool, float]] = {}
    fired: list[int] = []

    def one(i: int, start: float, delay: float, upstream: float) -> Proc:
        yield env.timeout(start)
        began = env.now
        in_time, _ = yield from raced(deadlines, work(env, upstream, []), delay)
        outcome[i] = (env.now, in_time, began)
        if not in_time:
            fired.append(i)

    for i, spec in enumerate(attempts):
        env.process(one(i, *spec))
    env.run()

    for i, (_, delay, upstream) in enumerate(attempts):
        now, in_time, began = outcome[i]
        due, answered = began + delay, began + upstream
        if due == answered:
            continue  # a tie: depends on which event was created first, see above
        assert (now, in_time) == ((answered, True) if answered < due else (due, False))
    set_order = sorted(range(len(attempts)), key=lambda i: (attempts[i][0], i))
    by_instant: dict[float, list[int]] = {}
    for i in fired:
        by_instant.setdefault(outcome[i][0], []).append(i)
    for group in by_instant.values():
        assert group == [i for i in set_order if i in group]


@pytest.mark.parametrize("delay", [1e-9, 0.1, 1.0, 3.3])
def test_a_deadline_set_from_a_later_now_lands_on_the_same_float(delay: float) -> None:
    """The alarm for a deadline set at ``t0`` is armed only when the previous one rings: the
    deadline still fires at the float ``t0 + delay``."""
    env = simpy.Environment()
    deadlines = Deadlines(env)
    out: list[Any] = []

    def later() -> Proc:
        yield env.timeout(0.1 + 0.2)
        t0, d = env.now, delay + 0.7
        in_time, _ = yield from raced(deadlines, work(env, 99.0, []), d)
        out.append((env.now == t0 + d, in_time))

    env.process(router(env, deadlines, work(env, 99.0, []), 0.35, []))
    env.process(later())
    env.run(until=50)
    assert out == [(True, False)]
