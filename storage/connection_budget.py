"""The Postgres connections one Draftloop process may hold, and how many it holds now.

Several processes share one server (`serve --workers 2` is three: the API process and two
workers), and max_connections is often 100, shared with whatever else uses that server. So
every pool is bounded, and their sum here is what docs/deployment.md (Connection budget) gives
for sizing max_connections. The pools open connections on demand and keep them: this is a ceiling, not
what an idle process holds (about four: the listener and one for each pool that was used).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from storage.checkpoints import READ_POOL_MAX_SIZE, WRITE_POOL_MAX_SIZE, PooledPostgresSaver
from storage.engine import AUTOCOMMIT_POOL_OVERFLOW, AUTOCOMMIT_POOL_SIZE, POSTGRES_POOL_OVERFLOW, POSTGRES_POOL_SIZE
from storage.notifications import LISTENER_CONNECTIONS

# The most each of a process's pools may hold at once, by the name /ready reports it under.
POSTGRES_CONNECTIONS: dict[str, int] = {
    "database": POSTGRES_POOL_SIZE + POSTGRES_POOL_OVERFLOW,
    "database_autocommit": AUTOCOMMIT_POOL_SIZE + AUTOCOMMIT_POOL_OVERFLOW,
    "checkpoint_reads": READ_POOL_MAX_SIZE,
    "checkpoint_writes": WRITE_POOL_MAX_SIZE,
    "listener": LISTENER_CONNECTIONS,
}
POSTGRES_CONNECTIONS_PER_PROCESS = sum(POSTGRES_CONNECTIONS.values())
# Start-up migrations hold one more connection for as long as they run, before the pools open.
MIGRATION_CONNECTIONS = 1


def pool_usage(engine: AsyncEngine, autocommit_engine: AsyncEngine | None, checkpointer: object) -> dict[str, dict[str, int]]:
    """Per pool: connections checked out now, and the most it may hold (``size``).

    Pools the backend lacks (SQLite has no autocommit engine, and its checkpointer keeps one
    connection of its own) are left out.
    """
    usage = {"database": _engine_usage(engine)}
    if autocommit_engine is not None:
        usage["database_autocommit"] = _engine_usage(autocommit_engine)
    if isinstance(checkpointer, PooledPostgresSaver):
        usage["checkpoint_reads"] = _psycopg_usage(checkpointer.conn)
        usage["checkpoint_writes"] = _asyncpg_usage(checkpointer.writer)
    return usage


def _engine_usage(engine: AsyncEngine) -> dict[str, int]:
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        # SQLite's in-memory and single-connection pools have no size to speak of.
        return {"checked_out": 0, "size": 1}
    # size() is pool_size only; QueuePool keeps max_overflow private and offers no accessor
    # (-1 would mean unbounded, which no engine of ours asks for).
    return {"checked_out": pool.checkedout(), "size": pool.size() + max(getattr(pool, "_max_overflow", 0), 0)}


def _psycopg_usage(pool: Any) -> dict[str, int]:
    if not isinstance(pool, AsyncConnectionPool):
        return {"checked_out": 0, "size": 0}
    stats = pool.get_stats()
    return {"checked_out": stats.get("pool_size", 0) - stats.get("pool_available", 0), "size": pool.max_size}


def _asyncpg_usage(pool: asyncpg.Pool) -> dict[str, int]:
    return {"checked_out": pool.get_size() - pool.get_idle_size(), "size": pool.get_max_size()}
