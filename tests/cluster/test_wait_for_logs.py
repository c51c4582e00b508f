"""A step's records are in only once Envoy has flushed its last lines: the local runner waits
three of Envoy's 100 ms flushes, and then until no access log has grown for a while."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cluster.accesslog import wait_for_logs


def _append_every(path: Path, interval_s: float, times: int) -> threading.Thread:
    def write() -> None:
        for i in range(times):
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f'{{"n": {i}}}\n')
            time.sleep(interval_s)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_it_waits_until_a_late_flush_is_in(tmp_path: Path) -> None:
    """A proxy still writing after the minimum wait (a late flush thread) is waited for."""
    log = tmp_path / "a.log"
    log.touch()
    writer = _append_every(log, 0.1, 8)  # lines until ~0.8 s
    began = time.monotonic()
    assert wait_for_logs([log, tmp_path / "missing.log"], least_s=0.1, quiet_s=1.0, most_s=10.0)
    seen = len(log.read_text().splitlines())
    assert time.monotonic() - began >= 0.7
    assert seen == 8, "the wait returned while the log was still growing"
    writer.join(1.0)


def test_a_log_that_never_stops_growing_ends_the_wait_at_the_cap(tmp_path: Path) -> None:
    log = tmp_path / "busy.log"
    log.touch()
    _append_every(log, 0.05, 60)  # ~3 s of lines
    began = time.monotonic()
    assert not wait_for_logs([log], least_s=0.0, quiet_s=0.5, most_s=0.6)
    assert time.monotonic() - began < 2.5
