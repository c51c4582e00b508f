"""A throw-away PostgreSQL and Redis for tests, on free 127.0.0.1 ports (Debian's `postgresql`
and `redis-server`, which `bin/setup --test` installs), each stopped by its PID afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.services.stack import free_port

__all__ = ["postgres_server", "redis_server"]


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    assert found, "PostgreSQL is not installed (bin/setup --test installs it)"
    return found[-1].parent


def _wait(check: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def _stop(server: subprocess.Popen[bytes], timeout_s: float) -> None:
    server.terminate()  # SIGTERM: PostgreSQL's smart shutdown, Redis's orderly exit
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


@contextmanager
def postgres_server(max_connections: int = 100) -> Iterator[str]:
    """A fresh PostgreSQL cluster with an empty database ``shop`` (owner ``shop``, trust auth);
    yields its URL. As root, it runs as the ``postgres`` user (PostgreSQL refuses root)."""
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="meshplay-pg-"))
    if as_root:
        shutil.chown(folder, "postgres", "postgres")
    user = {"user": "postgres", "group": "postgres"} if as_root else {}
    data, port = folder / "data", free_port()
    subprocess.run(
        [_pg_bin() / "initdb", "-D", data, "-U", "shop", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **user,  # type: ignore[arg-type]
    )
    settings = ["listen_addresses=127.0.0.1", "fsync=off", f"max_connections={max_connections}"]
    server = subprocess.Popen(
        [_pg_bin() / "postgres", "-D", data, "-p", str(port), "-k", folder,
         *(arg for s in settings for arg in ("-c", s))],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "postgres.log").open("wb") if not as_root else subprocess.DEVNULL,
        **user,  # type: ignore[arg-type]
    )  # fmt: skip
    admin = f"postgresql://shop@127.0.0.1:{port}/postgres"
    try:
        _wait(lambda: psycopg.connect(admin, connect_timeout=2).close() is None, "postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
        yield f"postgresql://shop@127.0.0.1:{port}/shop"
    finally:
        _stop(server, 15)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis without persistence whose working directory is ``folder``; yields its URL."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(lambda: redis.Redis.from_url(url).ping(), "redis")
        yield url
    finally:
        _stop(server, 10)
