"""Several replicas on one PostgreSQL: the races the chaos test's replicas could hit, each made
to happen on purpose.

* Two order replicas' confirmation relays run the same round at the same moment: each owed
  confirmation is sent by one of them only (``SELECT ... FOR UPDATE SKIP LOCKED``, held until
  the round has marked what it sent), and a round that dies before marking leaves its rows to
  the next one.
* Several user replicas start together on an empty database: one signing key is created, and
  every replica loads it (a table lock makes them take turns; without it each could create its
  own key and sign tokens the others cannot verify).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.common.settings import Settings
from services.common.storage import Store
from services.order import outbox
from services.order.models import Base as OrderBase
from services.order.models import Order, OrderItem
from services.user.app import UserService
from tests.services.databases import postgres_server

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_server() as url:
        yield url


class _SlowNotification:
    """Stands in for the mesh's call to notification: accepts after a while, counting calls."""

    def __init__(self, calls: Counter[str], fail: bool = False) -> None:
        self.calls = calls
        self.fail = fail

    async def call(self, method: str, service: str, path: str, **kw: Any) -> Any:
        await asyncio.sleep(0.05)
        self.calls[kw["json"]["order_id"]] += 1
        return type("R", (), {"status_code": 503 if self.fail else 202})()


def _owed(store: Store, n: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(n)]
    at = datetime.now(UTC)
    with store.sessions.begin() as s:
        for i, oid in enumerate(ids):
            order = Order(id=oid, user_id="u", email="a@example.com", idempotency_key=oid,
                          status="paid", total_cents=100, currency="USD", notified=False,
                          created_at=at + timedelta(milliseconds=i), updated_at=at)  # fmt: skip
            order.items = [OrderItem(position=0, product_id="p", quantity=1, name="P", unit_price_cents=100)]  # fmt: skip
            s.add(order)
    return ids


def _store(pg: str, tmp_path: Path) -> Store:
    store = Store(Settings(service="order", database_url=pg, data_dir=tmp_path), OrderBase)
    store.create_schema()
    return store


def test_two_order_replicas_relay_each_owed_confirmation_once(pg: str, tmp_path: Path) -> None:
    replicas = [_store(pg, tmp_path), _store(pg, tmp_path)]
    try:
        ids = _owed(replicas[0], outbox.BATCH)
        calls: Counter[str] = Counter()

        async def both() -> list[int]:
            return list(await asyncio.gather(*(
                outbox.relay_once(_SlowNotification(calls), r) for r in replicas  # type: ignore[arg-type]
            )))  # fmt: skip

        sent = asyncio.run(both())
        assert sum(sent) == len(ids)
        assert dict(calls) == dict.fromkeys(ids, 1)  # each sent once, by one replica or the other
        assert asyncio.run(outbox.relay_once(_SlowNotification(calls), replicas[1])) == 0  # type: ignore[arg-type]
    finally:
        for r in replicas:
            r.dispose()


def test_a_round_that_fails_leaves_its_rows_to_the_next(pg: str, tmp_path: Path) -> None:
    """notification refuses: the round stops at its first refusal and marks nothing; the next
    round (another replica) sends them all."""
    replicas = [_store(pg, tmp_path), _store(pg, tmp_path)]
    try:
        with psycopg.connect(pg) as conn:
            conn.execute("UPDATE orders SET notified = true")
        ids = _owed(replicas[0], 3)
        calls: Counter[str] = Counter()
        down = _SlowNotification(calls, fail=True)
        assert asyncio.run(outbox.relay_once(down, replicas[0])) == 0  # type: ignore[arg-type]
        assert sum(calls.values()) == 1
        calls.clear()
        assert asyncio.run(outbox.relay_once(_SlowNotification(calls), replicas[1])) == 3  # type: ignore[arg-type]
        assert dict(calls) == dict.fromkeys(ids, 1)
    finally:
        for r in replicas:
            r.dispose()


def test_user_replicas_starting_together_share_one_signing_key(tmp_path: Path) -> None:
    with postgres_server() as fresh:
        services = [UserService(Settings(service="user", database_url=fresh, data_dir=tmp_path))
                    for _ in range(4)]  # fmt: skip
        try:
            services[0].store.create_schema()

            def start(svc: UserService) -> list[str]:
                svc.load_keys()
                return [kid for kid, _ in svc.keys]

            with ThreadPoolExecutor(len(services)) as pool:
                loaded = list(pool.map(start, services))
            with psycopg.connect(fresh) as conn:
                stored = conn.execute("SELECT count(*) FROM signing_keys").fetchone()
            assert stored == (1,)
            assert all(kids == loaded[0] for kids in loaded) and len(loaded[0]) == 1
        finally:
            for svc in services:
                svc.store.dispose()
