"""An app replica's worker slots: uvicorn workers or threads, ``concurrency`` of them.

A request takes a free slot for its own work (the service time) and gives it back before its
downstream calls; when every slot is busy it queues (first come, first served) until a finishing
request hands its slot over. This is ``simpy.Resource`` without its bookkeeping events: taking a
free slot costs no event at all, and a queued request waits for exactly one.
"""

from __future__ import annotations

from collections import deque

import simpy

__all__ = ["Workers"]


class Workers:
    """``capacity`` worker slots with a FIFO queue."""

    __slots__ = ("busy", "capacity", "env", "queue")

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.busy = 0
        self.queue: deque[simpy.Event] = deque()

    def acquire(self) -> simpy.Event | None:
        """Take a slot: None = got one now; an Event = queued, the slot is ours when it fires."""
        if self.busy < self.capacity:
            self.busy += 1
            return None
        ev = simpy.Event(self.env)
        self.queue.append(ev)
        return ev

    def release(self) -> None:
        """Give a slot back: handed to the oldest queued request, if any."""
        if self.queue:
            self.queue.popleft().succeed()
        else:
            self.busy -= 1
