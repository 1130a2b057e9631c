from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.attempts import AttemptRepository
from storage.models import Attempt, Task, TaskStatus, Usage
from storage.outcomes import save_outcome
from storage.records import AttemptRecord, UsageRecord
from storage.status import InvalidStatusTransition
from storage.tasks import TaskRepository
from storage.write_paths import WritePaths

ATTEMPTS: list[AttemptRecord] = [
    {"number": 1, "title": "Async Python", "markdown": "# Async Python\n", "word_count": 3, "score": 61.0,
     "passed": False, "issues": ["too short"], "feedback": ""},
    {"number": 2, "title": "Async Python", "markdown": "# Async Python\n\nLonger.", "word_count": 4, "score": 86.0,
     "passed": True, "feedback": "too short"},
]
USAGE: list[UsageRecord] = [
    {"node": "route_intent", "provider": "ollama", "model": "qwen2.5:3b", "input_tokens": 100, "output_tokens": 20,
     "duration_ms": 300, "cost_usd": 0.0},
    {"node": "draft", "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 800, "output_tokens": 1200,
     "duration_ms": 4000, "cost_usd": 0.00084},
]


def _outcome(thread_id: str, **overrides: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "thread_id": thread_id,
        "request": "write a post on async Python",
        "params": {"topic": "async Python", "target_words": 900},
        "intent": {"kind": "content", "confidence": 0.9},
        "result": {"title": "Async Python", "markdown": "# Async Python\n\nLonger.", "score": 86.0, "passed": True},
        "attempts": ATTEMPTS,
        "usage": USAGE,
        "warnings": ["pexels not configured"],
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": TaskStatus.COMPLETED,
    }
    outcome.update(overrides)
    return outcome


async def _save(sessions: async_sessionmaker[AsyncSession], **outcome: Any) -> Task:
    """save_outcome through its session path, which has every case's rules; the stored task."""
    task_id = await save_outcome(WritePaths(sessions), **outcome)
    async with sessions() as session:
        return await TaskRepository(session).require(task_id)


async def _counts(sessions: async_sessionmaker[AsyncSession], task_id: str) -> tuple[int, int, int]:
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task).where(Task.id == task_id))
        attempts = await session.scalar(select(func.count()).select_from(Attempt).where(Attempt.task_id == task_id))
        usage = await session.scalar(select(func.count()).select_from(Usage).where(Usage.task_id == task_id))
    return tasks or 0, attempts or 0, usage or 0


async def test_outcome_for_an_unknown_thread_creates_the_finished_task(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    saved = await _save(sessions, **_outcome("thread-new"))
    async with sessions() as session:
        task = await TaskRepository(session).get_by_thread("thread-new")
        attempts = await AttemptRepository(session).list_for_task(saved.id)
    assert task is not None and task.id == saved.id
    assert task.status == TaskStatus.COMPLETED
    assert task.started_at is not None and task.finished_at is not None
    assert task.result is not None and task.result["passed"] is True
    assert task.intent == {"kind": "content", "confidence": 0.9}
    assert (task.input_tokens, task.output_tokens) == (900, 1220)
    assert task.cost_usd == pytest.approx(0.00084)
    assert [a.number for a in attempts] == [1, 2]


async def test_outcome_completes_the_existing_task_of_its_thread(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        repo = TaskRepository(session)
        task = await repo.create(request="write a post on async Python", status=TaskStatus.RUNNING)
    saved = await _save(sessions, **_outcome(task.thread_id, task_id=task.id))
    async with sessions() as session:
        reloaded = await TaskRepository(session).require(task.id)
    assert saved.id == task.id
    assert reloaded.status == TaskStatus.COMPLETED
    assert reloaded.started_at == task.started_at
    assert reloaded.warnings == ["pexels not configured"]


async def test_saving_the_same_outcome_twice_stores_it_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    first = await _save(sessions, **_outcome("thread-twice"))
    second = await _save(sessions, **_outcome("thread-twice"))
    assert second.id == first.id
    assert await _counts(sessions, first.id) == (1, 2, 2)
    assert (second.input_tokens, second.output_tokens) == (900, 1220)


async def test_concurrent_saves_for_one_thread_converge_on_one_task(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    saved = await asyncio.gather(*(_save(sessions, **_outcome("thread-race")) for _ in range(3)))
    assert len({task.id for task in saved}) == 1
    assert await _counts(sessions, saved[0].id) == (1, 2, 2)


async def test_failed_outcome_write_leaves_nothing_behind(sessions: async_sessionmaker[AsyncSession]) -> None:
    broken_usage: list[UsageRecord] = [*USAGE, {"node": None}]  # type: ignore[typeddict-item]
    with pytest.raises(IntegrityError):
        await _save(sessions, **_outcome("thread-broken", usage=broken_usage))
    async with sessions() as session:
        task = await TaskRepository(session).get_by_thread("thread-broken")
        attempts = await session.scalar(select(func.count()).select_from(Attempt))
    assert task is None
    assert attempts == 0


async def test_outcome_does_not_overwrite_a_cancelled_task(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        repo = TaskRepository(session)
        task = await repo.create(request="r", status=TaskStatus.RUNNING)
        await repo.cancel(task.id)
    with pytest.raises(InvalidStatusTransition):
        await _save(sessions, **_outcome(task.thread_id))
    assert await _counts(sessions, task.id) == (1, 0, 0)


async def test_outcome_records_ignore_keys_storage_does_not_know(sessions: async_sessionmaker[AsyncSession]) -> None:
    attempts = [{**record, "turn": 1} for record in ATTEMPTS]
    usage = [{**record, "turn": 1} for record in USAGE]
    saved = await _save(sessions, **_outcome("thread-extra-keys", attempts=attempts, usage=usage))
    assert await _counts(sessions, saved.id) == (1, 2, 2)


async def test_outcome_completes_a_task_the_executor_left_queued(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        task = await TaskRepository(session).create(request="r")
    saved = await _save(sessions, **_outcome(task.thread_id))
    assert saved.status == TaskStatus.COMPLETED
    assert saved.started_at is not None and saved.finished_at is not None


async def test_failed_outcome_does_not_overwrite_a_completed_task(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _save(sessions, **_outcome("thread-done"))
    with pytest.raises(InvalidStatusTransition):
        await _save(sessions, **_outcome("thread-done", status=TaskStatus.FAILED, error="boom"))
    async with sessions() as session:
        task = await TaskRepository(session).get_by_thread("thread-done")
    assert task is not None and (task.status, task.error) == (TaskStatus.COMPLETED, None)


async def test_outcome_without_request_text_keeps_the_queued_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        task = await TaskRepository(session).create(request="write about tides", params={"topic": "tides"})
    saved = await _save(sessions, **_outcome(task.thread_id, request="", params={}))
    assert (saved.request, saved.params) == ("write about tides", {"topic": "tides"})
