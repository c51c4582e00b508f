"""Envoy's HTTP/1.1 connection pools under a cluster's circuit breakers (:mod:`sim.connpool`),
driven directly: which request gets a connection, which overflows (503 ``UO``), and what the
``upstream_cx_*`` / ``upstream_rq_pending_overflow`` counters say."""

from __future__ import annotations

import random
import statistics

import simpy

from sim.connpool import CONNECTION_SETUP_S, ConnPool, PoolStats, Slot
from sim.pool_timing import Delay
from sim.xds import Thresholds

H1 = "10.0.0.1:8080"
H2 = "10.0.0.2:8080"


def fired(ev: simpy.Event) -> bool:
    """Whether ``ev`` was triggered (a call, so that a later check is not narrowed away)."""
    return ev.triggered


def pool(
    env: simpy.Environment,
    *,
    max_connections: int = 1024,
    max_pending_requests: int = 1024,
    max_requests: int = 1024,
    per_connection: int = 0,
) -> ConnPool:
    thresholds = Thresholds(
        max_connections=max_connections,
        max_pending_requests=max_pending_requests,
        max_requests=max_requests,
    )
    return ConnPool(env, thresholds, per_connection, PoolStats())


def test_a_plaintext_request_gets_a_new_connection_at_once() -> None:
    env = simpy.Environment()
    p = pool(env)
    assert p.acquire(H1) is Slot.GRANTED
    assert (p.active, p.pending, p.connections, p.stats.cx_total) == (1, 0, 1, 1)


def test_a_kept_alive_connection_serves_the_next_request() -> None:
    env = simpy.Environment()
    p = pool(env)
    p.acquire(H1)
    p.release(H1, reusable=True)
    assert p.acquire(H1) is Slot.GRANTED
    assert p.stats.cx_total == 1  # no second connection
    assert p.connections == 1


def test_one_request_per_connection_closes_it_after_each_request() -> None:
    env = simpy.Environment()
    p = pool(env, per_connection=1)
    p.acquire(H1)
    p.release(H1, reusable=True)
    assert (p.connections, p.stats.cx_destroy) == (0, 1)
    assert p.acquire(H1) is Slot.GRANTED
    assert p.stats.cx_total == 2


def test_a_reset_stream_closes_its_connection() -> None:
    env = simpy.Environment()
    p = pool(env)
    p.acquire(H1)
    p.release(H1, reusable=False)
    assert (p.active, p.connections, p.stats.cx_destroy) == (0, 0, 1)


def test_an_mtls_connection_is_ready_after_the_handshake() -> None:
    env = simpy.Environment()
    p = pool(env)
    ev = p.acquire(H1, tls=True)
    assert isinstance(ev, simpy.Event) and not fired(ev)
    assert p.pending == 1
    env.run()
    assert env.now == CONNECTION_SETUP_S
    assert ev.value is Slot.GRANTED
    assert (p.pending, p.active) == (0, 1)


def test_pending_overflow_is_uo_with_no_host() -> None:
    """``max_pending_requests: 1``: the second request waiting for a connection overflows."""
    env = simpy.Environment()
    p = pool(env, max_pending_requests=1)
    first = p.acquire(H1, tls=True)
    assert isinstance(first, simpy.Event)
    assert p.acquire(H2, tls=True) is Slot.OVERFLOW
    assert p.stats.rq_pending_overflow == 1
    assert len(p.hosts[H2].pending) == 0  # nothing queued at H2


def test_max_requests_overflow_names_the_host_of_the_ready_connection() -> None:
    """``max_requests: 1`` with one request active: a request that finds a ready connection
    overflows at that host (the access log names it)."""
    env = simpy.Environment()
    p = pool(env, max_requests=1)
    assert p.acquire(H1) is Slot.GRANTED
    assert p.acquire(H1) is Slot.OVERFLOW_AT_HOST
    assert p.stats.rq_pending_overflow == 1
    assert p.active == 1


def test_max_connections_makes_a_request_wait_for_a_busy_connection() -> None:
    """``max_connections: 1``: a second request at the same host counts a ``cx_overflow`` and
    waits; the first request's kept-alive connection takes it when that request ends."""
    env = simpy.Environment()
    p = pool(env, max_connections=1)
    assert p.acquire(H1) is Slot.GRANTED
    waiting = p.acquire(H1)
    assert isinstance(waiting, simpy.Event) and not fired(waiting)
    assert (p.stats.cx_overflow, p.stats.cx_total) == (1, 1)
    p.release(H1, reusable=True)
    assert fired(waiting) and waiting.value is Slot.GRANTED
    assert (p.pending, p.active, p.connections) == (0, 1, 1)


def test_every_host_may_open_one_connection_whatever_max_connections_says() -> None:
    env = simpy.Environment()
    p = pool(env, max_connections=1)
    assert p.acquire(H1) is Slot.GRANTED
    assert p.acquire(H2) is Slot.GRANTED
    assert (p.connections, p.stats.cx_overflow) == (2, 0)


def test_pending_requests_attach_oldest_first() -> None:
    env = simpy.Environment()
    p = pool(env, max_connections=1)
    p.acquire(H1)
    older, newer = p.acquire(H1), p.acquire(H1)
    assert isinstance(older, simpy.Event) and isinstance(newer, simpy.Event)
    p.release(H1, reusable=True)
    assert fired(older) and not fired(newer)
    p.release(H1, reusable=True)
    assert fired(newer)


def test_an_abandoned_pending_request_leaves_the_queue() -> None:
    """A per-try or route timeout while the request waits for a connection."""
    env = simpy.Environment()
    p = pool(env, max_connections=1)
    p.acquire(H1)
    gave_up = p.acquire(H1)
    assert isinstance(gave_up, simpy.Event)
    p.abandon(H1, gave_up)
    assert p.pending == 0
    p.release(H1, reusable=True)
    assert not fired(gave_up)
    assert p.hosts[H1].ready == 1


def test_a_request_abandoned_in_the_instant_it_was_attached_frees_its_connection() -> None:
    env = simpy.Environment()
    p = pool(env, max_connections=1)
    p.acquire(H1)
    gave_up = p.acquire(H1)
    assert isinstance(gave_up, simpy.Event)
    p.release(H1, reusable=True)  # attaches the pending request...
    assert fired(gave_up) and p.active == 1
    p.abandon(H1, gave_up)  # ...which timed out in the same instant: nothing was sent
    assert (p.active, p.hosts[H1].ready) == (0, 1)


def test_a_draining_pool_closes_idle_connections_now_and_busy_ones_after_their_request() -> None:
    """A CDS push replaced the cluster: the old pool keeps no connection for reuse."""
    env = simpy.Environment()
    p = pool(env)
    p.acquire(H1)
    p.acquire(H2)
    p.release(H2, reusable=True)  # H2's connection is idle, H1's is busy
    p.drain()
    assert (p.connections, p.stats.cx_destroy) == (1, 1)
    p.release(H1, reusable=True)
    assert (p.connections, p.stats.cx_destroy) == (0, 2)


def test_counters_are_shared_with_the_next_pool_of_the_cluster() -> None:
    """Envoy's cluster stats outlive a push; the new pool's circuit-breaker counts start at 0."""
    env = simpy.Environment()
    stats = PoolStats()
    old = ConnPool(env, Thresholds(), 0, stats)
    old.acquire(H1)
    new = ConnPool(env, Thresholds(), 0, stats)
    new.acquire(H1)
    assert stats.cx_total == 2
    assert (new.active, new.connections) == (1, 1)


def test_a_sized_pool_draws_each_handshake_and_is_busy_meanwhile() -> None:
    # a pool a DestinationRule sized times each mTLS connection on its own (seeded) draw, and
    # knows how long the proxy's event loop stays busy with the handshakes under way
    env = simpy.Environment()
    thresholds = Thresholds(max_connections=1, max_pending_requests=1, max_requests=1)
    p = ConnPool(env, thresholds, 1, PoolStats(), connect=Delay(0.0005, 0.6), rng=random.Random(3))
    opened = []
    for _ in range(20):
        began = env.now
        ev = p.acquire(H1, tls=True)
        assert isinstance(ev, simpy.Event)
        assert p.busy_s() > 0
        env.run(until=ev)
        assert p.busy_s() == 0
        opened.append(env.now - began)
        p.release(H1, reusable=True)  # one request per connection: closed
    assert len(set(opened)) == 20
    assert 0.0003 < statistics.median(opened) < 0.0008
    assert p.stats.cx_total == 20


def test_an_unsized_pool_is_never_busy() -> None:
    env = simpy.Environment()
    p = pool(env)
    ev = p.acquire(H1, tls=True)
    assert isinstance(ev, simpy.Event)
    assert p.busy_s() == 0  # the fixed model: no event loop to wait for
    env.run()
    assert env.now == CONNECTION_SETUP_S


def test_a_request_gets_the_very_connection_the_last_one_released_until_it_is_closed() -> None:
    """What a connection remembers (the pod an east-west gateway pinned it to) is found again by
    the next request on it; a closed connection's successor is a new one."""
    env = simpy.Environment()
    p = pool(env)
    opening = p.acquire(H1, tls=True)  # an mTLS connection takes a moment
    assert isinstance(opening, simpy.Event)
    env.run()
    first = p.connection(opening)
    assert first.uses == 0 and not p.given
    first.uses += 1
    p.release(H1, reusable=True, conn=first)
    assert p.acquire(H1) is Slot.GRANTED
    assert p.connection(None) is first
    p.release(H1, reusable=False, conn=first)
    waiting = p.acquire(H1, tls=True)
    assert isinstance(waiting, simpy.Event)
    env.run()
    fresh = p.connection(waiting)
    assert fresh is not first and fresh.uses == 0
