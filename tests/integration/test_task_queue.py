"""storage.tasks.queue_new_task (the POST /api/tasks write) and storage.tasks.fetch_task_row (the
GET /api/tasks/{id} read), on SQLite and on Postgres's one-statement autocommit path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.http.task_schemas import task_detail
from storage.engine import create_autocommit_engine, normalize_database_url, session_factory
from storage.models import Task, TaskEvent, TaskStatus, Thread
from storage.notifications import QUEUE_CHANNEL, NotificationListener
from storage.tasks import TaskRepository, fetch_task_row, queue_new_task
from storage.write_paths import WritePaths


@pytest.fixture
async def autocommit_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine | None]:
    engine = create_autocommit_engine(migrated_database_url)
    try:
        yield engine
    finally:
        if engine is not None:
            await engine.dispose()


async def _queue(engine: AsyncEngine, autocommit_engine: AsyncEngine | None, **overrides: object) -> object:
    arguments: dict[str, object] = {
        "request": "write a post on async Python", "params": {"topic": "async Python", "target_words": 900},
        "thread_metadata": {"graph_id": "draftloop"}, "event_type": "status",
        "event_data": {"status": "queued"}, "notify_channel": QUEUE_CHANNEL,
    }
    return await queue_new_task(WritePaths(session_factory(engine), autocommit_engine), **{**arguments, **overrides})


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_queued_task_has_its_row_a_busy_thread_and_its_queued_event(
    migrated_engine: AsyncEngine, autocommit_engine: AsyncEngine | None, sessions: async_sessionmaker[AsyncSession],
) -> None:
    queued = await _queue(migrated_engine, autocommit_engine)

    async with sessions() as session:
        task = await TaskRepository(session).get(queued.task.id)
        thread = await session.get(Thread, queued.task.thread_id)
        events = list(await session.scalars(select(TaskEvent).where(TaskEvent.task_id == queued.task.id)))
    assert task is not None and task.status == TaskStatus.QUEUED and task.kind == "task"
    assert task.request == "write a post on async Python"
    assert task.params == {"topic": "async Python", "target_words": 900}
    assert (task.warnings, task.input_tokens, task.output_tokens, task.cost_usd, task.run_count) == ([], 0, 0, 0.0, 0)
    assert task.created_at == queued.task.created_at and task.created_at.utcoffset() == timedelta(0)
    assert thread is not None and thread.status == "busy"
    assert thread.meta == {"graph_id": "draftloop", "task_id": task.id}
    assert [(e.id, e.type, e.data) for e in events] == [(queued.event_id, "status", {"status": "queued"})]


async def test_a_failing_insert_leaves_no_task_thread_or_event_behind(
    migrated_engine: AsyncEngine, autocommit_engine: AsyncEngine | None, sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Event data that cannot be serialised fails the last of the three inserts.
    with pytest.raises(StatementError):
        await _queue(migrated_engine, autocommit_engine, event_data={"status": object()})

    assert [await _count(sessions, model) for model in (Task, Thread, TaskEvent)] == [0, 0, 0]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_the_one_statement_is_atomic_when_postgres_rejects_its_last_part(
    migrated_engine: AsyncEngine, autocommit_engine: AsyncEngine | None, sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The event type column is varchar(32): the server rejects the third CTE after the first two ran.
    assert autocommit_engine is not None
    with pytest.raises(DBAPIError):
        await _queue(migrated_engine, autocommit_engine, event_type="x" * 40)

    assert [await _count(sessions, model) for model in (Task, Thread, TaskEvent)] == [0, 0, 0]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_queueing_on_postgres_wakes_listeners_on_the_queue_channel(
    migrated_database_url: str, migrated_engine: AsyncEngine, autocommit_engine: AsyncEngine | None,
) -> None:
    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = NotificationListener(normalize_database_url(migrated_database_url), {QUEUE_CHANNEL: woken.put_nowait})
    await listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        await _queue(migrated_engine, autocommit_engine)
        assert await asyncio.wait_for(woken.get(), 10) == ""
    finally:
        await listener.aclose()


async def test_a_task_read_as_a_plain_row_renders_like_the_orm_object(
    migrated_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        task = await TaskRepository(session).create(request="write", params={"topic": "t"}, model="m", provider="p")
        task.status = TaskStatus.COMPLETED.value
        task.result = {"kind": "content", "title": "T", "markdown": "# T", "score": 88.5, "passed": True,
                       "sources": [{"url": "https://example.com"}], "attempts": 1}
        task.warnings = ["research skipped"]
        task.input_tokens, task.output_tokens, task.cost_usd = 10, 20, 0.25
        task.started_at = task.created_at + timedelta(seconds=1)
        task.finished_at = task.created_at + timedelta(seconds=3)
    async with sessions() as session:
        loaded = await TaskRepository(session).get(task.id)
    async with migrated_engine.connect() as connection:
        row = await fetch_task_row(connection, task.id)
        missing = await fetch_task_row(connection, "00000000-0000-4000-8000-000000000000")

    assert loaded is not None and row is not None and missing is None
    assert task_detail(row) == task_detail(loaded)
    assert task_detail(row)["timings"]["run_ms"] == 2000 and task_detail(row)["usage"]["cost_usd"] == 0.25
