"""LangGraph checkpointer for the configured database.

SQLite: checkpoints go to a sibling file of the app database (``draftloop.db`` ->
``draftloop.checkpoints.db``). The saver keeps its own aiosqlite connection and writes on every
step; a separate file keeps its write lock from stalling the SQLAlchemy engine's writers.

Postgres: the same database and LangGraph's own tables. Reads, set-up and deletes go through
psycopg (the stock saver's driver) with the connection settings it requires: autocommit (it
manages no transactions itself), prepare_threshold=0 (safe behind PgBouncer-style poolers) and
dict rows (it reads columns by name). The writes of every step go through asyncpg
(PooledPostgresSaver).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from storage.engine import is_sqlite, normalize_database_url
from storage.storable import storable_json

SQLITE_MEMORY = ":memory:"
# The checkpointer's connections per process, reads (psycopg) and writes (asyncpg): four in all,
# part of the per-process budget (storage/connection_budget.py). Reads (state, history, a
# run's resume) are rare; each write is one short statement, so two connections keep up with
# WORKER_CONCURRENCY runs stepping at once.
READ_POOL_MAX_SIZE = 2
WRITE_POOL_MAX_SIZE = 2
READ_POOL_TIMEOUT_SECONDS = 5.0
READ_POOL_RECONNECT_SECONDS = 2.0
_SETUP_LOCK_KEY = 0x636B7074  # "ckpt"


def sqlite_checkpoint_path(database_url: str) -> str:
    """The checkpoint file that belongs to a SQLite database URL (``:memory:`` stays in memory)."""
    database = make_url(normalize_database_url(database_url)).database
    if not database or database == SQLITE_MEMORY:
        return SQLITE_MEMORY
    path = Path(database)
    return str(path.with_name(f"{path.stem}.checkpoints{path.suffix or '.db'}"))


SETUP_LOCK_RETRY_SECONDS = 0.1


async def keep_session(connection: asyncpg.Connection) -> None:
    """The write pool's reset on release: nothing to do.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` after every use, a second round trip for each checkpoint write. The write connections
    only ever run single autocommit statements and change no session state, so there is
    nothing to undo; asyncpg still rolls back a transaction left open before calling this.
    """


# One statement per checkpoint: its new channel blobs and its row, atomic without a transaction.
# Versions arrive as one JSON array ($4) and each becomes text through ->>, as the read side
# renders them (checkpoint -> 'channel_versions' ->> channel, in the stock saver's SELECT). A
# version may be a str, int or float (ChannelVersions); a text[] bind refused ints, and str() in
# Python would not match what jsonb renders for every float (1e+20), so the blob would not be read.
# Rows are the stock saver's for str and int versions; for a float such as 1.0 the stock saver
# stores '1' against a checkpoint naming 1.0 and then misses the blob on read, this one does not.
PUT_CHECKPOINT_SQL = """
WITH blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT $1, $2, b.channel, $4::jsonb ->> (b.position - 1)::int, b.type, b.blob
    FROM unnest($3::text[], $5::text[], $6::bytea[]) WITH ORDINALITY AS b(channel, type, blob, position)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
VALUES ($1, $2, $7, $8, $9::jsonb, $10::jsonb)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""
_PUT_WRITES_SQL = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
SELECT $1, $2, $3, $4, $5, w.idx, w.channel, w.type, w.blob
FROM unnest($6::int[], $7::text[], $8::text[], $9::bytea[]) AS w(idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) """
# Special writes (errors, interrupts, ...) replace an earlier one at their index; the others
# keep the first copy, as the stock saver does.
UPSERT_WRITES_SQL = _PUT_WRITES_SQL + "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
INSERT_WRITES_SQL = _PUT_WRITES_SQL + "DO NOTHING"


class PooledPostgresSaver(AsyncPostgresSaver):
    """AsyncPostgresSaver tuned for many concurrent runs in one process.

    - Operations run side by side, each on a connection of the pool. The stock saver puts every
      operation of the process behind one ``asyncio.Lock``, which one shared connection needs;
      on a pool the lock only queued every run's checkpoint writes behind one another.
    - The two writes of every step (``aput`` and ``aput_writes``) go through asyncpg as one
      prepared statement each, serialised in the event loop. The stock path (psycopg pipeline,
      a thread hop per serialisation) cost about twice the CPU per write; with durability
      "sync" there are about ten of them per run. Reads, set-up and deletes stay on psycopg.

    The rows are the stock saver's, so either saver reads what the other wrote.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], writer: asyncpg.Pool) -> None:
        super().__init__(conn=pool)
        self.writer = writer
        # The base class only enters the lock (``async with self.lock``); a null context keeps
        # that protocol without queueing.
        self.lock = nullcontext()  # type: ignore[assignment]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        values = checkpoint["channel_values"]
        if any(isinstance(value, _DeltaSnapshot) for value in values.values()):
            # Delta channels have a storage format of their own; the stock code knows it.
            return await super().aput(config, checkpoint, metadata, new_versions)
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        inline = {key: value for key, value in values.items()
                  if value is None or isinstance(value, (str, int, float, bool))}
        blob_values = {key: value for key, value in values.items() if key not in inline}
        blob_versions = {key: version for key, version in new_versions.items() if key in blob_values}
        blobs = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
        channels, versions, types, blob_bytes = _columns(blobs, 2, 4)
        await self.writer.execute(
            PUT_CHECKPOINT_SQL,
            thread_id,
            checkpoint_ns,
            channels,
            # The same serialiser as the checkpoint row's channel_versions, so each blob's
            # version is the text the read joins it on.
            storable_json(versions),
            types,
            blob_bytes,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            # jsonb: a string channel or metadata holding NUL would fail the step (storage/storable.py).
            storable_json({**checkpoint, "channel_values": inline}),
            storable_json(get_serializable_checkpoint_metadata(config, metadata)),
        )
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                                 "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        rows = self._dump_writes(configurable["thread_id"], configurable["checkpoint_ns"],
                                 configurable["checkpoint_id"], task_id, task_path, writes)
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        if special:
            # One statement may not update a row twice: of two writes to one special index, the
            # later wins, as it would have in two statements.
            rows = list({row[5]: row for row in rows}.values())
        await self.writer.execute(
            UPSERT_WRITES_SQL if special else INSERT_WRITES_SQL,
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            *_columns(rows, 5, 4),  # idx, channel, type, blob
        )


def _columns(rows: Sequence[tuple[Any, ...]], first: int, count: int) -> list[list[Any]]:
    """Columns ``first`` to ``first + count - 1`` of the saver's row tuples, as arrays for unnest()."""
    return [[row[index] for row in rows] for index in range(first, first + count)]


def postgres_conninfo(database_url: str) -> str:
    """A libpq URL (``postgresql://``) for psycopg; the SQLAlchemy driver suffix is dropped."""
    url = make_url(normalize_database_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def open_checkpointer(database_url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A set-up LangGraph saver for ``database_url``; connections close on exit."""
    if is_sqlite(normalize_database_url(database_url)):
        async with AsyncSqliteSaver.from_conn_string(sqlite_checkpoint_path(database_url)) as sqlite_saver:
            await sqlite_saver.setup()
            yield sqlite_saver
        return
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        postgres_conninfo(database_url),
        min_size=1,
        max_size=READ_POOL_MAX_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        # One empty query per checkout: after an outage the pool still holds connections whose
        # server end is gone, and a read on one failed although the database was back. Reads
        # of state and history are rare next to the step writes, which stay on asyncpg (whose
        # pool replaces a connection the server closed when it is acquired).
        check=AsyncConnectionPool.check_connection,
        # While the database is away, a request waits this long for a connection and then
        # answers 503, instead of psycopg_pool's default of 30 s.
        timeout=READ_POOL_TIMEOUT_SECONDS,
        # psycopg_pool retries a failed connect with doubling delays until reconnect_timeout
        # (5 min by default), so after a 10 s outage its next try could come 8 s after the
        # database was back, and reads timed out meanwhile (a run lost its storage twice).
        # Giving up early instead lets the next request start a fresh attempt at once.
        reconnect_timeout=READ_POOL_RECONNECT_SECONDS,
        open=False,
    )
    writer: asyncpg.Pool | None = None
    try:
        await pool.open(wait=True)
        writer = await asyncpg.create_pool(postgres_conninfo(database_url), min_size=1, max_size=WRITE_POOL_MAX_SIZE,
                                           reset=keep_session)
        saver = PooledPostgresSaver(pool, writer)
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
        if writer is not None:
            await writer.close()
        await pool.close()
