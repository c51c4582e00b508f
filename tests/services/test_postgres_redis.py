"""The same shop on a real PostgreSQL and Redis, both started by the test on free ports (Debian's
`postgresql` and `redis-server`) and stopped by PID: schema created at start by several replicas
at once, orders in PostgreSQL, catalog and profiles cached in Redis, and an acknowledged order
survives restarts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from tests.services.databases import postgres_server, redis_server
from tests.services.stack import Stack, free_port, running_shop

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def pg_shop(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    with running_shop(tmp_path_factory.mktemp("pgshop"), env) as stack:
        # A second product version on the same database, as product-v1/v2 share one in Kubernetes.
        v2 = stack.start(
            "product@v2",
            {**stack.procs["product"].env, "VERSION": "v2", "ADMIN_PORT": str(free_port())},
        )
        stack.wait_ready([v2.name])
        yield stack


def test_the_shop_runs_on_postgres_and_redis_end_to_end(
    pg_shop: Stack, postgres_url: str, redis_url: str
) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=pg_shop.url("api-gateway"), trust_env=False, timeout=20) as api:
        assert (
            api.post(
                "/api/users", json={"email": email, "password": "pg-pass-1", "name": "Pg"}
            ).status_code
            == 201
        )
        token = api.post("/api/login", json={"email": email, "password": "pg-pass-1"}).json()[
            "access_token"
        ]
        auth = {"Authorization": f"Bearer {token}"}
        assert len(api.get("/api/products").json()["items"]) == 8
        placed = api.post(
            "/api/orders",
            json={"items": [{"product_id": "beans-brazil", "quantity": 3}]},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        ).json()
        assert (placed["status"], placed["notified"]) == ("paid", True)
        assert api.get("/api/me", headers=auth).json()["user"]["email"] == email
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT status, total_cents FROM orders WHERE id = %s", (placed["id"],)
        ).fetchone()
        assert row == ("paid", 3 * 1300)
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (8,)  # seeded once
        hashed = conn.execute(
            "SELECT password_hash FROM users WHERE email = %s", (email,)
        ).fetchone()
        assert hashed is not None and hashed[0].startswith("scrypt$")
        assert conn.execute(
            "SELECT count(*) FROM outbox WHERE order_id = %s", (placed["id"],)
        ).fetchone() == (1,)
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    assert any(key.startswith("user:profile:") for key in cache.keys("user:*"))
    v2 = httpx.get(pg_shop.url("product@v2") + "/products/grinder", trust_env=False).json()
    assert v2["rating"] == 4.8
    assert v2["served_by"] == "product-v2"


def test_an_acknowledged_order_survives_restarts_on_postgres(pg_shop: Stack) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=pg_shop.url("api-gateway"), trust_env=False, timeout=20) as api:
        api.post("/api/users", json={"email": email, "password": "pg-pass-1", "name": "Pg"})
        token = api.post("/api/login", json={"email": email, "password": "pg-pass-1"}).json()[
            "access_token"
        ]
        auth = {"Authorization": f"Bearer {token}"}
        placed = api.post(
            "/api/orders",
            json={"items": [{"product_id": "espresso-cup", "quantity": 1}]},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        ).json()
    for name in ("order", "user", "product", "payment"):
        pg_shop.restart(name)
    with httpx.Client(base_url=pg_shop.url("api-gateway"), trust_env=False, timeout=20) as api:
        assert api.get(f"/api/orders/{placed['id']}", headers=auth).json() == placed
