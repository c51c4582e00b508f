"""The fake cluster's wall clock.

On a real cluster a load generator that sends ten seconds of traffic runs for ten seconds, and
every access-log line it causes is stamped at or before the moment the generator reports
``done``. The fake cluster's data plane (:class:`~tests.cluster.kube.dataplane.SimDataPlane`)
simulates the same traffic at once, so its cluster's clock moves forward by the traffic's
duration instead: :meth:`ClusterClock.run` is what the generator pod's running costs. The kube
runner's executor reads that clock (``cluster_time`` stands in for its ``time`` module in the
tests), so what it sees is what it would see on a real cluster: the step's records all in the
past when the generator is done, then its own wait for Prometheus to scrape (``scrape_s``), in
real time. Nothing is ever stamped ahead of the cluster's clock.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

__all__ = ["ClusterClock"]


class ClusterClock:
    """Epoch time on the fake cluster: the machine's, plus the simulated traffic run so far."""

    def __init__(self) -> None:
        self._ahead = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """Now on the cluster (epoch seconds)."""
        with self._lock:
            return time.time() + self._ahead

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of cluster time pass at once (simulated traffic being sent)."""
        with self._lock:
            self._ahead += max(seconds, 0.0)

    @property
    def module(self) -> SimpleNamespace:
        """A stand-in for the ``time`` module whose ``time()`` is this clock (sleeping and
        monotonic time stay the machine's)."""
        return SimpleNamespace(time=self.time, sleep=time.sleep, monotonic=time.monotonic)
