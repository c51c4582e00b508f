"""RequestRecords from real Envoys' JSON access logs (shared by the ``local`` and ``kube`` runners).

Every listener the translator emits logs one JSON object per request (format and inverse in
:mod:`mesh.envoy.accesslog`). Envoy appends to the file and flushes it every
``--file-flush-interval-msec``; :class:`AccessLogTail` reads what was appended since the last
read and keeps a trailing half-written line for the next call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mesh.envoy.accesslog import record_from_access_log
from mesh.records import RequestRecord

__all__ = ["AccessLogTail", "read_records"]


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
