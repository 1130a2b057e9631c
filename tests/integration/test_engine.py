from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import (
    AUTOCOMMIT_POOL_SIZE,
    POSTGRES_POOL_SIZE,
    create_autocommit_engine,
    create_engine,
)
from storage.models import Attempt, Task
from storage.tasks import TaskRepository


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with engine.connect() as conn:
            journal = await conn.scalar(text("PRAGMA journal_mode"))
            foreign_keys = await conn.scalar(text("PRAGMA foreign_keys"))
            busy_timeout = await conn.scalar(text("PRAGMA busy_timeout"))
    finally:
        await engine.dispose()
    assert (journal, foreign_keys) == ("wal", 1)
    assert busy_timeout > 0


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_postgres_pools_keep_their_connections_across_bursts(database_url: str) -> None:
    """A burst larger than a pool queues for its connections, and the next burst reuses them:
    no backend is opened beyond the pool's size or closed when the burst ends."""
    for engine, size in ((create_engine(database_url), POSTGRES_POOL_SIZE),
                         (create_autocommit_engine(database_url), AUTOCOMMIT_POOL_SIZE)):
        assert engine is not None

        async def backend_pid() -> int:
            async with engine.connect() as conn:  # noqa: B023 - awaited in this iteration, before engine is rebound
                pid = int(await conn.scalar(text("SELECT pg_backend_pid()")))
                await asyncio.sleep(0.02)
                return pid

        try:
            first = set(await asyncio.gather(*(backend_pid() for _ in range(3 * size))))
            second = set(await asyncio.gather(*(backend_pid() for _ in range(3 * size))))
        finally:
            await engine.dispose()
        assert len(first) == size
        assert second == first


async def test_attempt_for_a_missing_task_is_rejected(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(Attempt(task_id="no-such-task", number=1))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_status_outside_the_lifecycle_is_rejected_by_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(Task(thread_id="t", status="paused"))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_timestamps_in_any_zone_read_back_as_the_same_instant_in_utc(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    berlin_noon = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with sessions.begin() as session:
        task = await TaskRepository(session).create(request="r")
        task.lease_expires_at = berlin_noon
    async with sessions() as session:
        reloaded = await TaskRepository(session).require(task.id)
    assert reloaded.lease_expires_at == berlin_noon
    assert reloaded.lease_expires_at is not None and reloaded.lease_expires_at.utcoffset() == timedelta(0)


async def test_naive_timestamps_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        task = await TaskRepository(session).create(request="r")
        task.lease_expires_at = datetime(2025, 6, 1, 12, 0)  # noqa: DTZ001 - the point of the test
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()
