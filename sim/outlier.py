"""Envoy's outlier detector for one cluster in one client proxy.

Per host, consecutive 5xx (and consecutive gateway errors 502/503/504; local connect failures
and timeouts count as both) eject the host *immediately* when the threshold is reached, unless
the ejected hosts would then exceed ``max_ejection_percent`` of the cluster's hosts. Envoy's "at
least one host" allowance (``always_eject_one_host``) is off unless set, and istiod never sets
it: with the default 10 %, a cluster of fewer than 10 hosts ejects nothing (verified on Envoy
1.40: two pods, one timing out, no ``maxEjectionPercent``). The ejection lasts
``base_ejection_time x k``, capped at ``max_ejection_time``, and ends at the first ``interval``
sweep after that. ``k`` is Envoy's ejection back-off: one more per ejection (while ``k x base``
is below ``max + base``), one less per sweep that finds the host healthy at least an interval
after it came back. Nothing but that sweep brings a host back: a pod that is up again stays
ejected until its time is served (Istio configures no active health check).

A long-running Envoy keeps each cluster's detector for as long as CDS leaves the cluster
unchanged: :meth:`OutlierDetector.state` and :meth:`OutlierDetector.restore` carry it from one
lesson step's world into the next (``sim.runner``); a changed cluster gets a fresh one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sim.hosts import HostOutlier, HostState
from sim.xds import ClusterSpec, OutlierSpec

__all__ = ["OutlierDetector", "OutlierState", "cluster_config", "forget_outlier"]


@dataclass(frozen=True, slots=True)
class OutlierState:
    """One cluster's outlier detector in one proxy, as a long-running Envoy keeps it between
    the steps of a lesson: which cluster config it belongs to, the phase of its ``interval``
    sweeps and each host's state (by ``address:port``), times relative to when it was taken."""

    config: ClusterSpec
    """The cluster without its endpoints (:func:`cluster_config`): the detector carries over
    only to the same cluster, as Envoy keeps it only while CDS leaves the cluster unchanged."""
    created: float
    hosts: tuple[tuple[str, HostOutlier], ...]


def cluster_config(spec: ClusterSpec) -> ClusterSpec:
    """``spec`` without what its endpoints (EDS) decide: equal for two versions of one Envoy
    cluster that CDS left unchanged."""
    return replace(spec, endpoints=(), priorities=(0,), weighted=False)


def forget_outlier(h: HostState) -> None:
    """A fresh detector's view of ``h`` (Envoy replaced the cluster)."""
    h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
    h.ejected = False
    h.ejected_until = 0.0
    h.ejections = 0
    h.last_unejection = None


@dataclass(slots=True)
class OutlierDetector:
    """The detector of one cluster: its config (None: no outlier detection), when it was
    created (the phase of its sweeps), and its counters."""

    config: OutlierSpec | None
    created: float
    ejected_hosts: int = 0
    ejections_total: int = 0
    """Envoy's ``outlier_detection.ejections_enforced_total``."""

    def is_ejected(self, h: HostState, now: float) -> bool:
        """Ejected until the first sweep after its ejection time has passed (that sweep brings
        it back and resets its consecutive-error counters)."""
        if not h.ejected:
            return False
        back = self.back_at(h)
        if now < back:
            return True
        h.ejected = False
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        self.ejected_hosts -= 1
        h.last_unejection = back
        return False

    def back_at(self, h: HostState) -> float:
        """The sweep that ends ``h``'s ejection: the first once its time is served."""
        interval = self.config.interval if self.config is not None else 10.0
        sweeps = max(1, math.ceil((h.ejected_until - self.created) / interval - 1e-9))
        return self.created + sweeps * interval

    def record_outcome(
        self, h: HostState, status: int, local_failure: bool, hosts: Sequence[HostState], now: float
    ) -> bool:
        """Feed one attempt's outcome to the detector; True when it ejected the host."""
        od = self.config
        if od is None:
            return False
        if local_failure and od.split_external_local_origin_errors:
            h.consecutive_local += 1
            if h.consecutive_local >= od.consecutive_local_origin_failure:
                return self._eject(h, hosts, now)
            return False
        if local_failure or status >= 500:
            h.consecutive_5xx += 1
            if local_failure or status in (502, 503, 504):
                h.consecutive_gateway += 1
            else:
                h.consecutive_gateway = 0
            if od.enforcing_consecutive_5xx and h.consecutive_5xx >= od.consecutive_5xx > 0:
                return self._eject(h, hosts, now)
            if (
                od.enforcing_consecutive_gateway_failure
                and h.consecutive_gateway >= od.consecutive_gateway_failure > 0
            ):
                return self._eject(h, hosts, now)
            return False
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        return False

    def _eject(self, h: HostState, hosts: Sequence[HostState], now: float) -> bool:
        od = self.config
        assert od is not None
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        if self.is_ejected(h, now):
            return False
        ejected = sum(1 for x in hosts if self.is_ejected(x, now))
        if 100.0 * (ejected + 1) / len(hosts) > od.max_ejection_percent:
            return False  # Envoy's ejectHost: the share ejected after this one must fit
        if h.ejections and h.last_unejection is not None:
            h.ejections = max(0, h.ejections - self._healthy_sweeps(h.last_unejection, now))
        base, most = od.base_ejection_time, od.max_ejection_time
        if h.ejections * base < most + base:
            h.ejections += 1
        h.ejected = True
        h.ejected_until = now + min(base * h.ejections, most)
        self.ejections_total += 1
        self.ejected_hosts += 1
        return True

    def _healthy_sweeps(self, back: float, now: float) -> int:
        """The sweeps after ``back`` (a sweep), up to ``now``, that each take one off a
        healthy host's back-off: every one at least an interval after it came back."""
        od = self.config
        assert od is not None
        return max(0, math.floor((now - back) / od.interval + 1e-9))

    def state(self, spec: ClusterSpec, hosts: Sequence[HostState], now: float) -> OutlierState:
        """The detector as it stands at ``now`` (the sweeps due by then done), times relative
        to ``now``."""
        for h in hosts:
            self.is_ejected(h, now)
        return OutlierState(
            cluster_config(spec),
            self.created - now,
            tuple((h.key, h.outlier(now)) for h in hosts),
        )

    def restore(
        self, state: OutlierState, spec: ClusterSpec, hosts: Sequence[HostState], now: float
    ) -> bool:
        """Take over ``state`` (taken when this world's clock read 0) if it belongs to this
        very cluster config; False (a fresh detector) when CDS changed the cluster."""
        if self.config is None or state.config != cluster_config(spec):
            return False
        self.created = now + state.created
        kept = dict(state.hosts)
        for h in hosts:
            o = kept.get(h.key)
            if o is None:
                continue
            h.consecutive_5xx = o.consecutive_5xx
            h.consecutive_gateway = o.consecutive_gateway
            h.consecutive_local = o.consecutive_local
            h.ejected = o.ejected
            h.ejected_until = now + o.ejected_until
            h.ejections = o.ejections
            h.last_unejection = None if o.last_unejection is None else now + o.last_unejection
        self.ejected_hosts = sum(h.ejected for h in hosts)
        return True
