"""A small key-value cache: Redis when `REDIS_URL` is set, otherwise process memory.

user keeps profiles in it (read by `/users/me`), product the catalog rows. Entries expire; the
source of truth is always the database, so losing the cache only costs a database read.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl_s: float) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def ready(self) -> bool: ...
    async def aclose(self) -> None: ...


class MemoryCache:
    """A per-process cache with expiry (what a replica has when no Redis is configured)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if time.monotonic() >= expires:
            self._items.pop(key, None)
            return None
        return value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        self._items[key] = (time.monotonic() + ttl_s, value)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._items.pop(key, None)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._items.clear()


class RedisCache:
    """The cache in Redis, shared by all replicas. A Redis failure reads as a miss."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self._prefix = prefix

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self._prefix + key)
        except RedisError:
            return None
        return value if isinstance(value, str) else None

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        try:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except RedisError:
            return

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            await self._redis.delete(*(self._prefix + key for key in keys))
        except RedisError:
            return

    async def ready(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_cache(redis_url: str | None, prefix: str) -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache()
