"""A golden-signals dashboard over records: per service, rate, error ratio and latency
percentiles per time bin, as sparklines (the TUI's dashboard view).

The same three signals as the Grafana dashboard and the alert rules, computed from the records
as they arrive rather than from Prometheus, so they draw live during a run on any runner. Each
request is counted once, as its caller saw it (:func:`mesh.metrics.client_side`: the client
sidecar's record, or the server's for callers outside the mesh), in the bin of its start time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.metrics import client_side, percentile
from mesh.records import RequestRecord

__all__ = ["SPARKS", "Dashboard", "ServiceSignals", "sparkline"]

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as bars scaled to ``top`` (default: their maximum); a gap
    (NaN) is a space."""
    shown = list(values)[-width:]
    finite = [v for v in shown if not math.isnan(v)]
    scale = top if top is not None else max(finite, default=0.0)
    out = []
    for v in shown:
        if math.isnan(v):
            out.append(" ")
        elif scale <= 0:
            out.append(SPARKS[0])
        else:
            out.append(SPARKS[min(len(SPARKS) - 1, int(v / scale * (len(SPARKS) - 1) + 0.5))])
    return "".join(out).rjust(width)


@dataclass(frozen=True, slots=True)
class ServiceSignals:
    """One service's signals per bin (oldest first) and over the whole window."""

    service: str
    rate: tuple[float, ...]
    errors: tuple[float, ...]
    p50: tuple[float, ...]
    p90: tuple[float, ...]
    p99: tuple[float, ...]
    requests: int
    error_ratio: float

    @property
    def rps(self) -> float:
        """The rate of the last complete bin (the latest one when there is only one)."""
        if len(self.rate) >= 2:
            return self.rate[-2]
        return self.rate[-1] if self.rate else 0.0


class Dashboard:
    """Records binned by start time (bins on a grid of ``bin_s`` from 0), per destination
    service."""

    def __init__(self, bin_s: float = 1.0) -> None:
        self.bin_s = bin_s
        self._bins: dict[str, dict[int, list[RequestRecord]]] = defaultdict(dict)
        self._t0 = math.inf
        self._last = 0
        self.count = 0

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Add a batch (any order)."""
        chosen = client_side(r for r in records if not r.is_tcp)
        if not chosen:
            return
        first = math.floor(min(r.start_time for r in chosen) / self.bin_s) * self.bin_s
        if math.isinf(self._t0):
            self._t0 = first
        elif first < self._t0:  # earlier than anything so far: move every bin right
            self._rebase(round((first - self._t0) / self.bin_s))
        for r in chosen:
            index = int((r.start_time - self._t0) // self.bin_s)
            self._bins[r.destination_service_name].setdefault(index, []).append(r)
            self._last = max(self._last, index)
        self.count += len(chosen)

    def _rebase(self, shift: int) -> None:
        for service, bins in self._bins.items():
            self._bins[service] = {i - shift: rs for i, rs in bins.items()}
        self._t0 += shift * self.bin_s
        self._last -= shift

    def signals(self) -> list[ServiceSignals]:
        """Every service's signals, busiest first."""
        out = []
        width = self._last + 1
        for service, bins in self._bins.items():
            rate, errors, p50, p90, p99 = [], [], [], [], []
            total = failed = 0
            for i in range(width):
                rs = bins.get(i, [])
                n = len(rs)
                bad = sum(1 for r in rs if not r.server_ok)
                total += n
                failed += bad
                durations = [r.duration_ms for r in rs]
                rate.append(n / self.bin_s)
                errors.append(bad / n if n else math.nan)
                p50.append(percentile(durations, 50))
                p90.append(percentile(durations, 90))
                p99.append(percentile(durations, 99))
            out.append(
                ServiceSignals(
                    service,
                    tuple(rate),
                    tuple(errors),
                    tuple(p50),
                    tuple(p90),
                    tuple(p99),
                    total,
                    failed / total if total else math.nan,
                )
            )
        return sorted(out, key=lambda s: (-s.requests, s.service))
