"""One timeline of a local mesh's logs: every proxy's access log and every app's own log.

In a cluster, ``kubectl logs`` shows one container at a time and a log pipeline (Loki, Elastic)
merges them; the thread through them is the request id (``x-request-id``, which Envoy sets and
the apps propagate) and the trace id. Here every proxy writes a JSON access log (one line per
request per hop, with both ids) and every app process writes its own log. :class:`MeshLogs`
reads them all (incrementally, for ``--follow``) into :class:`LogLine`\\ s in time order, and
:func:`select` narrows them to one request or trace: its access-log lines, plus what the apps
it crossed logged while they were handling it (the apps do not print the ids themselves, so
their lines are tied to a request by pod and time).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cluster.accesslog import AccessLogTail
from mesh.envoy.accesslog import record_from_access_log
from mesh.records import RequestRecord

__all__ = ["LogLine", "MeshLogs", "same_request", "select"]

_APP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\S+) (\w+) (.*)$")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of the merged timeline (``time``: epoch seconds)."""

    time: float
    pod: str
    source: str
    """``envoy`` (an access-log line) or ``app``."""
    text: str
    request_id: str = ""
    trace_id: str = ""
    end: float = 0.0
    """When the request ended (access-log lines)."""

    def render(self) -> str:
        """``12:00:01.234  product-v1-0  envoy  ...``"""
        stamp = datetime.fromtimestamp(self.time).strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp}  {self.pod:<26} {self.source:<5}  {self.text}"


def _envoy_text(r: RequestRecord) -> str:
    who = f"{r.source_workload} -> {r.destination_service_name}"
    return (
        f"{r.reporter.value:<11} {who:<32} {r.method} {r.path} {r.response_code} {r.flags_text} "
        f"{r.duration_ms:.1f}ms {r.upstream_cluster or '-'} rid={r.request_id or '-'}"
        + (f" trace={r.trace_id}" if r.trace_id else "")
    )


def _envoy_line(pod: str, r: RequestRecord) -> LogLine:
    return LogLine(
        r.start_time,
        pod,
        "envoy",
        _envoy_text(r),
        r.request_id,
        r.trace_id,
        r.start_time + r.duration_ms / 1000.0,
    )


def _app_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


class _AppTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = ""

    def read(self, pod: str) -> list[LogLine]:
        try:
            with self.path.open("r", encoding="utf-8", errors="replace") as fh:
                fh.seek(self.offset)
                data = fh.read()
                self.offset = fh.tell()
        except OSError:
            return []
        lines = (self.partial + data).split("\n")
        self.partial = lines.pop()
        out = []
        last = 0.0
        for line in lines:
            m = _APP_LINE.match(line)
            if m:
                last = _app_time(m.group(1))
                out.append(LogLine(last, pod, "app", f"{m.group(3)} {m.group(4)}"))
            elif line.strip() and last:  # a traceback's continuation lines
                out.append(LogLine(last, pod, "app", line))
        return out


class MeshLogs:
    """Every proxy's access log and every app's log of one local mesh, read incrementally."""

    def __init__(self, sources: Iterable[tuple[str, Path | None, Path | None]]) -> None:
        """``sources``: (pod, access log or None, app log or None)."""
        self._envoy = [(pod, AccessLogTail(log)) for pod, log, _ in sources if log is not None]
        self._apps = [(pod, _AppTail(log)) for pod, _, log in sources if log is not None]

    @classmethod
    def of_workdir(cls, workdir: Path, pods: Sequence[str]) -> MeshLogs:
        """The logs of a mesh run in ``workdir`` (its ``access/`` and ``logs/`` folders)."""
        sources = []
        for pod in pods:
            access = workdir / "access" / f"{pod}.log"
            app = workdir / "logs" / f"app-{pod}.log"
            sources.append(
                (pod, access if access.exists() else None, app if app.exists() else None)
            )
        return cls(sources)

    def read(self) -> list[LogLine]:
        """Lines written since the last read, in time order."""
        out: list[LogLine] = []
        for pod, tail in self._envoy:
            out.extend(_envoy_line(pod, record_from_access_log(e)) for e in tail.read_entries())
        for pod, app in self._apps:
            out.extend(app.read(pod))
        return sorted(out, key=lambda line: line.time)


def same_request(a: str, b: str) -> bool:
    """Two ``x-request-id`` values of one request. With tracing on, Envoy writes the sampling
    decision into the UUID's version digit (Istio's ``UuidRequestIdConfig``: the id a client
    sent as ``...-4xxx-...`` is logged as ``...-9xxx-...`` once sampled), so that digit is not
    compared."""
    if a == b:
        return True
    if len(a) == len(b) == 36 and a[14] != b[14]:
        return a[:14] == b[:14] and a[15:] == b[15:]
    return False


def select(
    lines: Sequence[LogLine],
    *,
    request_id: str = "",
    trace_id: str = "",
    proxy: str = "",
) -> list[LogLine]:
    """The lines of one request (or trace) and of the apps while they handled it, of pods whose
    name starts with ``proxy``; everything when no filter is given."""
    if proxy:
        lines = [line for line in lines if line.pod.startswith(proxy)]
    if not request_id and not trace_id:
        return list(lines)
    matched = [
        line
        for line in lines
        if line.source == "envoy"
        and (
            (request_id and same_request(line.request_id, request_id))
            or (trace_id and line.trace_id == trace_id)
        )
    ]
    windows: dict[str, list[tuple[float, float]]] = {}
    for line in matched:
        windows.setdefault(line.pod, []).append((line.time, line.end))
    apps = [
        line
        for line in lines
        if line.source == "app"
        and any(a - 0.001 <= line.time <= b + 0.001 for a, b in windows.get(line.pod, ()))
    ]
    return sorted([*matched, *apps], key=lambda line: line.time)
