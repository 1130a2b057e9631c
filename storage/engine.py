"""Database URL resolution, async engine and session factory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from tools.settings_reader import Placement, Setting, optional_str_setting, str_setting

DEFAULT_DATA_DIR = "./.data"
SQLITE_DB_NAME = "draftloop.db"
# Long enough that a burst of concurrent runs queues for the write lock instead of failing.
SQLITE_BUSY_TIMEOUT_MS = 30000
POSTGRES_POOL_RECYCLE_SECONDS = 1800
# Connections per process, opened on demand and then kept. Bounded: several processes share
# one server (max_connections is often 100), and a full pool queues in asyncio, which is fair.
# storage/connection_budget.py sums every pool of a process; docs/deployment.md sizes servers by it.
# No overflow: SQLAlchemy closes an overflow connection as soon as it is returned to a full
# pool, so every burst opened and closed backends again (13-19 per bench round, each a fork,
# an authentication and a cold statement cache in Postgres and in asyncpg).
# This pool serves transactions (writes, and reads that must see one moment).
POSTGRES_POOL_SIZE = 4
POSTGRES_POOL_OVERFLOW = 0
# The autocommit pool (create_autocommit_engine) serves short single statements: the API's
# reads, queueing, claiming, event batches and run ends. As many as the transaction pool: most
# requests are reads.
AUTOCOMMIT_POOL_SIZE = 4
AUTOCOMMIT_POOL_OVERFLOW = 0

_EXAMPLE_URLS = "postgresql+asyncpg://user:password@host:5432/draftloop or sqlite:///path/to/draftloop.db"
_POSTGRES_ALIASES = ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2")


_STORAGE: Placement = {"section": "Storage", "read_by": "database_url_from_env"}
DATABASE_URL = optional_str_setting(
    "DATABASE_URL", "`postgresql+asyncpg://user:pass@host:5432/db`. Draftloop also accepts `postgres://`, "
    "`postgresql://`, `postgresql+psycopg://` and `sqlite:///path`.", shown_default="unset (SQLite file)",
    **_STORAGE)
DRAFTLOOP_DATA_DIR = str_setting(
    "DRAFTLOOP_DATA_DIR", DEFAULT_DATA_DIR, "Directory for the SQLite files when `DATABASE_URL` is unset. It is "
    "relative to the current directory and is created if missing.", **_STORAGE)
STORAGE_SETTINGS: tuple[Setting[Any], ...] = (DATABASE_URL, DRAFTLOOP_DATA_DIR)


def database_url_from_env(env: Mapping[str, str]) -> str:
    """The one place DATABASE_URL is resolved: normalised for SQLAlchemy's async drivers, or a
    SQLite file under DRAFTLOOP_DATA_DIR.

    Sync on purpose: it may create the data dir, so call it before the event loop starts
    (or through ``asyncio.to_thread``).
    """
    configured = DATABASE_URL.read(env)
    if configured:
        return normalize_database_url(configured)
    data_dir = Path(DRAFTLOOP_DATA_DIR.read(env)).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data_dir / SQLITE_DB_NAME}"


def normalize_database_url(url: str, source: str = "DATABASE_URL") -> str:
    """Map the spellings people put in DATABASE_URL onto the async drivers we ship. A URL that
    cannot be used is a ValueError naming ``source``, where the value came from (the variable,
    or a command's --database-url), and never echoing the value: it may hold a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{source} is not a database URL; use e.g. {_EXAMPLE_URLS}") from None
    if parsed.drivername in _POSTGRES_ALIASES:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername not in ("sqlite+aiosqlite",):
        raise ValueError(f"{source} names an unsupported database driver {parsed.drivername!r}; "
                         f"use SQLite or PostgreSQL, e.g. {_EXAMPLE_URLS}")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgres(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An AsyncEngine configured for the backend named by ``url``."""
    normalized = normalize_database_url(url)
    if is_sqlite(normalized):
        engine = create_async_engine(normalized, echo=echo)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine
    engine = create_async_engine(
        normalized, echo=echo, pool_pre_ping=False, pool_recycle=POSTGRES_POOL_RECYCLE_SECONDS,
        pool_size=POSTGRES_POOL_SIZE, max_overflow=POSTGRES_POOL_OVERFLOW,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def _discard_closed_connection(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry,
                               _proxy: object) -> None:
    """Refuse a pooled connection that the server already closed, so that the pool opens a new
    one instead of handing it out.

    After an outage or a Postgres restart the pool still holds connections whose server end is
    gone; without this the first request on each failed (a 500, later a 503) although the
    database was back. asyncpg notices the server's close as soon as the event loop reads it,
    so asking it costs nothing, where pool_pre_ping's round trip per checkout doubled the round
    trips of a simple read under load (bench/RESULTS.md). A connection cut without a close (a
    network partition) still fails its first use: a 503 to that request, after which
    SQLAlchemy recycles the whole pool; pool_recycle retires connections before proxies' idle
    timeouts cut them.
    """
    driver_connection = getattr(dbapi_connection, "driver_connection", None)
    if isinstance(driver_connection, asyncpg.Connection) and driver_connection.is_closed():
        # SQLAlchemy's documented signal: discard this connection and check out another.
        raise DisconnectionError("the database closed this pooled connection")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: returned ORM objects stay readable after commit without
    # triggering lazy IO, which async sessions cannot do implicitly.
    return async_sessionmaker(engine, expire_on_commit=False)


def create_autocommit_engine(url: str) -> AsyncEngine | None:
    """Postgres: a second, smaller pool whose connections are born in autocommit mode, for
    reads that need no transaction around them and for statements that are atomic on their
    own (the one-statement writes in storage.tasks, leases, task_events, outcomes). Each then costs one round trip instead of BEGIN, statement and
    COMMIT/ROLLBACK, which under load cost a cheap GET two thirds of its time (bench/RESULTS.md).
    Born so, because switching a pooled connection to autocommit per checkout and back per
    return costs CPU on every request.

    None on SQLite: pysqlite begins a transaction only before a write, so reads take no extra
    round trip, and switching isolation levels costs a PRAGMA per checkout there.
    """
    normalized = normalize_database_url(url)
    if not is_postgres(normalized):
        return None
    engine = create_async_engine(
        normalized, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_recycle=POSTGRES_POOL_RECYCLE_SECONDS,
        pool_size=AUTOCOMMIT_POOL_SIZE, max_overflow=AUTOCOMMIT_POOL_OVERFLOW,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def read_session_factory(engine: AsyncEngine, autocommit_engine: AsyncEngine | None) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads that need no transaction (one SELECT, or several that may see
    different moments). Never write through these."""
    return session_factory(autocommit_engine or engine)


def _configure_sqlite_connection(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers proceed while the executor writes; SQLite leaves FKs off by default,
        # and ON DELETE CASCADE for attempts/usage depends on them.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL stays consistent after a crash and only risks the last commits on a
        # power loss; FULL's fsync per commit costs ~15x per write under load (bench/RESULTS.md).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
