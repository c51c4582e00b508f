"""Envoy's per-try and route timeouts, raced against an upstream attempt cheaply.

Envoy arms a timer for every attempt and cancels it when the response arrives. Nearly every
attempt finishes long before its timer would fire, so the simulator does not give each attempt
a simpy process and a timer event of its own:

* the attempt's generator runs inside the router's own process (:func:`raced` forwards each
  event it waits for), so no extra process is created;
* all deadlines of a world sit in one heap (:class:`Deadlines`) watched by a single alarm
  event set for the earliest one; a finished attempt is only marked ``done`` and skipped when
  its deadline comes up (lazy cancellation).

When a deadline passes first, the waiting process is taken off the event the attempt waits for
and resumed at once; the router answers 504 ``UT`` and the rest of the attempt keeps running
on its own (:func:`detached`): the server still does the work and its sidecar logs ``DC``.
"""

from __future__ import annotations

from collections.abc import Generator
from heapq import heappop, heappush
from math import inf, nextafter
from typing import Any

import simpy

__all__ = ["TIMED_OUT", "Deadlines", "Race", "detached", "raced"]

Proc = Generator[Any, Any, Any]

TIMED_OUT = object()
"""The value a process is resumed with when one of its attempts' deadlines passed."""


class Race:
    """One attempt against its deadline: ``ev`` is the event the attempt waits for now."""

    __slots__ = ("done", "ev", "fired")

    def __init__(self, ev: simpy.Event) -> None:
        self.ev = ev
        self.done = False
        self.fired = False

    def fire(self, signal: simpy.Event) -> None:
        """The deadline passed first: resume the waiting process with ``signal``.

        A process waits on an event through the callback it adds to the event's ``callbacks``
        list (a bound method of the process). Taking that callback off and calling it with
        another triggered event resumes the process with that event's value at once, as SimPy's
        own ``Process.interrupt`` does one event later. An attempt's events are its own, so the
        one process waiting on ``ev`` is the attempt's: the router's, or the process that
        carries the attempt on after an outer race let it go (:func:`detached`).
        """
        self.done = True
        ev = self.ev
        for cb in ev.callbacks or ():  # None once processed (then the attempt is done)
            if isinstance(getattr(cb, "__self__", None), simpy.Process):
                ev.callbacks.remove(cb)
                self.fired = True
                cb(signal)
                return


class Deadlines:
    """Every pending attempt deadline of one simpy environment, on one alarm event.

    Deadlines fire at exactly the time a per-attempt ``env.timeout`` would have fired, in the
    order they were set when several fall on the same instant.

    The alarm is an ordinary ``env.timeout`` set for the earliest deadline. When it rings it
    fires every deadline due by then and sets the next alarm, now from a later ``now``. A
    deadline is an absolute float time ``at`` (``now + delay`` when it was set), and a timeout
    lands on ``now + delay``: :meth:`_arm` uses ``at - now`` when adding it back gives ``at``
    exactly, and otherwise (``at`` is not reachable by one float addition from ``now``; this
    happens only when ``at > 2 * now``) first hops to the last float time before ``at`` and
    sets it from there. (The hop's final timeout is then created later than a direct one would
    be: only an unrelated event created in between for the very same float instant could be
    processed before the alarm instead of after it.)
    """

    __slots__ = ("_alarms", "_env", "_heap", "_seq", "signal")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._heap: list[tuple[float, int, Race]] = []
        self._alarms: list[float] = []
        """Target times of the alarms set and not rung yet (distinct; a heap)."""
        self._seq = 0
        self.signal: simpy.Event = env.timeout(0, TIMED_OUT)
        """An already triggered event whose value is :data:`TIMED_OUT` (what a fired
        deadline resumes a process with)."""

    def add(self, delay: float, race: Race) -> None:
        """Fire ``race`` after ``delay`` unless it is done by then."""
        env = self._env
        at = env.now + delay
        self._seq += 1
        heappush(self._heap, (at, self._seq, race))
        if not self._alarms or at < self._alarms[0]:
            heappush(self._alarms, at)
            # ``env.timeout(delay)`` lands on ``now + delay``: the very float ``at``
            env.timeout(delay).callbacks.append(self._ring)

    def _arm(self, at: float) -> None:
        """Ring :meth:`_ring` at the absolute time ``at`` (>= now)."""
        env = self._env
        now = env.now
        delay = at - now
        if now + delay == at:
            env.timeout(delay).callbacks.append(self._ring)
            return
        while now + delay >= at:  # the largest delay that stays before ``at``
            delay = nextafter(delay, -inf)
        env.timeout(delay).callbacks.append(lambda _hop: self._arm(at))

    def _ring(self, _alarm: simpy.Event) -> None:
        target = heappop(self._alarms)
        heap = self._heap
        last = self._seq  # deadlines set while firing wait for their own alarm
        while heap and heap[0][0] <= target and heap[0][1] <= last:
            race = heappop(heap)[2]
            if not race.done:
                race.fire(self.signal)
        while heap and heap[0][2].done:
            heappop(heap)
        if heap and (not self._alarms or heap[0][0] < self._alarms[0]):
            heappush(self._alarms, heap[0][0])
            self._arm(heap[0][0])


def raced(deadlines: Deadlines, gen: Proc, delay: float) -> Proc:
    """Run ``gen`` (an attempt) in the caller's process until it returns or ``delay`` passes.

    Returns ``(True, response)`` when the attempt finished in time, ``(False, (gen, event))``
    when the deadline won: ``gen`` is suspended on ``event`` and can be left to run on its own.
    A nested attempt's deadline (a downstream call made while serving this attempt) resumes the
    same process with the same value; it is passed on to the nested race, which owns it.
    """
    try:
        ev = gen.send(None)
    except StopIteration as stop:
        return True, stop.value
    race = Race(ev)
    deadlines.add(delay, race)
    while True:
        try:
            value = yield ev
        except Exception as exc:  # a failed event: the attempt gets to handle it
            try:
                ev = gen.throw(exc)
            except StopIteration as stop:
                race.done = True
                return True, stop.value
        else:
            if value is TIMED_OUT and race.fired:
                return False, (gen, ev)
            try:
                ev = gen.send(value)
            except StopIteration as stop:
                race.done = True
                return True, stop.value
        race.ev = ev


def detached(gen: Proc, ev: simpy.Event) -> Proc:
    """The rest of an abandoned attempt, as a process of its own."""
    while True:
        try:
            value = yield ev
        except Exception as exc:
            try:
                ev = gen.throw(exc)
            except StopIteration:
                return
        else:
            try:
                ev = gen.send(value)
            except StopIteration:
                return
