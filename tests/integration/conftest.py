"""Backend fixtures shared by integration tests: every test that asks for ``database_url`` (or
anything built on it) runs once on a SQLite file and once on Postgres.

Postgres: one throwaway database per pytest session (CREATE DATABASE costs ~0.25 s, too much per
test), reset between tests: ``database_url`` hands out an empty public schema,
``migrated_database_url`` a migrated one with every table truncated. Tests that change the
schema itself must use ``database_url``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.engine import create_autocommit_engine, create_engine, session_factory
from storage.migrate import upgrade_database
from storage.write_paths import WritePaths
from tests.conftest import POSTGRES_ADMIN_URL, require_postgres

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Schema bookkeeping that truncating would break: Alembic's and the LangGraph saver's versions.
_KEEP_ROWS_IN = ("alembic_version", "checkpoint_migrations", "store_migrations")


@dataclass
class PostgresTestDatabase:
    name: str
    libpq_url: str  # postgresql:// for asyncpg/psycopg directly
    url: str  # postgresql+asyncpg:// for storage.*
    migrated: bool = False


async def _admin_execute(sql: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres_test_database() -> Iterator[PostgresTestDatabase]:
    require_postgres()
    name = f"draftloop_test_{uuid.uuid4().hex[:12]}"
    # Sync fixture outside any event loop (session scope), so its own short-lived loop is fine.
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rpartition("/")[0]
    libpq_url = f"{base}/{name}"
    try:
        yield PostgresTestDatabase(
            name=name, libpq_url=libpq_url, url=libpq_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
    finally:
        # FORCE: a test that failed mid-way may have left a pooled connection open.
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def postgres_database(backend: str, request: pytest.FixtureRequest) -> PostgresTestDatabase | None:
    """The session's Postgres database on the postgres param, None on sqlite.

    Resolved here, in a sync fixture, because the session fixture starts its own event loop.
    """
    if backend != "postgres":
        return None
    return request.getfixturevalue("postgres_test_database")


async def reset_schema(db: PostgresTestDatabase) -> None:
    conn = await asyncpg.connect(db.libpq_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    db.migrated = False


async def _truncate_tables(db: PostgresTestDatabase) -> None:
    conn = await asyncpg.connect(db.libpq_url)
    try:
        tables = [
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if row["tablename"] not in _KEEP_ROWS_IN
        ]
        if tables:
            quoted = ", ".join(f'"{table}"' for table in tables)
            await conn.execute(f"TRUNCATE {quoted} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def database_url(postgres_database: PostgresTestDatabase | None, tmp_path: Path) -> str:
    """An empty database (no tables) as a SQLAlchemy async URL."""
    if postgres_database is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'draftloop.db'}"
    await reset_schema(postgres_database)
    return postgres_database.url


@pytest.fixture
async def migrated_database_url(postgres_database: PostgresTestDatabase | None, tmp_path: Path) -> str:
    """A database at the head revision with no rows."""
    if postgres_database is None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'draftloop.db'}"
        await upgrade_database(url)
        return url
    if postgres_database.migrated:
        await _truncate_tables(postgres_database)
    else:
        await reset_schema(postgres_database)
        await upgrade_database(postgres_database.url)
        postgres_database.migrated = True
    return postgres_database.url


@pytest.fixture
async def migrated_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(migrated_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(migrated_engine)


@pytest.fixture
async def autocommit_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine | None]:
    """The one-statement writes' engine on Postgres; None on SQLite, which has no such path."""
    engine = create_autocommit_engine(migrated_database_url)
    try:
        yield engine
    finally:
        if engine is not None:
            await engine.dispose()


@pytest.fixture
def write_paths(sessions: async_sessionmaker[AsyncSession], autocommit_engine: AsyncEngine | None) -> WritePaths:
    """What the service's writes get: each picks the one-statement path on Postgres itself."""
    return WritePaths(sessions, autocommit_engine)
