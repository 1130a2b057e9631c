"""The event bus's write-behind writer (group commit of run progress events) and the Postgres
notifications that wake other processes, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.engine.events import STATUS, TOKEN, EventBus
from storage.engine import create_autocommit_engine
from storage.leases import LeaseRepository
from storage.models import TaskStatus
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL, NotificationListener, notify
from storage.tasks import TaskRepository


async def _tasks(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    async with sessions.begin() as session:
        return [(await TaskRepository(session).create(request=f"task {i}")).id for i in range(count)]


@pytest.fixture(params=["transaction", "one statement"])
async def writer_engine(request: pytest.FixtureRequest, migrated_database_url: str) -> AsyncIterator[AsyncEngine | None]:
    """How the writer stores a batch: in a transaction of the session factory, or (Postgres,
    as the service does) in one statement on the autocommit engine."""
    if request.param == "transaction":
        yield None
        return
    engine = create_autocommit_engine(migrated_database_url)
    if engine is None:
        pytest.skip("SQLite has no autocommit engine: batches are always transactions there")
    yield engine
    await engine.dispose()


class FlakySessions:
    """A session factory whose first ``failures`` transactions fail as if the database were
    unreachable; everything else goes to the real one."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], failures: int) -> None:
        self.sessions = sessions
        self.failures = failures

    def __call__(self) -> AsyncSession:
        return self.sessions()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database restarting"))
        async with self.sessions.begin() as session:
            yield session


async def test_posted_events_are_stored_in_order_per_task_once_flushed(
    sessions: async_sessionmaker[AsyncSession], writer_engine: AsyncEngine | None,
) -> None:
    first, second = await _tasks(sessions, 2)
    bus = EventBus(sessions, poll_seconds=0.05, autocommit_engine=writer_engine)
    try:
        for i in range(120):
            bus.post(first if i % 3 else second, TOKEN, {"node": "draft", "text": str(i)})
        await bus.flush()
        stored = {task_id: [event.data["text"] for event in await bus.history(task_id)] for task_id in (first, second)}
    finally:
        await bus.aclose()
    assert stored[first] == [str(i) for i in range(120) if i % 3]
    assert stored[second] == [str(i) for i in range(120) if not i % 3]
    assert bus.published_total == 120


async def test_a_follower_sees_posted_events_live_up_to_the_terminal_status(
    sessions: async_sessionmaker[AsyncSession], writer_engine: AsyncEngine | None,
) -> None:
    [task_id] = await _tasks(sessions, 1)
    bus = EventBus(sessions, poll_seconds=5, autocommit_engine=writer_engine)  # far longer than the test: the post must wake it
    seen: list[str] = []

    async def follow() -> None:
        async for event in bus.follow(task_id, heartbeat=30):
            if event is not None:
                seen.append(event.type)

    follower = asyncio.create_task(follow())
    try:
        bus.post(task_id, STATUS, {"status": "running"})
        bus.post(task_id, TOKEN, {"node": "draft", "text": "hello"})
        await bus.flush()
        async with sessions.begin() as session:
            leases = LeaseRepository(session)
            assert await leases.take(task_id, "worker-a", 60.0)
            assert await leases.end_run_row(task_id, "worker-a", TaskStatus.COMPLETED)
            event = await bus.record(session, task_id, STATUS, {"status": "completed"})
        bus.announce([event])
        await asyncio.wait_for(follower, 10)
    finally:
        follower.cancel()
        await bus.aclose()
    assert seen == [STATUS, TOKEN, STATUS]


async def test_the_writer_keeps_events_through_a_database_outage_and_writes_them_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [task_id] = await _tasks(sessions, 1)
    bus = EventBus(FlakySessions(sessions, failures=2), poll_seconds=0.05)  # type: ignore[arg-type]
    try:
        for i in range(5):
            bus.post(task_id, TOKEN, {"node": "draft", "text": str(i)})
        await asyncio.wait_for(bus.flush(), 10)
        texts = [event.data["text"] for event in await bus.history(task_id)]
    finally:
        await bus.aclose()
    assert texts == ["0", "1", "2", "3", "4"]


async def test_an_event_that_cannot_be_stored_is_dropped_without_blocking_the_rest(
    sessions: async_sessionmaker[AsyncSession], writer_engine: AsyncEngine | None,
) -> None:
    [task_id] = await _tasks(sessions, 1)
    bus = EventBus(sessions, poll_seconds=0.05, autocommit_engine=writer_engine)
    try:
        bus.post(task_id, TOKEN, {"text": "before"})
        bus.post(task_id, TOKEN, {"text": object()})  # not JSON
        bus.post(task_id, TOKEN, {"text": "after"})
        await asyncio.wait_for(bus.flush(), 10)
        texts = [event.data["text"] for event in await bus.history(task_id)]
    finally:
        await bus.aclose()
    assert texts == ["before", "after"]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_notification_reaches_a_listener_when_its_transaction_commits_and_not_on_rollback(
    sessions: async_sessionmaker[AsyncSession], migrated_database_url: str,
) -> None:
    received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    handlers: dict[str, Any] = {
        TASK_CHANNEL: lambda payload: received.put_nowait((TASK_CHANNEL, payload)),
        QUEUE_CHANNEL: lambda payload: received.put_nowait((QUEUE_CHANNEL, payload)),
    }
    listener = NotificationListener(migrated_database_url, handlers)
    await listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        with pytest.raises(RuntimeError):
            async with sessions.begin() as session:
                await notify(session, TASK_CHANNEL, "rolled-back")
                raise RuntimeError("abort the transaction")
        async with sessions.begin() as session:
            await notify(session, TASK_CHANNEL, "task-1")
            await notify(session, QUEUE_CHANNEL)
        first = await asyncio.wait_for(received.get(), 10)
        second = await asyncio.wait_for(received.get(), 10)
    finally:
        await listener.aclose()
    assert {first, second} == {(TASK_CHANNEL, "task-1"), (QUEUE_CHANNEL, "")}
    assert received.empty(), "the rolled-back notification was delivered"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_batch_of_events_of_several_tasks_notifies_each_task_once(
    sessions: async_sessionmaker[AsyncSession], migrated_database_url: str, writer_engine: AsyncEngine | None,
) -> None:
    task_ids = await _tasks(sessions, 3)
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = NotificationListener(migrated_database_url, {TASK_CHANNEL: received.put_nowait})
    await listener.start()
    bus = EventBus(sessions, poll_seconds=0.05, autocommit_engine=writer_engine)
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        for task_id in [*task_ids, *task_ids]:
            bus.post(task_id, TOKEN, {"text": "word"})
        await asyncio.wait_for(bus.flush(), 10)
        woken = [await asyncio.wait_for(received.get(), 10) for _ in task_ids]
        await asyncio.sleep(0.2)
    finally:
        await bus.aclose()
        await listener.aclose()
    assert sorted(woken) == sorted(task_ids)
    assert received.empty(), "a task was notified more than once for one batch"
