"""One client proxy's view of one cluster: hosts, load balancer, circuit breakers, outlier detection.

Everything here is per client proxy, as in Envoy: each sidecar has its own connection pools,
its own circuit-breaker counters and its own outlier detector, so one sidecar can eject a host
that another still uses.

* Circuit breakers and connection pools: :mod:`sim.connpool` (``ClusterRuntime.pool``).
* Outlier detection: per host, consecutive 5xx (and consecutive gateway errors 502/503/504;
  local connect failures and timeouts count as both) eject the host *immediately* when the
  threshold is reached, unless the ejected hosts would then exceed ``max_ejection_percent`` of the
  cluster's hosts. Envoy's "at least one host" allowance (``always_eject_one_host``) is off unless
  set, and istiod never sets it: with the default 10 %, a cluster of fewer than 10 hosts ejects
  nothing (verified on Envoy 1.40: two pods, one timing out, no ``maxEjectionPercent``). The
  ejection lasts ``base_ejection_time x k``, capped at ``max_ejection_time``, and ends at the
  first ``interval`` sweep after that. ``k`` is Envoy's ejection back-off: one more per ejection
  (while ``k x base`` is below ``max + base``), one less per sweep that finds the host healthy
  at least an interval after it came back. Nothing but that sweep brings a host back: a pod that
  is up again stays ejected until its time is served (Istio configures no active health check).
* A long-running Envoy keeps each cluster's outlier detector for as long as the cluster is
  unchanged: :meth:`ClusterRuntime.outlier_state` and :meth:`ClusterRuntime.restore_outlier`
  carry it from one lesson step's world into the next (``sim.runner``). A CDS update that
  changes the cluster replaces it in Envoy, with a new detector: every host healthy again
  (verified on Envoy 1.40, ``cluster_manager.cluster_modified``: an ejected host was healthy
  after a push that changed ``connect_timeout``, and still ejected after a push of the same
  cluster). An endpoint change (EDS) keeps the cluster and the state of the hosts it keeps.
* Panic threshold: when the healthy share falls below it, Envoy balances over all hosts; Istio
  sets it to 0 with outlier detection, so then an all-ejected cluster answers 503 ``UH``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

import simpy

from sim.connpool import MTLS_CONNECT, ConnPool, Delay, Paired, PoolStats, Sampled
from sim.lb import pick_hashed
from sim.xds import ClusterSpec, EndpointSpec

__all__ = ["ClusterRuntime", "HostOutlier", "HostState", "OutlierState", "Pick"]


@dataclass(slots=True, eq=False)
class HostState:
    """One upstream host as this client proxy tracks it."""

    endpoint: EndpointSpec
    active: int = 0
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    consecutive_local: int = 0
    ejected: bool = False
    ejected_until: float = 0.0
    """When the ejection's time is served (the host comes back at the next sweep)."""
    ejections: int = 0
    """Envoy's ejection back-off ``k``: the ejection lasts ``base_ejection_time x k``."""
    last_unejection: float | None = None
    """The sweep that brought the host back (None: never ejected)."""
    requests: int = 0
    key: str = ""
    """``address:port`` (the endpoint's ``%UPSTREAM_HOST%``)."""

    def __post_init__(self) -> None:
        self.key = self.endpoint.host

    def outlier(self, at: float) -> HostOutlier:
        """This host's detector state, times relative to ``at``."""
        return HostOutlier(
            self.consecutive_5xx,
            self.consecutive_gateway,
            self.consecutive_local,
            self.ejected,
            self.ejected_until - at,
            self.ejections,
            None if self.last_unejection is None else self.last_unejection - at,
        )


@dataclass(frozen=True, slots=True)
class HostOutlier:
    """One host's outlier-detection state, times relative to the moment it was taken."""

    consecutive_5xx: int
    consecutive_gateway: int
    consecutive_local: int
    ejected: bool
    ejected_until: float
    ejections: int
    last_unejection: float | None


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
    created: float = 0.0
    ejections_total: int = 0
    ejected_hosts: int = 0
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
        return cls(spec, env, rng, hosts, created=env.now, connect=connect, reconnect=reconnect)

    def __post_init__(self) -> None:
        self.pool = self._new_pool()
        self.locality_sizes = _locality_sizes(self.spec)

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
                _forget_outlier(h)
            self.ejected_hosts = 0
            self.created = self.env.now
        self.spec = spec
        self.locality_sizes = _locality_sizes(spec)
        self.hosts = [old.get(e.host) or HostState(e) for e in spec.endpoints]
        for h, e in zip(self.hosts, spec.endpoints, strict=True):
            h.endpoint = e
        self.ejected_hosts = sum(h.ejected for h in self.hosts)

    def outlier_state(self, now: float) -> OutlierState | None:
        """The outlier detector as it stands at ``now`` (the sweeps due by then done), times
        relative to ``now``; None when the cluster has no outlier detection."""
        if self.spec.outlier is None:
            return None
        for h in self.hosts:
            self.is_ejected(h, now)
        return OutlierState(
            cluster_config(self.spec),
            self.created - now,
            tuple((h.key, h.outlier(now)) for h in self.hosts),
        )

    def restore_outlier(self, state: OutlierState) -> bool:
        """Take over ``state`` (taken when this world's clock read 0) if it belongs to this
        very cluster config; False (a fresh detector) when CDS changed the cluster."""
        if self.spec.outlier is None or state.config != cluster_config(self.spec):
            return False
        now = self.env.now
        self.created = now + state.created
        kept = dict(state.hosts)
        for h in self.hosts:
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
        self.ejected_hosts = sum(h.ejected for h in self.hosts)
        return True

    def retry_allowed(self) -> bool:
        """``max_retries``: whether another retry may be in flight."""
        return self.retries_active < self.spec.thresholds.max_retries

    # -- outlier detection ------------------------------------------------------------------

    def is_ejected(self, h: HostState, now: float) -> bool:
        """Ejected until the first sweep after its ejection time has passed (that sweep brings
        it back and resets its consecutive-error counters)."""
        if not h.ejected:
            return False
        back = self._back_at(h)
        if now < back:
            return True
        h.ejected = False
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        self.ejected_hosts -= 1
        h.last_unejection = back
        return False

    def _back_at(self, h: HostState) -> float:
        """The sweep that ends ``h``'s ejection: the first once its time is served."""
        od = self.spec.outlier
        interval = od.interval if od is not None else 10.0
        sweeps = max(1, math.ceil((h.ejected_until - self.created) / interval - 1e-9))
        return self.created + sweeps * interval

    def record_outcome(self, h: HostState, status: int, local_failure: bool) -> bool:
        """Feed one attempt's outcome to the outlier detector; True when it ejected the host."""
        od = self.spec.outlier
        if od is None:
            return False
        if local_failure and od.split_external_local_origin_errors:
            h.consecutive_local += 1
            if h.consecutive_local >= od.consecutive_local_origin_failure:
                return self._eject(h)
            return False
        if local_failure or status >= 500:
            h.consecutive_5xx += 1
            if local_failure or status in (502, 503, 504):
                h.consecutive_gateway += 1
            else:
                h.consecutive_gateway = 0
            if od.enforcing_consecutive_5xx and h.consecutive_5xx >= od.consecutive_5xx > 0:
                return self._eject(h)
            if (
                od.enforcing_consecutive_gateway_failure
                and h.consecutive_gateway >= od.consecutive_gateway_failure > 0
            ):
                return self._eject(h)
            return False
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        return False

    def _eject(self, h: HostState) -> bool:
        od = self.spec.outlier
        assert od is not None
        now = self.env.now
        h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
        if self.is_ejected(h, now):
            return False
        ejected = sum(1 for x in self.hosts if self.is_ejected(x, now))
        if 100.0 * (ejected + 1) / len(self.hosts) > od.max_ejection_percent:
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
        od = self.spec.outlier
        assert od is not None
        return max(0, math.floor((now - back) / od.interval + 1e-9))

    # -- load balancing ---------------------------------------------------------------------

    def available(self, now: float) -> tuple[list[HostState], bool]:
        """(hosts to balance over, panic?) for the best usable priority (and, with
        locality-weighted load balancing, the locality drawn by weight)."""
        hosts, panic = self._available(now)
        if self.spec.locality_weighted and hosts:
            hosts = self._by_locality_weight(hosts)
        return hosts, panic

    def _by_locality_weight(self, usable: list[HostState]) -> list[HostState]:
        """Envoy's locality-weighted choice: each locality's ``load_balancing_weight`` times its
        availability (healthy share x 1.4, at most 1); then the LB policy picks inside it."""
        groups: dict[str, list[HostState]] = {}
        for h in usable:
            if h.endpoint.locality_weight > 0:
                groups.setdefault(h.endpoint.locality, []).append(h)
        if not groups:
            return usable
        totals = self.locality_sizes
        weighted = [
            (hs[0].endpoint.locality_weight * min(1.0, 1.4 * len(hs) / totals[loc]), hs)
            for loc, hs in sorted(groups.items())
        ]
        r = self.rng.random() * sum(w for w, _ in weighted)
        for w, hs in weighted:
            if r < w:
                return hs
            r -= w
        return weighted[-1][1]

    def _available(self, now: float) -> tuple[list[HostState], bool]:
        hosts = self.hosts
        if self.ejected_hosts == 0 and len(self.spec.priorities) <= 1:
            return hosts, False
        if self.spec.outlier is None:
            candidates = hosts
        else:
            candidates = [h for h in hosts if not self.is_ejected(h, now)]
        if len(self.spec.priorities) > 1:
            return self._by_priority(candidates)
        if len(candidates) == len(hosts):
            return candidates, False
        threshold = self.spec.panic_threshold
        if threshold > 0 and hosts and 100.0 * len(candidates) / len(hosts) < threshold:
            return hosts, True
        return candidates, False

    def _by_priority(self, healthy: list[HostState]) -> tuple[list[HostState], bool]:
        """Priority spill-over with Envoy's 1.4 overprovisioning factor."""
        loads = []
        remaining = 100.0
        for p in self.spec.priorities:
            total = [h for h in self.hosts if h.endpoint.priority == p]
            ok = [h for h in healthy if h.endpoint.priority == p]
            health = min(100.0, 140.0 * len(ok) / len(total)) if total else 0.0
            share = min(remaining, health)
            loads.append((share, ok))
            remaining -= share
        total_load = sum(s for s, _ in loads)
        if total_load <= 0:
            return [], False
        r = self.rng.random() * total_load
        for share, ok in loads:
            if r < share:
                return ok, False
            r -= share
        return loads[-1][1], False

    def choose(self, hash_key: int | None, avoid: set[str] | None, attempts: int) -> Pick:
        """Pick a host (``avoid`` = previous hosts, re-drawn up to ``attempts`` times)."""
        hosts, panic = self.available(self.env.now)
        if not hosts:
            if not self.hosts:
                return Pick(None, "the cluster has no endpoints")
            backs = [self._back_at(h) - self.env.now for h in self.hosts if h.ejected]
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
            self.ejected_hosts == 0
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
            return self._pick_weighted(policy, hosts)
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

    def _pick_weighted(self, policy: str, hosts: list[HostState]) -> HostState:
        """Hosts of unequal ``load_balancing_weight`` (e.g. an east-west gateway standing for
        several remote pods): Envoy's weighted schedulers. ``ROUND_ROBIN`` is its earliest
        deadline first over the weights (smooth: each host's share exact over a cycle);
        ``LEAST_REQUEST`` weighs each host by ``weight / (active + 1)`` (Envoy's default
        ``active_request_bias`` 1.0), drawn at random here; ``RANDOM`` by weight."""
        if policy == "ROUND_ROBIN":
            credit = self.rr_credit
            total = 0
            best = hosts[0]
            for h in hosts:
                credit[h.key] = credit.get(h.key, 0) + h.endpoint.weight
                total += h.endpoint.weight
                if credit[h.key] > credit[best.key]:
                    best = h
            credit[best.key] -= total
            return best
        if policy == "LEAST_REQUEST":
            weights = [h.endpoint.weight / (h.active + 1) for h in hosts]
        else:
            weights = [float(h.endpoint.weight) for h in hosts]
        r = self.rng.random() * sum(weights)
        for h, w in zip(hosts, weights, strict=True):
            if r < w:
                return h
            r -= w
        return hosts[-1]

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


def _forget_outlier(h: HostState) -> None:
    """A fresh detector's view of ``h`` (Envoy replaced the cluster)."""
    h.consecutive_5xx = h.consecutive_gateway = h.consecutive_local = 0
    h.ejected = False
    h.ejected_until = 0.0
    h.ejections = 0
    h.last_unejection = None


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
