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
from typing import Any

import simpy
from simpy.events import NORMAL

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
        """The deadline passed first: resume the waiting process with ``signal``."""
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
    """

    __slots__ = ("_alarms", "_env", "_heap", "_seq", "signal")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._heap: list[tuple[float, int, Race]] = []
        self._alarms: list[float] = []
        self._seq = 0
        self.signal: simpy.Event = env.timeout(0, TIMED_OUT)
        """An already triggered event whose value is :data:`TIMED_OUT` (what a fired
        deadline resumes a process with)."""

    def add(self, delay: float, race: Race) -> None:
        """Fire ``race`` after ``delay`` unless it is done by then."""
        at = self._env.now + delay
        self._seq += 1
        heappush(self._heap, (at, self._seq, race))
        if not self._alarms or at < self._alarms[0]:
            self._alarm(at)

    def _alarm(self, at: float) -> None:
        env = self._env
        heappush(self._alarms, at)
        alarm = simpy.Event(env)
        alarm.callbacks.append(self._ring)
        alarm._ok = True
        alarm._value = None
        # schedule at the absolute time ``at`` (``env.timeout`` adds a delay to ``now``, which
        # can round differently from the ``now + delay`` the deadline was computed as)
        heappush(env._queue, (at, NORMAL, next(env._eid), alarm))

    def _ring(self, alarm: simpy.Event) -> None:
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
            self._alarm(heap[0][0])


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
