"""Storage: SQLAlchemy on a SQLite file per service by default, PostgreSQL when `DATABASE_URL`
is set. The schema is created at start; several replicas (product-v1 and product-v2) may start
at once against one PostgreSQL, so schema creation and seeding are retried on a clash."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from services.common.settings import Settings

log = logging.getLogger("services.storage")
T = TypeVar("T")


def database_url(settings: Settings) -> str:
    """`DATABASE_URL` with the psycopg 3 driver, or the service's SQLite file in `DATA_DIR`."""
    if settings.database_url:
        url = settings.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = (settings.data_dir / f"{settings.service.replace('-', '_')}.db").resolve()
    _private(path)
    return f"sqlite:///{path}"


def _private(path: Path) -> None:
    """Make the SQLite file (which holds password hashes and, for user, the JWT signing keys)
    readable by its owner only: created 0600, or narrowed to 0600 if it exists. SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


def make_engine(settings: Settings) -> Engine:
    url = database_url(settings)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def retry_on_clash(action: Callable[[], T], attempts: int = 8) -> T:
    """Run `action`, retrying when a concurrent replica created the same table or row first."""
    for attempt in range(attempts):
        try:
            return action()
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if attempt == attempts - 1:
                raise
            log.info("storage set-up clashed with another replica, retrying: %s", exc)
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


class Store:
    """An engine and a session factory; `run` executes a unit of work in a worker thread."""

    def __init__(self, settings: Settings, base: type[DeclarativeBase]) -> None:
        self.engine = make_engine(settings)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._base = base

    def create_schema(self) -> None:
        retry_on_clash(lambda: self._base.metadata.create_all(self.engine))

    def ready(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError:
            return False
        return True

    async def check(self) -> bool:
        """Readiness: the database answers."""
        return await run_in_threadpool(self.ready)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, off the event loop."""

        def _unit() -> T:
            with self.sessions.begin() as session:
                return work(session)

        return await run_in_threadpool(_unit)

    def dispose(self) -> None:
        self.engine.dispose()
