"""RequestRecords from real Envoys' JSON access logs (shared by the ``local`` and ``kube`` runners).

Every listener the translator emits logs one JSON object per request (format and inverse in
:mod:`mesh.envoy.accesslog`). Envoy appends to the file and flushes it every
``--file-flush-interval-msec``; :class:`AccessLogTail` reads what was appended since the last
read and keeps a trailing half-written line for the next call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mesh.envoy.accesslog import record_from_access_log
from mesh.records import RequestRecord

__all__ = ["AccessLogTail", "read_records", "wait_for_logs"]


class AccessLogTail:
    """Incremental reader of one access-log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""
        self.bad_lines = 0

    def skip_to_end(self) -> None:
        """Forget what is in the file now (records of earlier steps)."""
        try:
            self.offset = self.path.stat().st_size
        except OSError:
            self.offset = 0
        self._partial = b""

    def read_entries(self) -> list[dict[str, object]]:
        """The JSON objects appended since the last call."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def read(self, run_started_at: float = 0.0) -> list[RequestRecord]:
        """New records, start times relative to ``run_started_at`` (epoch seconds)."""
        return [
            record_from_access_log(e, run_started_at=run_started_at) for e in self.read_entries()
        ]


def read_records(paths: Iterable[Path], run_started_at: float = 0.0) -> list[RequestRecord]:
    """Every record in the given files, sorted by start time."""
    records: list[RequestRecord] = []
    for path in paths:
        records.extend(AccessLogTail(path).read(run_started_at))
    return sorted(records, key=lambda r: r.start_time)


LOG_FLUSH_S = 0.35
"""Envoy flushes access logs every 100 ms (``--file-flush-interval-msec``): after a step's
traffic, wait at least three flushes and more, until the logs have stopped growing
(:func:`wait_for_logs`)."""

LOG_QUIET_S = 0.25
"""How long every access log must stay the same size before a step's last records count as in."""

LOG_SETTLE_MAX_S = 5.0
"""The most a step waits for its logs to stop growing (a proxy that never stops logging)."""


def wait_for_logs(
    paths: Sequence[Path],
    *,
    least_s: float = LOG_FLUSH_S,
    quiet_s: float = LOG_QUIET_S,
    most_s: float = LOG_SETTLE_MAX_S,
    poll_s: float = 0.05,
) -> bool:
    """Wait ``least_s``, then until no file of ``paths`` has grown for ``quiet_s`` (on a busy
    machine Envoy's flush thread may write a step's last lines late). False if ``most_s``
    passed first."""

    def sizes() -> tuple[int, ...]:
        out = []
        for path in paths:
            try:
                out.append(path.stat().st_size)
            except OSError:
                out.append(-1)
        return tuple(out)

    began = time.monotonic()
    time.sleep(least_s)
    last, since = sizes(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() - began >= most_s:
            return False
        time.sleep(poll_s)
        now = sizes()
        if now != last:
            last, since = now, time.monotonic()
    return True
