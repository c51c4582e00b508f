"""Envoy's HTTP/1.1 connection pools and the cluster's circuit breakers, as one client proxy has them.

Envoy keeps one connection pool per upstream host; the circuit-breaker counters
(``circuit_breakers.thresholds``) belong to the cluster and are shared by all its hosts' pools.
Following ``ConnPoolImplBase`` (source/common/conn_pool/conn_pool_base.cc):

* A new request at host H with a **ready** (idle keep-alive) connection is attached to it at once,
  unless ``max_requests`` active requests already exist in the cluster: then it fails with 503
  ``UO`` *and the access log names H* (the pool's host).
* Without a ready connection it becomes a **pending** request of H's pool, unless
  ``max_pending_requests`` are already pending in the cluster: then it fails with 503 ``UO`` and
  *no upstream host* (no pool had it). Both overflows count as ``upstream_rq_pending_overflow``.
* A pending request makes H's pool open a connection when it has fewer connecting connections
  than pending requests and the cluster is below ``max_connections`` — or when H has no
  connection at all (Envoy always lets a host have one, so pending requests cannot starve).
  Otherwise ``upstream_cx_overflow`` counts it and the request waits for one of H's connections.
* When one of H's connections becomes ready (connected, or its request finished and it is kept
  alive) H's pending requests are attached to it oldest first, each checked against
  ``max_requests`` (an overflow there is again a ``UO`` naming H).

An HTTP/1.1 connection carries one request at a time. ``max_requests_per_connection: 1`` closes it
after each request. A changed cluster (a CDS push that changes more than its endpoints) gets a
fresh pool with fresh counters, as Envoy builds a new cluster; requests in flight finish on the old
pool, which then closes its connections instead of keeping them (draining).

Timing. Whether a request overflows can depend on *when* things happen. With
``maxRequestsPerConnection: 1`` Envoy closes a connection as soon as its one response has come
back (``upstream_cx_max_requests``); the close makes the pool open a new connection for the
request pending behind it, and that request holds the one pending slot until the new
connection's TLS handshake is done. Meanwhile the response travels to its client, which sends its
next request: if that request reaches the sidecar before the handshake completes, it finds the
pending slot taken and gets 503 ``UO`` at once, and the client tries again after the same
turnaround. So the race is *client turnaround* against *close + connect + handshake*, and a
client overflows once per turnaround that fits in the reconnect (measured on real Envoy 1.40 with
the request's ``US_CX_BEG``/``US_HS_END``/``US_RX_END`` time points: ``docs/simulator.md``). On a
pool a DestinationRule sized (``sim.cluster.sized_pool``) the router and this pool time that race
with a :class:`~sim.pool_timing.PoolTiming`: each new mTLS connection's set-up drawn from ``connect``, the request
reaching the pool over ``request_leg``, a proxied answer and the client's next request over
``answer``, a 503 ``UO`` over ``overflow``. :data:`~sim.pool_timing.DEFAULT_POOL_TIMING` holds medians measured
on this project's shared machine; ``playground.pool_calibration`` measures them on
the machine at hand (``meshplay compare`` against a local run). Other pools keep the fixed :data:`CONNECTION_SETUP_S`.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import simpy

from sim.pool_timing import Delay, Paired, Sampled
from sim.xds import Thresholds

__all__ = ["CONNECTION_SETUP_S", "ConnPool", "Connection", "HostPool", "PoolStats", "Slot"]

CONNECTION_SETUP_S = 0.001
"""Extra time to open an mTLS connection (the TLS 1.3 handshake round trip and its ECDSA work on
loopback). A plaintext connection is ready at once (its TCP round trip is part of the hop)."""


class Slot(Enum):
    """What the pool did with a new request."""

    GRANTED = "granted"
    """Attached to a connection: the request goes upstream now."""
    OVERFLOW = "overflow"
    """``max_pending_requests`` overflow: 503 UO, no upstream host."""
    OVERFLOW_AT_HOST = "overflow_at_host"
    """``max_requests`` overflow when attaching to a ready connection: 503 UO naming the host."""


@dataclass(slots=True, eq=False)
class Connection:
    """One upstream connection of a host's pool: what lives as long as the connection does."""

    uses: int = 0
    """Requests it has carried: 0 until the first one is sent, so the first pays its set-up."""
    peer: object = None
    """Where a pass-through hop in between connected it (``sim.eastwest``: the pod an east-west
    gateway's ``tcp_proxy`` picked for this connection, kept while the connection lives)."""


@dataclass(slots=True)
class PoolStats:
    """Envoy's ``cluster.<name>.upstream_*`` counters, kept across pools (stats outlive a push)."""

    cx_total: int = 0
    cx_destroy: int = 0
    cx_overflow: int = 0
    rq_pending_overflow: int = 0


@dataclass(slots=True, eq=False)
class HostPool:
    """One host's connections and pending requests."""

    setup_s: float = 0.0
    """Time a new connection to this host takes to become ready."""
    ready: int = 0
    """Idle keep-alive connections."""
    connecting: int = 0
    connections: int = 0
    """Open connections: connecting, ready or carrying a request."""
    pending: deque[simpy.Event] = field(default_factory=deque)
    idle: deque[Connection] = field(default_factory=deque)
    """The ready connections themselves (``ready`` of them), least recently released first."""


class ConnPool:
    """The pools of one cluster in one client proxy, under its circuit breakers."""

    __slots__ = (
        "active",
        "connect",
        "connections",
        "draining",
        "env",
        "given",
        "handshake_until",
        "hosts",
        "max_requests_per_connection",
        "paired_answer",
        "pending",
        "reconnect",
        "rng",
        "setup_s",
        "stats",
        "thresholds",
    )

    def __init__(
        self,
        env: simpy.Environment,
        thresholds: Thresholds,
        max_requests_per_connection: int,
        stats: PoolStats,
        setup_s: float = CONNECTION_SETUP_S,
        *,
        connect: Delay | Sampled | None = None,
        rng: random.Random | None = None,
        reconnect: Paired | None = None,
    ) -> None:
        self.env = env
        self.thresholds = thresholds
        self.max_requests_per_connection = max_requests_per_connection
        self.stats = stats
        self.setup_s = setup_s
        self.connect = connect
        self.reconnect = reconnect
        """Draw a reconnect after a close from these pairs (with ``rng``)."""
        self.paired_answer: float | None = None
        """The turnaround drawn with the last reconnect, until :meth:`take_answer` takes it."""
        """Draw each mTLS connection's setup time from this (with ``rng``) instead of the fixed
        ``setup_s``."""
        self.rng = rng
        self.hosts: dict[str, HostPool] = {}
        self.active = 0
        """Requests on a connection (the ``max_requests`` counter)."""
        self.pending = 0
        """Pending requests of all hosts (the ``max_pending_requests`` counter)."""
        self.connections = 0
        """Open connections of all hosts (the ``max_connections`` counter)."""
        self.draining = False
        self.handshake_until = 0.0
        """When the last mTLS handshake under way completes (``connect`` pools)."""
        self.given: dict[simpy.Event | None, Connection] = {}
        """The connection each granted request was attached to, until :meth:`connection` takes
        it (``None``: the request :meth:`acquire` granted at once)."""

    def host(self, key: str, *, tls: bool = False) -> HostPool:
        """The pool of host ``key`` (``address:port``); ``tls`` when its connections are mTLS."""
        hp = self.hosts.get(key)
        if hp is None:
            hp = self.hosts[key] = HostPool(self.setup_s if tls else 0.0)
        return hp

    def acquire(self, key: str, *, tls: bool = False) -> Slot | simpy.Event:
        """A new request at host ``key``: a :class:`Slot`, or an Event fired with one when a
        connection takes the pending request."""
        hp = self.host(key, tls=tls)
        if hp.ready:
            return self._attach(hp, None)
        if self.pending >= self.thresholds.max_pending_requests:
            self.stats.rq_pending_overflow += 1
            return Slot.OVERFLOW
        ev = self.env.event()
        hp.pending.append(ev)
        self.pending += 1
        self._maybe_connect(key, hp)
        if ev.triggered:  # a plaintext connection, ready at once, took it
            value = ev.value
            assert isinstance(value, Slot)
            if ev in self.given:
                self.given[None] = self.given.pop(ev)
            return value
        return ev

    def connection(self, ev: simpy.Event | None = None) -> Connection:
        """The connection a granted request was attached to: ``ev`` the Event :meth:`acquire`
        returned, or ``None`` when it granted the request at once."""
        conn = self.given.pop(ev, None)
        return conn if conn is not None else Connection()

    def release(self, key: str, *, reusable: bool, conn: Connection | None = None) -> None:
        """A request finished on its connection ``conn``: keep the connection for the next
        request, or close it (``max_requests_per_connection: 1``, a reset or timed-out stream, a
        failed connect, a draining pool)."""
        self.active -= 1
        self.paired_answer = None
        hp = self.host(key)
        if reusable and self.max_requests_per_connection != 1 and not self.draining:
            self._ready(hp, conn if conn is not None else Connection())
            return
        self._close(hp, was_ready=False)
        if hp.pending:
            self._maybe_connect(key, hp, after_close=True)

    def take_answer(self) -> float | None:
        """The released request's turnaround, when :meth:`release` drew it with the reconnect
        it races (:class:`Paired`); ``None`` otherwise."""
        answer, self.paired_answer = self.paired_answer, None
        return answer

    def abandon(self, key: str, ev: simpy.Event) -> None:
        """A pending request gave up (route or per-try timeout) before it was sent."""
        hp = self.host(key)
        if ev.triggered:
            if ev.value is Slot.GRANTED:  # attached in this instant: nothing was sent on it
                self.release(key, reusable=True, conn=self.given.pop(ev, None))
            return
        with contextlib.suppress(ValueError):
            hp.pending.remove(ev)
            self.pending -= 1

    def busy_s(self) -> float:
        """How long the proxy's event loop stays busy with mTLS handshakes under way (a reply it
        makes itself waits for them)."""
        return max(0.0, self.handshake_until - self.env.now)

    def drain(self) -> None:
        """The cluster was replaced: close idle connections now, the others when their request
        ends (Envoy drains the old cluster's pools)."""
        self.draining = True
        for hp in self.hosts.values():
            while hp.ready:
                self._close(hp, was_ready=True)

    # -- internals ------------------------------------------------------------------------

    def _attach(self, hp: HostPool, ev: simpy.Event | None) -> Slot:
        if self.active >= self.thresholds.max_requests:
            self.stats.rq_pending_overflow += 1
            return Slot.OVERFLOW_AT_HOST
        hp.ready -= 1
        self.given[ev] = hp.idle.popleft()
        self.active += 1
        return Slot.GRANTED

    def _ready(self, hp: HostPool, conn: Connection) -> None:
        """One of the host's connections is ready: attach pending requests, oldest first."""
        hp.ready += 1
        hp.idle.append(conn)
        while hp.pending and hp.ready:
            ev = hp.pending.popleft()
            self.pending -= 1
            ev.succeed(self._attach(hp, ev))
        if self.draining:
            while hp.ready:
                self._close(hp, was_ready=True)

    def _close(self, hp: HostPool, *, was_ready: bool) -> None:
        if was_ready:
            hp.ready -= 1
            hp.idle.popleft()
        hp.connections -= 1
        self.connections -= 1
        self.stats.cx_destroy += 1

    def _maybe_connect(self, key: str, hp: HostPool, *, after_close: bool = False) -> None:
        if len(hp.pending) <= hp.connecting:
            return
        if self.connections >= self.thresholds.max_connections and hp.connections > 0:
            self.stats.cx_overflow += 1
            return
        hp.connecting += 1
        hp.connections += 1
        self.connections += 1
        self.stats.cx_total += 1
        setup = hp.setup_s
        if setup > 0 and self.connect is not None and self.rng is not None:
            if after_close and self.reconnect is not None:
                setup, self.paired_answer = self.reconnect.draw(self.rng)
            else:
                setup = self.connect.draw(self.rng)
            self.handshake_until = max(self.handshake_until, self.env.now + setup)
        if setup > 0:
            self.env.timeout(setup).callbacks.append(lambda _ev: self._connected(hp))
        else:
            self._connected(hp)

    def _connected(self, hp: HostPool) -> None:
        hp.connecting -= 1
        self._ready(hp, Connection())
