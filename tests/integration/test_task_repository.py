from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.http.task_schemas import listed_task_summary, task_summary
from storage.leases import LeaseRepository, end_run
from storage.models import Task, TaskStatus
from storage.notifications import TASK_CHANNEL
from storage.tasks import SUMMARY_COLUMNS, TaskNotFound, TaskRepository
from storage.write_paths import WritePaths

BASE_TIME = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


async def _seed(sessions: async_sessionmaker[AsyncSession], statuses: list[TaskStatus]) -> list[Task]:
    """Tasks created one minute apart, with two sharing a timestamp to exercise the id tiebreak."""
    async with sessions.begin() as session:
        repo = TaskRepository(session)
        tasks = [await repo.create(request=f"request {i}", status=status) for i, status in enumerate(statuses)]
        for i, task in enumerate(tasks):
            task.created_at = BASE_TIME + timedelta(minutes=min(i, len(tasks) - 2))
    return tasks


async def test_created_task_reads_back_with_defaults_and_aware_timestamps(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        created = await TaskRepository(session).create(
            request="write a post on async Python", params={"topic": "async Python", "target_words": 900}
        )
    async with sessions() as session:
        task = await TaskRepository(session).get(created.id)
    assert task is not None
    assert task.thread_id == created.id
    assert task.status == TaskStatus.QUEUED
    assert task.params == {"topic": "async Python", "target_words": 900}
    assert task.intent is None and task.result is None and task.warnings == []
    assert (task.input_tokens, task.output_tokens, task.cost_usd, task.run_count) == (0, 0, 0.0, 0)
    assert task.created_at.tzinfo is not None and task.created_at.utcoffset() == timedelta(0)
    assert task.created_at == created.created_at
    assert task.started_at is None and task.finished_at is None


async def test_task_is_found_by_its_thread(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        created = await TaskRepository(session).create(request="r", thread_id="thread-abc")
    async with sessions() as session:
        repo = TaskRepository(session)
        found = await repo.get_by_thread("thread-abc")
        missing = await repo.get_by_thread("no-such-thread")
    assert found is not None and found.id == created.id
    assert missing is None


async def _running(sessions: async_sessionmaker[AsyncSession], worker: str, now: datetime | None = None) -> str:
    """A new task taken by ``worker``, as the CLI takes its own runs."""
    async with sessions.begin() as session:
        task_id = (await TaskRepository(session).create(request="r")).id
        assert await LeaseRepository(session).take(task_id, worker, 60.0, now=now)
    return task_id


async def _end(paths: WritePaths, task_id: str, worker: str, status: TaskStatus, error: str | None = None) -> bool:
    ended = await end_run(paths, task_id=task_id, thread_id=task_id, worker_id=worker, status=status, error=error,
                          events=[], channel=TASK_CHANNEL)
    return ended.ended


async def test_status_changes_stamp_started_and_finished_times(write_paths: WritePaths) -> None:
    sessions = write_paths.sessions
    started = BASE_TIME + timedelta(seconds=1)
    task_id = await _running(sessions, "w1", now=started)
    assert await _end(write_paths, task_id, "w1", TaskStatus.AWAITING_APPROVAL)
    async with sessions.begin() as session:
        assert await LeaseRepository(session).take(task_id, "w1", 60.0)
    assert await _end(write_paths, task_id, "w1", TaskStatus.COMPLETED)
    async with sessions() as session:
        task = await TaskRepository(session).require(task_id)
    assert task.status == TaskStatus.COMPLETED
    assert task.started_at == started
    assert task.finished_at is not None and task.finished_at > started
    assert task.updated_at == task.finished_at
    assert (task.lease_owner, task.lease_expires_at) == (None, None)


async def test_failing_a_run_records_the_error(write_paths: WritePaths) -> None:
    task_id = await _running(write_paths.sessions, "w1")
    assert await _end(write_paths, task_id, "w1", TaskStatus.FAILED, error="model unavailable")
    async with write_paths.sessions() as session:
        task = await TaskRepository(session).require(task_id)
    assert (task.status, task.error) == (TaskStatus.FAILED, "model unavailable")
    assert task.finished_at is not None


async def test_a_completed_task_cannot_be_taken_again(write_paths: WritePaths) -> None:
    task_id = await _running(write_paths.sessions, "w1")
    assert await _end(write_paths, task_id, "w1", TaskStatus.COMPLETED)
    async with write_paths.sessions.begin() as session:
        assert not await LeaseRepository(session).take(task_id, "w1", 60.0)
    assert not await _end(write_paths, task_id, "w1", TaskStatus.FAILED)


async def test_the_end_of_a_run_loses_to_a_cancel_made_meanwhile(write_paths: WritePaths) -> None:
    task_id = await _running(write_paths.sessions, "w1")
    async with write_paths.sessions.begin() as session:
        assert await TaskRepository(session).cancel(task_id)
    assert not await _end(write_paths, task_id, "w1", TaskStatus.COMPLETED)
    async with write_paths.sessions() as session:
        assert (await TaskRepository(session).require(task_id)).status == TaskStatus.CANCELLED


async def test_cancelling_a_missing_task_raises_not_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(TaskNotFound):
            await TaskRepository(session).cancel("missing")


async def test_list_filters_by_status_and_creation_window(sessions: async_sessionmaker[AsyncSession]) -> None:
    statuses = [TaskStatus.QUEUED, TaskStatus.COMPLETED, TaskStatus.QUEUED, TaskStatus.FAILED, TaskStatus.COMPLETED]
    tasks = await _seed(sessions, statuses)
    async with sessions() as session:
        repo = TaskRepository(session)
        queued = await repo.list(status=TaskStatus.QUEUED)
        finished = await repo.list(status=[TaskStatus.COMPLETED, "failed"])
        window = await repo.list(
            created_after=BASE_TIME + timedelta(minutes=1), created_before=BASE_TIME + timedelta(minutes=3)
        )
    assert {t.id for t in queued.items} == {tasks[0].id, tasks[2].id}
    assert {t.id for t in finished.items} == {tasks[1].id, tasks[3].id, tasks[4].id}
    # after is inclusive, before exclusive; tasks 3 and 4 share minute 3.
    assert [t.id for t in window.items] == [tasks[2].id, tasks[1].id]
    assert queued.next_cursor is None


async def test_cursor_pages_cover_every_task_once_newest_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    tasks = await _seed(sessions, [TaskStatus.QUEUED] * 7)
    expected = sorted(tasks, key=lambda t: (t.created_at, t.id), reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    async with sessions() as session:
        repo = TaskRepository(session)
        while True:
            page = await repo.list(limit=3, cursor=cursor)
            seen.extend(t.id for t in page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == [t.id for t in expected]
    assert pages == 3


async def test_cursor_stays_stable_when_newer_tasks_arrive(sessions: async_sessionmaker[AsyncSession]) -> None:
    tasks = await _seed(sessions, [TaskStatus.QUEUED] * 4)
    async with sessions() as session:
        first = await TaskRepository(session).list(limit=2)
    async with sessions.begin() as session:
        await TaskRepository(session).create(request="newer")
    async with sessions() as session:
        second = await TaskRepository(session).list(limit=2, cursor=first.next_cursor)
    listed = [t.id for t in first.items + second.items]
    assert sorted(listed) == sorted(t.id for t in tasks)
    assert len(set(listed)) == 4


async def test_malformed_cursor_is_rejected(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(ValueError, match="invalid cursor"):
            await TaskRepository(session).list(cursor="not-a-cursor")


async def test_listing_summary_columns_shows_what_the_full_task_shows(sessions: async_sessionmaker[AsyncSession]) -> None:
    results = [
        {"kind": "content", "title": "Async Python", "score": 85, "passed": True, "markdown": "# long body"},
        {"kind": "content", "title": "Ünïcode \"quoted\"", "score": 72.5, "passed": False},
        {"kind": "answer", "answer": "42"},  # no title, score or passed
        None,
    ]
    async with sessions.begin() as session:
        repo = TaskRepository(session)
        for n, result in enumerate(results):
            task = await repo.create(request=f"request {n}")
            task.result = result
            task.created_at = BASE_TIME + timedelta(minutes=n)
    async with sessions() as session:
        full = await TaskRepository(session).list()
        listed = await TaskRepository(session).list(columns=SUMMARY_COLUMNS)

    assert [listed_task_summary(row) for row in listed.items] == [task_summary(task) for task in full.items]
    headline = [(row.title, row.score, row.passed) for row in listed.items]
    assert headline == [(None, None, None), (None, None, None), ("Ünïcode \"quoted\"", 72.5, False),
                        ("Async Python", 85, True)]
    assert type(headline[3][1]) is int and type(headline[3][2]) is bool
