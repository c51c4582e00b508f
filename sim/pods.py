"""The simulated pods: each replica's app state and, when it has one, its proxy's.

A :class:`PodRuntime` is one replica as the data plane sees it: its app's worker slots and
the lesson's knobs on it (down, refusing, slow, failing). A :class:`ProxyRuntime` is its
sidecar (or a gateway): the compiled config of what istiod pushed to it and its own state of
each cluster (connection pools, circuit breakers, outlier detector), kept across a config push
for every cluster the push keeps, as a running Envoy does.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import simpy

from mesh.app import EndpointBehavior, ServiceBehavior
from mesh.envoy_api.names import Direction, cluster_name
from mesh.topology import Pod, ProxyKind
from sim.cluster import ClusterRuntime
from sim.outlier import OutlierState
from sim.pool_timing import PoolTiming
from sim.workers import Workers
from sim.xds import ProxyTables

__all__ = ["ClusterHome", "PodRuntime", "ProxyRuntime"]


class ClusterHome(Protocol):
    """What a proxy's cluster state is created in (:class:`sim.world.World`): the clock, the
    seeded random source and the connection-pool timing."""

    @property
    def env(self) -> simpy.Environment: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def pool_timing(self) -> PoolTiming: ...


@dataclass(slots=True, eq=False)
class PodRuntime:
    """One replica: the app's worker slots, its lesson knobs, and its proxy (if any)."""

    pod: Pod
    app: str
    version: str
    sidecar: bool
    service: ServiceBehavior | None
    service_host: str
    target_port: int
    workers: Workers | None
    dead: bool = False
    refuse: bool = False
    latency_s: float = 0.0
    error_rate: float = 0.0
    drop_trace_headers: bool = False
    """Lesson knob: the app does not copy the trace headers onto its calls."""
    once_done: set[str] = field(default_factory=set)
    endpoints: dict[tuple[str, str], EndpointBehavior | None] = field(default_factory=dict)
    proxy: ProxyRuntime | None = None
    served: int = 0
    inbound_cluster: str = ""
    inbound_host: str = ""
    identity: str = ""
    """The pod's SPIFFE identity (``Pod.identity``, worked out once)."""
    log_cluster: str = ""
    """Its cluster as its proxy's records name it (``source_cluster`` on a client-side record,
    ``destination_cluster`` on a server-side one): set in a mesh of two clusters or more, as
    the local runner tags them; "" otherwise."""
    response_headers: dict[str, str] | None = None
    """Headers the app puts on its responses (behaviours declare none yet; set by tests)."""
    resets_before_read: int = 0
    """The app resets this many of the next requests before reading any of them (an idle
    keep-alive connection it closed as the sidecar sent on it; set by tests, no lesson knob)."""

    def __post_init__(self) -> None:
        self.inbound_cluster = cluster_name(Direction.INBOUND, self.target_port)
        self.inbound_host = f"{self.pod.address}:{self.target_port}"
        self.identity = self.pod.identity

    @property
    def name(self) -> str:
        """Pod name."""
        return self.pod.name

    def endpoint(self, method: str, path: str) -> EndpointBehavior | None:
        """The declared endpoint serving ``method path`` (cached per distinct request line)."""
        key = (method, path)
        try:
            return self.endpoints[key]
        except KeyError:
            found = (
                self.service.endpoint(method, path, self.version)
                if self.service is not None
                else None
            )
            self.endpoints[key] = found
            return found


@dataclass(slots=True, eq=False)
class ProxyRuntime:
    """A sidecar or gateway: its compiled config and its per-cluster state."""

    pod: PodRuntime
    tables: ProxyTables
    kind: ProxyKind
    clusters: dict[str, ClusterRuntime] = field(default_factory=dict)
    tcp_active: dict[str, int] = field(default_factory=dict)
    """Open ``tcp_proxy`` connections per cluster (what ``max_connections`` caps)."""
    tcp_stats: dict[str, int] = field(default_factory=dict)
    """Envoy counters of the TCP path, by stat name (``cluster.<name>.upstream_cx_total``,
    ``..._connect_fail``, ``..._overflow``, ``..._none_healthy``)."""

    def count(self, stat: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``stat``."""
        self.tcp_stats[stat] = self.tcp_stats.get(stat, 0) + n

    def cluster(self, name: str, world: ClusterHome) -> ClusterRuntime | None:
        """This proxy's state of cluster ``name`` (None when the proxy has no such cluster)."""
        rt = self.clusters.get(name)
        if rt is None:
            spec = self.tables.clusters.get(name)
            if spec is None:
                return None
            timing = world.pool_timing
            rt = ClusterRuntime.create(spec, world.env, world.rng, timing.connect, timing.reconnect)
            self.clusters[name] = rt
        return rt

    def outlier_states(self, now: float) -> dict[str, OutlierState]:
        """The outlier detector of each cluster this proxy used that has one, at ``now``."""
        states = {}
        for name, rt in self.clusters.items():
            state = rt.outlier_state(now)
            if state is not None:
                states[name] = state
        return states

    def restore_outliers(self, states: Mapping[str, OutlierState], world: ClusterHome) -> None:
        """Take over the outlier detectors of a previous world's same proxy (those whose
        cluster this proxy still has, unchanged)."""
        for name, state in states.items():
            rt = self.cluster(name, world)
            if rt is not None:
                rt.restore_outlier(state)

    def reload(self, tables: ProxyTables) -> None:
        """A config push: new tables, cluster state kept where the cluster still exists."""
        self.tables = tables
        for name in list(self.clusters):
            spec = tables.clusters.get(name)
            if spec is None:
                del self.clusters[name]
            else:
                self.clusters[name].update(spec)
