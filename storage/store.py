"""LangGraph's long-term memory store (``BaseStore``) on the configured database.

SQLite: LangGraph's own AsyncSqliteStore in a sibling file of the app database
(``draftloop.db`` -> ``draftloop.store.db``), so its write lock stalls neither the app's writers
nor the checkpointer's.

Postgres: LangGraph's own AsyncPostgresStore on the checkpointer's read pool (psycopg, autocommit,
dict rows: the settings both want), so the store costs no connections of its own out of the
shared budget. Its tables (``store``, ``store_migrations``) sit next to the checkpointer's.

The store keeps no vector index: search filters and pages, without a semantic query.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from storage.engine import is_sqlite, normalize_database_url

SQLITE_MEMORY = ":memory:"
SETUP_LOCK_RETRY_SECONDS = 0.1
_SETUP_LOCK_KEY = 0x73746F7265  # "store"


def sqlite_store_path(database_url: str) -> str:
    """The store file that belongs to a SQLite database URL (``:memory:`` stays in memory)."""
    database = make_url(normalize_database_url(database_url)).database
    if not database or database == SQLITE_MEMORY:
        return SQLITE_MEMORY
    path = Path(database)
    return str(path.with_name(f"{path.stem}.store{path.suffix or '.db'}"))


@asynccontextmanager
async def open_sqlite_store(database_url: str) -> AsyncIterator[BaseStore]:
    """A set-up AsyncSqliteStore beside the SQLite database; its connection closes on exit."""
    async with AsyncSqliteStore.from_conn_string(sqlite_store_path(database_url)) as store:
        await store.setup()
        yield store


async def postgres_store(pool: AsyncConnectionPool[Any]) -> BaseStore:
    """A set-up AsyncPostgresStore on ``pool`` (the caller owns and closes the pool)."""
    store = AsyncPostgresStore(pool)
    async with pool.connection() as lock_conn:
        # As the checkpointer's set-up (storage/checkpoints.py): processes starting together take
        # turns on the store's unguarded migrations, with a try-lock loop between statements.
        while not (await (await lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS locked", (_SETUP_LOCK_KEY,))).fetchone())["locked"]:
            await asyncio.sleep(SETUP_LOCK_RETRY_SECONDS)
        try:
            await store.setup()
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
    return store


@asynccontextmanager
async def open_store(database_url: str, checkpointer: Any) -> AsyncIterator[BaseStore]:
    """The store for ``database_url``; on Postgres it shares ``checkpointer``'s psycopg pool."""
    url = normalize_database_url(database_url)
    if is_sqlite(url):
        async with open_sqlite_store(url) as store:
            yield store
        return
    pool = getattr(checkpointer, "conn", None)
    if not isinstance(pool, AsyncConnectionPool):
        raise TypeError(f"the Postgres store needs the checkpointer's connection pool, got {pool!r}")
    yield await postgres_store(pool)
