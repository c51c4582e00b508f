"""Fit the simulator's latency parameters from a real run (``meshplay compare --calibrate``).

The simulator draws each network hop and each endpoint's own work from lognormals given by a
median and a p99 in the app's ``behavior.yaml``. A real run measures both:

* **hop latency**: a request logged by the client sidecar (``reporter=source``) and by the
  server sidecar (``reporter=destination``) under the same ``x-request-id`` spent
  ``source - destination`` on the way between the two sidecars and back, so one hop is half of
  it;
* **service time** of an endpoint: the server sidecar's duration minus the time the app spent
  waiting on its own downstream calls (the client-side records that carry the same request id
  and leave from that app), i.e. the app's own work.

Envoy's ``%DURATION%`` has millisecond resolution, so sub-millisecond parameters come out
quantized; the medians of many samples are still usable, and the fit says how many it used.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mesh.app import AppBehavior
from mesh.metrics import percentile
from mesh.records import Reporter, RequestRecord

__all__ = ["Calibration", "calibrate", "write_calibration"]

MIN_SAMPLES = 20


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted lognormal: median and p99 in milliseconds, from ``samples`` values."""

    median_ms: float
    p99_ms: float
    samples: int

    def yaml(self) -> str:
        """``{median: 0.4ms, p99: 1.5ms}``"""
        return f"{{median: {_ms(self.median_ms)}, p99: {_ms(max(self.p99_ms, self.median_ms))}}}"


def _ms(value: float) -> str:
    return f"{max(value, 0.01):.2f}".rstrip("0").rstrip(".") + "ms"


@dataclass
class Calibration:
    """The fitted hop latency and service times per (service, route)."""

    hop: Fit | None = None
    service_times: dict[tuple[str, str], Fit] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the CLI."""
        hop = (
            f"hop {self.hop.yaml()} (n={self.hop.samples})" if self.hop else "hop: too few samples"
        )
        return f"{hop}; {len(self.service_times)} endpoint service times"


def _fit(values: list[float]) -> Fit | None:
    if len(values) < MIN_SAMPLES:
        return None
    return Fit(percentile(values, 50), percentile(values, 99), len(values))


def calibrate(records: Iterable[RequestRecord], behavior: AppBehavior) -> Calibration:
    """Fit hop latency and endpoint service times from one run's records."""
    records = list(records)
    dest: dict[tuple[str, str, str], RequestRecord] = {}
    calls: dict[tuple[str, str], float] = defaultdict(float)
    for r in records:
        if r.reporter is Reporter.DESTINATION:
            dest[(r.request_id, r.destination_service, r.path)] = r
        elif r.request_id:
            calls[(r.request_id, r.source_app)] += r.duration_ms
    hops = [
        (r.duration_ms - d.duration_ms) / 2.0
        for r in records
        if r.reporter is Reporter.SOURCE and r.attempts <= 1
        and (d := dest.get((r.request_id, r.destination_service, r.path))) is not None
    ]  # fmt: skip
    own: dict[tuple[str, str], list[float]] = defaultdict(list)
    for d in dest.values():
        service = behavior.service(d.destination_service_name)
        if service is None or not d.ok:
            continue
        endpoint = service.endpoint(d.method, d.path, d.destination_version)
        if endpoint is None:
            continue
        waited = calls.get((d.request_id, d.destination_app), 0.0)
        own[(service.name, endpoint.route)].append(max(d.duration_ms - waited, 0.0))
    fits = {key: fit for key, values in own.items() if (fit := _fit(values)) is not None}
    return Calibration(hop=_fit(hops), service_times=fits)


_SERVICE = re.compile(r"^\s*- name: (\S+)\s*$")
_ROUTE = re.compile(r"^\s*- route: (.+?)\s*$")
_VERSIONS = re.compile(r"^\s*versions:\s*$")
_HOP = re.compile(r"^(\s*hopLatency: ).*$")
_TIME = re.compile(r"^(\s*serviceTime: ).*$")


def write_calibration(path: Path, fit: Calibration) -> int:
    """Rewrite ``hopLatency`` and the base endpoints' ``serviceTime`` lines of a behavior.yaml
    in place (comments and layout are kept); returns how many values changed."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    service = route = ""
    in_versions = False
    changed = 0
    for i, line in enumerate(lines):
        if m := _SERVICE.match(line):
            service, route, in_versions = m.group(1), "", False
        elif _VERSIONS.match(line):
            in_versions = True
        elif m := _ROUTE.match(line):
            route = m.group(1)
        elif (m := _HOP.match(line)) and fit.hop is not None:
            lines[i] = f"{m.group(1)}{fit.hop.yaml()}\n"
            changed += 1
        elif (m := _TIME.match(line)) and not in_versions:
            got = fit.service_times.get((service, route))
            if got is not None:
                lines[i] = f"{m.group(1)}{got.yaml()}\n"
                changed += 1
    path.write_text("".join(lines), encoding="utf-8")
    return changed
