"""Envoy's load balancers over a cluster's available hosts.

``LEAST_REQUEST`` (Istio's default): draw two hosts uniformly at random *with replacement* and
keep the one with fewer requests in flight from this proxy (ties keep the first draw): the
"power of two choices". ``ROUND_ROBIN`` cycles, ``RANDOM`` is uniform. ``RING_HASH`` places every
host at ``ceil(minimum_ring_size / hosts)`` points on a 64-bit ring and sends a request to the
first point clockwise of its hash; ``MAGLEV`` fills a lookup table with each host's permutation.
Both keep a key on the same host while the host set is unchanged, and move about ``1/N`` of the
keys when one of N hosts leaves. A request without a hash key goes to a random host.

Before the policy picks, Envoy narrows the hosts: priority levels spill over by health with its
1.4 overprovisioning factor (:func:`by_priority`), and locality-weighted load balancing draws a
locality by weight x availability (:func:`by_locality_weight`). Hosts of unequal weights use the
weighted schedulers (:func:`pick_weighted`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from sim.hosts import HostState

__all__ = [
    "Hashable",
    "by_locality_weight",
    "by_priority",
    "maglev_table",
    "pick_hashed",
    "pick_weighted",
    "ring",
    "stable_hash",
]


class Hashable(Protocol):
    """A host that can be placed on a ring: its ``address:port`` key."""

    @property
    def key(self) -> str: ...


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=256)
def ring(keys: tuple[str, ...], minimum_ring_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(sorted point hashes, host index of each point) for a ketama-style ring."""
    if not keys:
        return (), ()
    per_host = max(1, -(-minimum_ring_size // len(keys)))
    points = sorted(
        (stable_hash(f"{key}_{i}"), index)
        for index, key in enumerate(keys)
        for i in range(per_host)
    )
    return tuple(p for p, _ in points), tuple(i for _, i in points)


@functools.lru_cache(maxsize=64)
def maglev_table(keys: tuple[str, ...], size: int) -> tuple[int, ...]:
    """Maglev's lookup table (``size`` should be prime): host index per slot."""
    n = len(keys)
    if n == 0:
        return ()
    offsets = [stable_hash(k) % size for k in keys]
    skips = [stable_hash(k + "#skip") % (size - 1) + 1 for k in keys]
    nexts = [0] * n
    table = [-1] * size
    filled = 0
    while True:
        for i in range(n):
            c = (offsets[i] + nexts[i] * skips[i]) % size
            while table[c] >= 0:
                nexts[i] += 1
                c = (offsets[i] + nexts[i] * skips[i]) % size
            table[c] = i
            nexts[i] += 1
            filled += 1
            if filled == size:
                return tuple(table)


def pick_hashed(
    policy: str,
    keys: tuple[str, ...],
    key_hash: int | None,
    *,
    ring_size: int,
    maglev_size: int,
    rng: random.Random,
) -> int:
    """Index into ``keys`` chosen by a hash LB (random when there is no hash key)."""
    if key_hash is None:
        return rng.randrange(len(keys))
    if policy == "MAGLEV":
        table = maglev_table(keys, maglev_size)
        return table[key_hash % len(table)]
    points, owners = ring(keys, ring_size)
    i = bisect.bisect_left(points, key_hash)
    return owners[i % len(points)]


def p2c(active: Sequence[int], rng: random.Random) -> int:
    """Power of two choices: two uniform draws with replacement, fewer active requests wins."""
    n = len(active)
    a = rng.randrange(n)
    b = rng.randrange(n)
    return b if active[b] < active[a] else a


def by_locality_weight(
    usable: list[HostState], sizes: Mapping[str, int], rng: random.Random
) -> list[HostState]:
    """Envoy's locality-weighted choice: each locality's ``load_balancing_weight`` times its
    availability (healthy share x 1.4, at most 1); then the LB policy picks inside it."""
    groups: dict[str, list[HostState]] = {}
    for h in usable:
        if h.endpoint.locality_weight > 0:
            groups.setdefault(h.endpoint.locality, []).append(h)
    if not groups:
        return usable
    totals = sizes
    weighted = [
        (hs[0].endpoint.locality_weight * min(1.0, 1.4 * len(hs) / totals[loc]), hs)
        for loc, hs in sorted(groups.items())
    ]
    r = rng.random() * sum(w for w, _ in weighted)
    for w, hs in weighted:
        if r < w:
            return hs
        r -= w
    return weighted[-1][1]


def by_priority(
    priorities: Sequence[int],
    hosts: Sequence[HostState],
    healthy: list[HostState],
    rng: random.Random,
) -> tuple[list[HostState], bool]:
    """Priority spill-over with Envoy's 1.4 overprovisioning factor."""
    loads = []
    remaining = 100.0
    for p in priorities:
        total = [h for h in hosts if h.endpoint.priority == p]
        ok = [h for h in healthy if h.endpoint.priority == p]
        health = min(100.0, 140.0 * len(ok) / len(total)) if total else 0.0
        share = min(remaining, health)
        loads.append((share, ok))
        remaining -= share
    total_load = sum(s for s, _ in loads)
    if total_load <= 0:
        return [], False
    r = rng.random() * total_load
    for share, ok in loads:
        if r < share:
            return ok, False
        r -= share
    return loads[-1][1], False


def pick_weighted(
    policy: str, hosts: list[HostState], rr_credit: dict[str, int], rng: random.Random
) -> HostState:
    """Hosts of unequal ``load_balancing_weight`` (e.g. an east-west gateway standing for
    several remote pods): Envoy's weighted schedulers. ``ROUND_ROBIN`` is its earliest
    deadline first over the weights (smooth: each host's share exact over a cycle);
    ``LEAST_REQUEST`` weighs each host by ``weight / (active + 1)`` (Envoy's default
    ``active_request_bias`` 1.0), drawn at random here; ``RANDOM`` by weight."""
    if policy == "ROUND_ROBIN":
        credit = rr_credit
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
    r = rng.random() * sum(weights)
    for h, w in zip(hosts, weights, strict=True):
        if r < w:
            return h
        r -= w
    return hosts[-1]
