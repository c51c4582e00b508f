"""Sharing one Python interpreter between the UI thread and a runner thread.

The simulator is pure Python and runs in a worker thread of the TUI's own process, so while a
lesson runs the UI thread gets the interpreter (the GIL) only every other slice: each key press
(dispatch, the view's refresh, the layout and paint that follow) took about twice as long as
on an idle app. Two more things made the slow keys slow:

- the cyclic garbage collector: a full collection walks every tracked object of the process (the
  app's widgets, the lessons, earlier runs) and holds the interpreter 50-250 ms on the 2-core
  development machine; records arriving by the thousand trigger one now and then;
- nothing told the runner that a person was waiting.

:class:`UiTurn` lets the UI thread claim the interpreter for a moment after a key press: the
runner's progress callbacks wait (sleeping, so the GIL is free) until the screen has been
refreshed or the claim expires. :class:`QuietHeap` moves every object alive when a run starts
to the collector's permanent generation (``gc.freeze``), so the full collections during the run
walk only the objects the run created, and gives them back (``gc.unfreeze``) when it ends.
"""

from __future__ import annotations

import gc
import threading
import time

__all__ = ["QuietHeap", "UiTurn"]


class UiTurn:
    """The UI thread's claims on the interpreter, honoured by the runner thread's callbacks.

    Claims nest: each :meth:`claim` is ended by one :meth:`release`, and the runner goes on
    when none is left, or when the newest claim is ``claim_s`` old (a forgotten release never
    stops a run).
    """

    def __init__(self, claim_s: float = 0.3, max_wait_s: float = 0.3) -> None:
        self.claim_s = claim_s
        """How long a claim holds at most (the runner goes on after that, key handled or not)."""
        self.max_wait_s = max_wait_s
        """The longest one runner callback waits, whatever the claims."""
        self._free = threading.Event()
        self._free.set()
        self._claims = 0
        self._until = 0.0
        self.waited_s = 0.0
        """Seconds the runner spent waiting so far (for measurements)."""

    def claim(self) -> None:
        """UI thread: work a person waits for begins (a key arrived, the footer is rebuilt)."""
        self._claims += 1
        self._until = time.monotonic() + self.claim_s
        self._free.clear()

    def release(self) -> None:
        """UI thread: one claimed piece of work is done and drawn."""
        self._claims = max(0, self._claims - 1)
        if self._claims == 0:
            self._free.set()

    def reset(self) -> None:
        """UI thread: drop every claim (the app exits)."""
        self._claims = 0
        self._free.set()

    def wait(self) -> None:
        """Runner thread: let a claiming UI thread finish first (returns at once when none)."""
        if self._free.is_set():
            return
        start = time.monotonic()
        remaining = min(self._until - start, self.max_wait_s)
        if remaining > 0:
            self._free.wait(remaining)
        self.waited_s += time.monotonic() - start


class QuietHeap:
    """Keeps the objects alive before a run out of the garbage collector's walks during it."""

    def __init__(self) -> None:
        self._holds = 0

    @property
    def held(self) -> bool:
        """A run holds the heap frozen."""
        return self._holds > 0

    def hold(self) -> None:
        """A run starts: freeze what is alive now (the first of nested holds does)."""
        if self._holds == 0:
            gc.freeze()
        self._holds += 1

    def release(self) -> None:
        """A run ended: the last release makes the frozen objects collectable again."""
        if self._holds == 0:
            return
        self._holds -= 1
        if self._holds == 0:
            gc.unfreeze()

    def reset(self) -> None:
        """The app exits: unfreeze, whatever runs are still going."""
        if self._holds:
            self._holds = 0
            gc.unfreeze()
