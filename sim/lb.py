"""Envoy's load balancers over a cluster's available hosts.

``LEAST_REQUEST`` (Istio's default): draw two hosts uniformly at random *with replacement* and
keep the one with fewer requests in flight from this proxy (ties keep the first draw): the
"power of two choices". ``ROUND_ROBIN`` cycles, ``RANDOM`` is uniform. ``RING_HASH`` places every
host at ``ceil(minimum_ring_size / hosts)`` points on a 64-bit ring and sends a request to the
first point clockwise of its hash; ``MAGLEV`` fills a lookup table with each host's permutation.
Both keep a key on the same host while the host set is unchanged, and move about ``1/N`` of the
keys when one of N hosts leaves. A request without a hash key goes to a random host.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Hashable", "maglev_table", "pick_hashed", "ring", "stable_hash"]


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
