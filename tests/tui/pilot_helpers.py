"""Pilot helpers: wait for a run or a comparison to end without fixed sleeps, and send keys
without Pilot's wait-for-idle (which waits as long as any thread keeps the CPU busy, i.e. for
the whole simulation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual import events
from textual.app import App
from textual.pilot import Pilot

from tui.app import MeshplayApp
from tui.compare_view import ComparePane


async def wait_run(pilot: Pilot[None], timeout_s: float = 20.0) -> None:
    """Until the run view's runner returned (and its result is drawn)."""
    app = pilot.app
    assert isinstance(app, MeshplayApp)
    deadline = time.monotonic() + timeout_s
    while app.run_pane.running:
        assert time.monotonic() < deadline, "run did not finish"
        await pilot.pause(0.02)
    await pilot.pause()


async def wait_compare(pilot: Pilot[None], timeout_s: float = 20.0) -> None:
    """Until the compare view filled its table."""
    pane = pilot.app.query_one("#compare", ComparePane)
    deadline = time.monotonic() + timeout_s
    await pilot.pause()
    while pane.busy:
        assert time.monotonic() < deadline, "compare did not finish"
        await pilot.pause(0.02)
    await pilot.pause()


async def wait_for(
    pilot: Pilot[None], predicate: Callable[[], bool], timeout_s: float = 10.0
) -> None:
    """Until ``predicate()`` holds (work done by a worker thread, for instance)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await pilot.pause(0.02)


def send_key(app: App[None], key: str) -> None:
    """Put one key event in the app's input queue, as the terminal driver does."""
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


async def key_latency(
    app: App[None], key: str, done: Callable[[], bool], timeout_s: float = 5.0
) -> float:
    """Seconds from sending ``key`` until ``done()`` holds (polled every millisecond)."""
    start = time.perf_counter()
    send_key(app, key)
    while not done():
        if time.perf_counter() - start > timeout_s:
            raise AssertionError(f"key {key!r} not handled within {timeout_s} s")
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


async def wait_loaded(pilot: Pilot[None], timeout_s: float = 30.0) -> None:
    """Until the app has read its lessons (it paints first and reads them in a thread)."""
    app = pilot.app
    assert isinstance(app, MeshplayApp)
    deadline = time.monotonic() + timeout_s
    while not getattr(app.session, "loaded", True):  # (an app that loads before it paints)
        assert time.monotonic() < deadline, "lessons not loaded"
        await pilot.pause(0.02)
    await pilot.pause()
