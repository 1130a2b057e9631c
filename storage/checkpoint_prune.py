"""Deleting some of a thread's checkpoints: all but the latest (``POST /threads/prune`` with
``strategy: "keep_latest"``), or those one run wrote (cancelling a run with ``action=rollback``).

LangGraph's savers declare ``aprune`` and ``adelete_for_runs``. The Postgres saver implements
``aprune`` (its keep_latest is snapshot-safe against a run writing meanwhile) and is used as is;
the SQLite saver implements neither, and neither implements ``adelete_for_runs``, so those are
done here in each saver's own tables, in one transaction each. A run's checkpoints are the ones
whose metadata names it (``run_id``, which app/engine/api_runs.py ``run_config`` sets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

_SQLITE_HEADS = "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns"
# Writes go by the checkpoints deleted, not by "every other id": a run saves a step's writes in
# the background, and they can land before their checkpoint does.
_SQLITE_PRUNE = (
    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id IN ("
    " SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?)",
    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?",
)
# The kept checkpoint's parent is gone: it is left with none, as the Postgres saver's prune does.
_SQLITE_ORPHAN = "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
# The run id inside the JSON metadata, read as the saver's own metadata filter reads it.
_SQLITE_DROP_RUN = (
    "DELETE FROM writes WHERE thread_id = ? AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = writes.thread_id"
    " AND c.checkpoint_ns = writes.checkpoint_ns AND c.checkpoint_id = writes.checkpoint_id"
    " AND json_extract(CAST(c.metadata AS TEXT), '$.run_id') = ?)",
    "DELETE FROM checkpoints WHERE thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
)

# One row per deleted checkpoint and channel version it read (versions as text, as the blob rows
# hold them: what jsonb renders).
_PG_DROP_RUN = """
WITH deleted AS (
    DELETE FROM checkpoints WHERE thread_id = %s AND metadata ->> 'run_id' = %s
    RETURNING checkpoint_ns, checkpoint_id, checkpoint -> 'channel_versions' AS versions
)
SELECT d.checkpoint_ns, d.checkpoint_id, v.key AS channel, v.value AS version
FROM deleted d LEFT JOIN LATERAL jsonb_each_text(d.versions) AS v ON true
"""
_PG_DROP_WRITES = """
DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = ANY(%s)
"""
# The channel versions the namespace's remaining checkpoints still read.
_PG_REFERENCED = """
SELECT DISTINCT v.key AS channel, v.value AS version
FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.thread_id = %s AND c.checkpoint_ns = %s
"""
_PG_DROP_BLOBS = """
DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = ANY(%s)
"""


async def keep_latest(saver: BaseCheckpointSaver[Any], thread_id: str) -> None:
    """Delete every checkpoint of the thread but the latest of each namespace (the one its state
    is read from), with their pending writes; the kept one keeps its own writes (an interrupt
    stays resumable) and loses its parent."""
    if type(saver).aprune is not BaseCheckpointSaver.aprune:
        await saver.aprune([thread_id], strategy="keep_latest")
        return
    if not isinstance(saver, AsyncSqliteSaver):
        raise TypeError(f"cannot prune the checkpoints of a {type(saver).__name__}")
    async with _sqlite_transaction(saver):
        async with saver.conn.execute(_SQLITE_HEADS, (thread_id,)) as cursor:
            heads = [(str(ns), str(head)) for ns, head in await cursor.fetchall()]
        prune_writes, prune_checkpoints = _SQLITE_PRUNE
        for namespace, head in heads:
            await _sqlite_run(saver, prune_writes, (thread_id, namespace, thread_id, namespace, head))
            await _sqlite_run(saver, prune_checkpoints, (thread_id, namespace, head))
            await _sqlite_run(saver, _SQLITE_ORPHAN, (thread_id, namespace, head))


async def delete_run_checkpoints(saver: BaseCheckpointSaver[Any], thread_id: str, run_id: str) -> int:
    """Delete the checkpoints ``run_id`` wrote on the thread, with their writes (and, on Postgres,
    the channel blobs no other checkpoint reads); how many checkpoints went. The thread's state
    is then what it was before the run, as long as no later run built on them."""
    if isinstance(saver, AsyncSqliteSaver):
        drop_writes, drop_checkpoints = _SQLITE_DROP_RUN
        async with _sqlite_transaction(saver):
            await _sqlite_run(saver, drop_writes, (thread_id, run_id))
            return await _sqlite_run(saver, drop_checkpoints, (thread_id, run_id))
    if isinstance(saver, AsyncPostgresSaver):
        return await _postgres_drop_run(saver, thread_id, run_id)
    raise TypeError(f"cannot delete a run's checkpoints from a {type(saver).__name__}")


@asynccontextmanager
async def _sqlite_transaction(saver: AsyncSqliteSaver) -> AsyncIterator[None]:
    """The saver's one connection, held (its lock) for statements that commit or roll back
    together."""
    async with saver.lock:
        try:
            yield
        except BaseException:
            await saver.conn.rollback()
            raise
        await saver.conn.commit()


async def _sqlite_run(saver: AsyncSqliteSaver, sql: str, params: tuple[str, ...]) -> int:
    """One statement inside _sqlite_transaction; the rows it changed."""
    async with saver.conn.execute(sql, params) as cursor:
        return max(cursor.rowcount, 0)


@asynccontextmanager
async def _postgres_connection(saver: AsyncPostgresSaver) -> AsyncIterator[AsyncConnection[DictRow]]:
    conn = saver.conn
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            yield pooled
    else:
        async with saver.lock:
            yield conn


async def _postgres_drop_run(saver: AsyncPostgresSaver, thread_id: str, run_id: str) -> int:
    async with _postgres_connection(saver) as conn, conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(_PG_DROP_RUN, (thread_id, run_id))
        checkpoints: dict[str, set[str]] = {}
        freed: dict[str, set[tuple[str, str]]] = {}
        for row in await cursor.fetchall():
            namespace = str(row["checkpoint_ns"])
            checkpoints.setdefault(namespace, set()).add(str(row["checkpoint_id"]))
            if row["channel"] is not None:
                freed.setdefault(namespace, set()).add((str(row["channel"]), str(row["version"])))
        for namespace, ids in checkpoints.items():
            await cursor.execute(_PG_DROP_WRITES, (thread_id, namespace, sorted(ids)))
            await cursor.execute(_PG_REFERENCED, (thread_id, namespace))
            referenced = {(str(row["channel"]), str(row["version"])) for row in await cursor.fetchall()}
            for channel, versions in _by_channel(freed.get(namespace, set()) - referenced).items():
                await cursor.execute(_PG_DROP_BLOBS, (thread_id, namespace, channel, versions))
    return sum(len(ids) for ids in checkpoints.values())


def _by_channel(blobs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for channel, version in sorted(blobs):
        grouped.setdefault(channel, []).append(version)
    return grouped
