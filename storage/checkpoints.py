"""LangGraph checkpointer for the configured database.

SQLite: checkpoints go to a sibling file of the app database (``draftloop.db`` ->
``draftloop.checkpoints.db``). The saver keeps its own aiosqlite connection and writes on every
step; a separate file keeps its write lock from stalling the SQLAlchemy engine's writers.

Postgres: the same database, through psycopg (the saver's driver) with the connection settings
it requires: autocommit (it manages no transactions itself), prepare_threshold=0 (safe behind
PgBouncer-style poolers) and dict rows (it reads columns by name).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from storage.engine import is_sqlite, normalize_database_url

SQLITE_MEMORY = ":memory:"
POSTGRES_POOL_MAX_SIZE = 10
_SETUP_LOCK_KEY = 0x636B7074  # "ckpt"


def sqlite_checkpoint_path(database_url: str) -> str:
    """The checkpoint file that belongs to a SQLite database URL (``:memory:`` stays in memory)."""
    database = make_url(normalize_database_url(database_url)).database
    if not database or database == SQLITE_MEMORY:
        return SQLITE_MEMORY
    path = Path(database)
    return str(path.with_name(f"{path.stem}.checkpoints{path.suffix or '.db'}"))


SETUP_LOCK_RETRY_SECONDS = 0.1


def postgres_conninfo(database_url: str) -> str:
    """A libpq URL (``postgresql://``) for psycopg; the SQLAlchemy driver suffix is dropped."""
    url = make_url(normalize_database_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def open_checkpointer(database_url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A set-up LangGraph saver for ``database_url``; connections close on exit."""
    if is_sqlite(normalize_database_url(database_url)):
        async with AsyncSqliteSaver.from_conn_string(sqlite_checkpoint_path(database_url)) as saver:
            await saver.setup()
            yield saver
        return
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        postgres_conninfo(database_url),
        min_size=1,
        max_size=POSTGRES_POOL_MAX_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    try:
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(conn=pool)
        async with pool.connection() as lock_conn:
            # setup() runs the saver's migrations unguarded; processes starting together would
            # race on them, so they take turns. A blocking pg_advisory_lock would deadlock: the
            # waiter's open statement holds a snapshot that the holder's CREATE INDEX
            # CONCURRENTLY waits for. A try-lock loop waits between statements instead.
            while not (await (await lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS locked", (_SETUP_LOCK_KEY,))).fetchone())["locked"]:
                await asyncio.sleep(SETUP_LOCK_RETRY_SECONDS)
            try:
                await saver.setup()
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
        yield saver
    finally:
        await pool.close()
