"""One client proxy's view of one cluster: hosts, load balancer, circuit breakers, outlier detection.

Everything here is per client proxy, as in Envoy: each sidecar has its own connection pools,
its own circuit-breaker counters and its own outlier detector, so one sidecar can eject a host
that another still uses.

* Circuit breakers and connection pools: :mod:`sim.connpool` (``ClusterRuntime.pool``).
* Outlier detection: :mod:`sim.outlier` (``ClusterRuntime.detector``), Envoy's per-cluster
  detector, carried across lesson steps while CDS leaves the cluster unchanged.
* Panic threshold: when the healthy share falls below it, Envoy balances over all hosts; Istio
  sets it to 0 with outlier detection, so then an all-ejected cluster answers 503 ``UH``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.connpool import ConnPool, PoolStats
from sim.hosts import HostOutlier, HostState
from sim.lb import by_locality_weight, by_priority, pick_hashed, pick_weighted
from sim.outlier import (
    OutlierDetector,
    OutlierState,
    cluster_config,
    forget_outlier,
)
from sim.pool_timing import MTLS_CONNECT, Delay, Paired, Sampled
from sim.xds import ClusterSpec

__all__ = ["ClusterRuntime", "HostOutlier", "HostState", "OutlierState", "Pick"]


@dataclass(slots=True)
class Pick:
    """A load-balancing decision and why (for ``explain``)."""

    host: HostState | None
    reason: str
    panic: bool = False


UNLIMITED = 2**32 - 1
"""What istiod writes for every circuit-breaker threshold a DestinationRule leaves unset."""


def sized_pool(spec: ClusterSpec) -> bool:
    """Whether this cluster's pool is sized: a threshold below istiod's 2^32-1 (a
    DestinationRule's ``connectionPool``, or Envoy's own 1024 on a cluster written without
    ``circuit_breakers``), or ``maxRequestsPerConnection``. Only then can the moment a request
    reaches the pool, or the time a connection takes to open, decide a 503 ``UO``: such pools
    are timed exactly (each connection's setup drawn, the decision when the request arrives at
    the sidecar); the others keep the cheaper fixed model, which only shifts the latency of a
    connection's first request."""
    t = spec.thresholds
    smallest = min(t.max_connections, t.max_pending_requests, t.max_requests)
    return spec.max_requests_per_connection > 0 or smallest < UNLIMITED


@dataclass(slots=True)
class ClusterRuntime:
    """Mutable state of one cluster in one client proxy."""

    spec: ClusterSpec
    env: simpy.Environment
    rng: random.Random
    hosts: list[HostState] = field(default_factory=list)
    pool_stats: PoolStats = field(default_factory=PoolStats)
    pool: ConnPool = field(init=False)
    locality_sizes: dict[str, int] = field(init=False)
    """Endpoints per locality (a locality's availability is its healthy share of these)."""
    retries_active: int = 0
    rr_next: int = 0
    rr_credit: dict[str, int] = field(default_factory=dict)
    """Weighted round robin's running credit per host (smooth weighted round robin)."""
    detector: OutlierDetector = field(init=False)
    """The cluster's outlier detector (:mod:`sim.outlier`)."""
    cx_connect_fail: int = 0
    connect: Delay | Sampled = MTLS_CONNECT
    """A new mTLS connection's set-up on a sized pool (``PoolTiming.connect``)."""
    reconnect: Paired | None = None
    """``PoolTiming.reconnect``."""

    @classmethod
    def create(
        cls,
        spec: ClusterSpec,
        env: simpy.Environment,
        rng: random.Random,
        connect: Delay | Sampled = MTLS_CONNECT,
        reconnect: Paired | None = None,
    ) -> ClusterRuntime:
        """Fresh state for a cluster (no requests in flight, nothing ejected)."""
        hosts = [HostState(e) for e in spec.endpoints]
        return cls(spec, env, rng, hosts, connect=connect, reconnect=reconnect)

    def __post_init__(self) -> None:
        self.pool = self._new_pool()
        self.locality_sizes = _locality_sizes(self.spec)
        self.detector = OutlierDetector(self.spec.outlier, self.env.now)

    @property
    def ejected_hosts(self) -> int:
        """Hosts ejected now (as of the last sweep this runtime looked at)."""
        return self.detector.ejected_hosts

    @property
    def ejections_total(self) -> int:
        """Envoy's ``outlier_detection.ejections_enforced_total``."""
        return self.detector.ejections_total

    def _new_pool(self) -> ConnPool:
        spec = self.spec
        sized = sized_pool(spec)
        return ConnPool(
            self.env,
            spec.thresholds,
            spec.max_requests_per_connection,
            self.pool_stats,
            connect=self.connect if sized else None,
            rng=self.rng if sized else None,
            reconnect=self.reconnect if sized else None,
        )

    def update(self, spec: ClusterSpec) -> None:
        """New config for the same cluster (a mid-run apply): keep the state of kept hosts.
        A change beyond the endpoints is a new cluster in Envoy: fresh connection pools and
        circuit-breaker counters, while the old pools drain, and a fresh outlier detector
        (every host healthy, its sweeps starting now)."""
        old = {h.key: h for h in self.hosts}
        if cluster_config(spec) != cluster_config(self.spec):
            self.pool.drain()
            self.spec = spec
            self.pool = self._new_pool()
            for h in old.values():
                forget_outlier(h)
            self.detector = OutlierDetector(spec.outlier, self.env.now)
        self.spec = spec
        self.locality_sizes = _locality_sizes(spec)
        self.hosts = [old.get(e.host) or HostState(e) for e in spec.endpoints]
        for h, e in zip(self.hosts, spec.endpoints, strict=True):
            h.endpoint = e
        self.detector.ejected_hosts = sum(h.ejected for h in self.hosts)

    def outlier_state(self, now: float) -> OutlierState | None:
        """The outlier detector as it stands at ``now``, times relative to ``now``; None when
        the cluster has no outlier detection."""
        if self.spec.outlier is None:
            return None
        return self.detector.state(self.spec, self.hosts, now)

    def restore_outlier(self, state: OutlierState) -> bool:
        """Take over ``state`` if it belongs to this very cluster config (see
        :meth:`sim.outlier.OutlierDetector.restore`)."""
        return self.detector.restore(state, self.spec, self.hosts, self.env.now)

    def retry_allowed(self) -> bool:
        """``max_retries``: whether another retry may be in flight."""
        return self.retries_active < self.spec.thresholds.max_retries

    def is_ejected(self, h: HostState, now: float) -> bool:
        """Whether the outlier detector has ``h`` ejected at ``now``."""
        return self.detector.is_ejected(h, now)

    def record_outcome(self, h: HostState, status: int, local_failure: bool) -> bool:
        """Feed one attempt's outcome to the outlier detector; True when it ejected the host."""
        return self.detector.record_outcome(h, status, local_failure, self.hosts, self.env.now)

    # -- load balancing ---------------------------------------------------------------------

    def available(self, now: float) -> tuple[list[HostState], bool]:
        """(hosts to balance over, panic?) for the best usable priority (and, with
        locality-weighted load balancing, the locality drawn by weight)."""
        hosts, panic = self._available(now)
        if self.spec.locality_weighted and hosts:
            hosts = by_locality_weight(hosts, self.locality_sizes, self.rng)
        return hosts, panic

    def _available(self, now: float) -> tuple[list[HostState], bool]:
        hosts = self.hosts
        if self.detector.ejected_hosts == 0 and len(self.spec.priorities) <= 1:
            return hosts, False
        if self.spec.outlier is None:
            candidates = hosts
        else:
            candidates = [h for h in hosts if not self.is_ejected(h, now)]
        if len(self.spec.priorities) > 1:
            return by_priority(self.spec.priorities, self.hosts, candidates, self.rng)
        if len(candidates) == len(hosts):
            return candidates, False
        threshold = self.spec.panic_threshold
        if threshold > 0 and hosts and 100.0 * len(candidates) / len(hosts) < threshold:
            return hosts, True
        return candidates, False

    def choose(self, hash_key: int | None, avoid: set[str] | None, attempts: int) -> Pick:
        """Pick a host (``avoid`` = previous hosts, re-drawn up to ``attempts`` times)."""
        hosts, panic = self.available(self.env.now)
        if not hosts:
            if not self.hosts:
                return Pick(None, "the cluster has no endpoints")
            backs = [self.detector.back_at(h) - self.env.now for h in self.hosts if h.ejected]
            when = (
                f" (the first comes back in {min(backs):.1f} s, at an outlier-detection sweep)"
                if backs
                else ""
            )
            return Pick(None, "every endpoint is ejected and panic mode is off" + when)
        policy = self.spec.lb_policy
        tries = max(1, attempts) if avoid else 1
        h = hosts[0]
        for _ in range(tries):
            h = self._pick(policy, hosts, hash_key)
            if not avoid or h.key not in avoid:
                break
        reason = _REASONS.get(policy, policy)
        if self.spec.weighted and policy in _WEIGHTED:
            reason = _WEIGHTED_REASONS[policy]
        if panic:
            reason += " (panic: fewer healthy hosts than the panic threshold, all hosts used)"
        return Pick(h, reason, panic)

    def pick_host(
        self, hash_key: int | None, avoid: set[str] | None, attempts: int
    ) -> HostState | None:
        """:meth:`choose` without the reasons (the router's path when nobody traces)."""
        if (
            self.detector.ejected_hosts == 0
            and len(self.spec.priorities) <= 1
            and not self.spec.locality_weighted
        ):
            hosts = self.hosts
        else:
            hosts = self.available(self.env.now)[0]
        if not hosts:
            return None
        policy = self.spec.lb_policy
        if not avoid:
            return self._pick(policy, hosts, hash_key)
        h = hosts[0]
        for _ in range(max(1, attempts)):
            h = self._pick(policy, hosts, hash_key)
            if h.key not in avoid:
                break
        return h

    def _pick(self, policy: str, hosts: list[HostState], hash_key: int | None) -> HostState:
        n = len(hosts)
        if n == 1:
            return hosts[0]
        if self.spec.weighted and policy in _WEIGHTED:
            return pick_weighted(policy, hosts, self.rr_credit, self.rng)
        if policy == "LEAST_REQUEST":  # lb.p2c, inlined
            rng = self.rng
            a = hosts[rng.randrange(n)]
            b = hosts[rng.randrange(n)]
            return b if b.active < a.active else a
        if policy == "ROUND_ROBIN":
            i = self.rr_next % n
            self.rr_next += 1
            return hosts[i]
        if policy in ("RING_HASH", "MAGLEV"):
            keys = tuple(h.key for h in hosts)
            i = pick_hashed(
                policy,
                keys,
                hash_key,
                ring_size=self.spec.ring_size,
                maglev_size=self.spec.maglev_size,
                rng=self.rng,
            )
            return hosts[i]
        return hosts[self.rng.randrange(n)]

    @property
    def envoy_stats(self) -> dict[str, int]:
        """This cluster's counters under Envoy's ``cluster.<name>.*`` stat names (a fresh copy).

        One HTTP/1.1 connection carries one request at a time and is kept alive for the next
        one unless ``max_requests_per_connection`` is 1 (or the stream was reset / timed out),
        so ``upstream_cx_total`` grows by one per request only in that case."""
        st = self.pool_stats
        return {
            "upstream_cx_total": st.cx_total,
            "upstream_cx_active": st.cx_total - st.cx_destroy,
            "upstream_cx_destroy": st.cx_destroy,
            "upstream_cx_connect_fail": self.cx_connect_fail,
            "upstream_cx_overflow": st.cx_overflow,
            "upstream_rq_total": sum(h.requests for h in self.hosts),
            "upstream_rq_pending_overflow": st.rq_pending_overflow,
            "outlier_detection.ejections_enforced_total": self.ejections_total,
        }

    def stats(self) -> dict[str, Any]:
        """Counters for ``explain`` and tests."""
        return {
            "active": self.pool.active,
            "pending": self.pool.pending,
            "overflows": self.pool_stats.rq_pending_overflow,
            "ejections": self.ejections_total,
        }


def _locality_sizes(spec: ClusterSpec) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for e in spec.endpoints:
        sizes[e.locality] = sizes.get(e.locality, 0) + 1
    return sizes


_WEIGHTED = frozenset({"LEAST_REQUEST", "ROUND_ROBIN", "RANDOM"})
"""The policies whose choice honours ``load_balancing_weight`` (hash policies place hosts on
the ring/table instead)."""

_WEIGHTED_REASONS = {
    "LEAST_REQUEST": "LEAST_REQUEST over unequal weights: drawn by weight / (active requests + 1)",
    "ROUND_ROBIN": "ROUND_ROBIN over unequal weights: smooth weighted round robin",
    "RANDOM": "RANDOM over unequal weights: drawn by weight",
}

_REASONS = {
    "LEAST_REQUEST": "LEAST_REQUEST: two random hosts drawn, the one with fewer active requests kept",
    "ROUND_ROBIN": "ROUND_ROBIN: next host in turn",
    "RANDOM": "RANDOM: uniform choice",
    "RING_HASH": "RING_HASH: first ring point clockwise of the request's hash",
    "MAGLEV": "MAGLEV: the Maglev table slot of the request's hash",
}
