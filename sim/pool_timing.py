"""When things happen in Envoy's reconnect race on a sized connection pool (:mod:`sim.connpool`).

Each moment that decides whether a request overflows is a delay drawn from a distribution: a
lognormal (:class:`Delay`) with medians measured on real Envoy 1.40 sidecars on this project's
shared machine, or the values measured on the machine at hand (:class:`Sampled`,
:class:`Paired`), which ``playground.pool_calibration`` reads from a local run's access logs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = [
    "ANSWER_LEG",
    "DEFAULT_POOL_TIMING",
    "LOCAL_LEG",
    "MTLS_CONNECT",
    "Delay",
    "Paired",
    "PoolTiming",
    "Sampled",
]


@dataclass(frozen=True, slots=True)
class Delay:
    """A lognormal delay: its median and the sigma of its logarithm."""

    median_s: float
    sigma: float

    def draw(self, rng: random.Random) -> float:
        """One delay."""
        return self.median_s * math.exp(self.sigma * rng.gauss(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class Sampled:
    """A delay drawn from measured values (seconds), each equally likely: a measured
    distribution used as it is, without assuming its shape."""

    values_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values_s:
            raise ValueError("Sampled needs at least one value")

    @property
    def median_s(self) -> float:
        """The middle value."""
        ordered = sorted(self.values_s)
        return ordered[len(ordered) // 2]

    def draw(self, rng: random.Random) -> float:
        """One of the values."""
        return self.values_s[rng.randrange(len(self.values_s))]


@dataclass(frozen=True, slots=True)
class Paired:
    """Reconnects measured together with the turnaround they raced: each value is (the time the
    pool took to have the pending request's new connection ready after the previous response
    closed the old one, the time that response's client took to send its next request to the
    sidecar), in seconds. Drawn as pairs, because both are slowed by the same moments of a busy
    machine: drawn apart, a regime where turnarounds are slower than reconnects on average would
    overflow too often (measured: sim 0.22 against real Envoy's 0.13 with two clients)."""

    values_s: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.values_s:
            raise ValueError("Paired needs at least one value")

    def draw(self, rng: random.Random) -> tuple[float, float]:
        """One (reconnect, turnaround) pair."""
        return self.values_s[rng.randrange(len(self.values_s))]


MTLS_CONNECT = Delay(median_s=0.00065, sigma=0.6)
"""A new mTLS connection between two sidecars, from ``connect()`` to Envoy's ``Connected`` event
(TCP on loopback, then the TLS 1.3 handshake: both Envoys' event loops and their ECDSA work)."""

ANSWER_LEG = Delay(median_s=0.0012, sigma=0.4)
"""A proxied answer's way back from a sized pool's sidecar to the app: with the request's own
local leg, what the app sees beyond the duration the sidecar logs."""

LOCAL_LEG = Delay(median_s=0.00005, sigma=0.5)
"""One leg between an app and its own sidecar on a sized pool's path: the request reaching the
pool, and a 503 ``UO`` the sidecar answers itself going back (no other process wakes up)."""


@dataclass(frozen=True, slots=True)
class PoolTiming:
    """The moments that decide Envoy's reconnect race on a sized pool, as lognormal delays.

    ``connect``: a new mTLS connection, from the moment the pool decides to open it (a request
    became pending, or the previous connection closed after its ``maxRequestsPerConnection``-th
    response) to Envoy's ``Connected`` event after the TLS handshake, when the pending request is
    attached. ``request_leg``: a request from its app to the pool's decision. ``answer``: a proxied
    response from the moment its last byte is back at the client sidecar (when the connection is
    released) until the same client's next request leaves the app. ``overflow``: a 503 ``UO`` from
    the pool's decision until the client's next request leaves, when no handshake of the pool is
    under way. ``after_handshake``: while one is, when the client's next request leaves relative to
    the end of that handshake (seconds, negative when before it; ``None``: as ``overflow``).
    Measured on a loaded 2-core machine a ``UO``'s turnaround is about seven times slower during a
    handshake (650 us against 89 us: both sidecars' event loops are busy with TLS work, and the
    client, the two Envoys and everything else share the cores) and follows the handshake's end:
    drawn apart from the time left of the handshake, twice as many retries landed before its end
    again (0.22 against 0.11 of them). ``overflow`` ``None`` sends the ``UO`` back over one
    ``request_leg`` after the handshakes under way (:meth:`ConnPool.busy_s`), the fitted default.
    """

    connect: Delay | Sampled = MTLS_CONNECT
    request_leg: Delay | Sampled = LOCAL_LEG
    answer: Delay | Sampled = ANSWER_LEG
    overflow: Delay | Sampled | None = None
    after_handshake: Sampled | None = None
    reconnect: Paired | None = None
    """A connection opened because the previous one closed after its response, with that
    response's ``answer`` (``None``: ``connect`` and ``answer`` drawn apart)."""

    def describe(self) -> str:
        """One line: the medians in microseconds."""

        def us(d: Delay | Sampled) -> str:
            spread = f"sigma {d.sigma:.2f}" if isinstance(d, Delay) else f"{len(d.values_s)} values"
            return f"{d.median_s * 1e6:.0f} us ({spread})"

        uo = us(self.overflow) if self.overflow is not None else "after the handshakes"
        busy = self.after_handshake
        during = f", UO in a handshake its end + {us(busy)}" if busy is not None else ""
        pairs = self.reconnect
        raced = f", {len(pairs.values_s)} (reconnect, turnaround) pairs" if pairs else ""
        return (
            f"connect {us(self.connect)}, request leg {us(self.request_leg)}, "
            f"answer {us(self.answer)}, UO {uo}{during}{raced}"
        )

    def overflow_return(self, busy_s: float, rng: random.Random) -> float:
        """How long after the pool's decision a 503 ``UO``'s client sends its next request,
        ``busy_s`` the time left of the handshakes under way."""
        if self.overflow is None:
            return busy_s + self.request_leg.draw(rng)
        if busy_s > 0 and self.after_handshake is not None:
            # never sooner than the client's turnaround when nothing else is going on
            return max(busy_s + self.after_handshake.draw(rng), self.overflow.draw(rng))
        return self.overflow.draw(rng)


DEFAULT_POOL_TIMING = PoolTiming()
"""Medians measured on real Envoy 1.40 sidecars at load average ~17 on the shared 2-core machine
(docs/simulator.md); a run without calibration uses them, deterministic for its seed."""
