"""A Prometheus for the fake cluster: a real one, over what the fake proxies logged.

A cluster's Prometheus holds what it scraped from the sidecars' ``istio.stats`` counters. The
fake cluster has no sidecars; its data plane (:class:`~tests.cluster.kube.dataplane.SimDataPlane`)
writes each simulated request into a proxy's log at a wall-clock time. This builds a real TSDB
of those requests on that same wall-clock axis (counters sampled every second, as
:mod:`mesh.observe.openmetrics` does for ``sim``) and serves it with a real Prometheus, so the
kube runner's PromQL questions, asked through the fake API server's service proxy at real
epoch times, get real PromQL answers. The TSDB is rebuilt when the proxies logged more.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster.tsdb import RecordsTSDB
from mesh.observe.openmetrics import StepData, StepWindow
from tests.cluster.kube.dataplane import SimDataPlane

__all__ = ["RecordedPrometheus"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RecordedPrometheus:
    """``FakeKube.prometheus_http``: answers every Prometheus API path from a real Prometheus
    serving a TSDB of ``plane.logged`` (call :meth:`close` to stop it)."""

    def __init__(self, plane: SimDataPlane, workdir: Path) -> None:
        self.plane = plane
        self.tsdb = RecordsTSDB(workdir)
        self.built = -1
        self.lock = threading.Lock()

    def _build(self) -> None:
        with self.plane.lock:
            records = list(self.plane.logged)
        if len(records) == self.built and self.tsdb.client is not None:
            return
        if not records:
            origin = end = 0.0
        else:
            origin = math.floor(min(r.start_time for r in records)) - 1.0
            end = math.ceil(max(r.start_time + r.duration_ms / 1000 for r in records)) + 2.0
        moved = tuple(replace(r, start_time=r.start_time - origin) for r in records)
        window = StepWindow(0, origin, origin, end)
        self.tsdb.build([StepData(0, moved, end - origin)], windows=[window])
        self.built = len(records)

    def __call__(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            self._build()
            assert self.tsdb.client is not None
            url = self.tsdb.client.url
        params = urllib.parse.urlencode([(k, v) for k, values in query.items() for v in values])
        try:
            with _OPENER.open(f"{url}{path}?{params}", timeout=10) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # bad PromQL: Prometheus' own error object
            answer = json.loads(exc.read())
        return answer

    def close(self) -> None:
        """Stop Prometheus."""
        self.tsdb.close()
