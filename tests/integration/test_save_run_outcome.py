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
from storage.status import OutcomeRefused
from storage.tasks import TaskNotFound, TaskRepository
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
    }
    outcome.update(overrides)
    return outcome


async def _running(sessions: async_sessionmaker[AsyncSession], request: str = "write a post on async Python",
                   status: TaskStatus = TaskStatus.RUNNING, **fields: Any) -> Task:
    """A task row as the engine or the CLI has it while the graph runs (or in ``status``)."""
    async with sessions.begin() as session:
        return await TaskRepository(session).create(request=request, status=status, **fields)


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


async def test_an_outcome_for_a_thread_without_a_task_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(TaskNotFound):
        await _save(sessions, **_outcome("thread-new"))
    async with sessions() as session:
        assert await TaskRepository(session).get_by_thread("thread-new") is None
        assert await session.scalar(select(func.count()).select_from(Attempt)) == 0


async def test_an_outcome_fills_its_task_and_leaves_the_status_to_the_runs_owner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _running(sessions)
    saved = await _save(sessions, **_outcome(task.thread_id, task_id=task.id))
    async with sessions() as session:
        reloaded = await TaskRepository(session).require(task.id)
        attempts = await AttemptRepository(session).list_for_task(task.id)
    assert saved.id == task.id
    assert (reloaded.status, reloaded.finished_at) == (TaskStatus.RUNNING, None)
    assert reloaded.started_at == task.started_at
    assert reloaded.result is not None and reloaded.result["passed"] is True
    assert reloaded.intent == {"kind": "content", "confidence": 0.9}
    assert reloaded.warnings == ["pexels not configured"]
    assert (reloaded.input_tokens, reloaded.output_tokens) == (900, 1220)
    assert reloaded.cost_usd == pytest.approx(0.00084)
    assert [a.number for a in attempts] == [1, 2]


async def test_an_outcome_without_a_task_id_goes_to_the_threads_newest_task(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _running(sessions)
    saved = await _save(sessions, **_outcome(task.thread_id))
    assert saved.id == task.id and saved.result is not None


async def test_saving_the_same_outcome_twice_stores_it_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    task = await _running(sessions)
    first = await _save(sessions, **_outcome(task.thread_id))
    second = await _save(sessions, **_outcome(task.thread_id))
    assert second.id == first.id == task.id
    assert await _counts(sessions, first.id) == (1, 2, 2)
    assert (second.input_tokens, second.output_tokens) == (900, 1220)


async def test_concurrent_saves_for_one_task_store_it_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    task = await _running(sessions)
    saved = await asyncio.gather(*(_save(sessions, **_outcome(task.thread_id)) for _ in range(3)))
    assert {t.id for t in saved} == {task.id}
    assert await _counts(sessions, task.id) == (1, 2, 2)


async def test_failed_outcome_write_leaves_nothing_behind(sessions: async_sessionmaker[AsyncSession]) -> None:
    task = await _running(sessions)
    broken_usage: list[UsageRecord] = [*USAGE, {"node": None}]  # type: ignore[typeddict-item]
    with pytest.raises(IntegrityError):
        await _save(sessions, **_outcome(task.thread_id, usage=broken_usage))
    async with sessions() as session:
        reloaded = await TaskRepository(session).require(task.id)
    assert reloaded.result is None
    assert await _counts(sessions, task.id) == (1, 0, 0)


@pytest.mark.parametrize("ended", [TaskStatus.CANCELLED, TaskStatus.FAILED])
async def test_an_outcome_is_not_stored_on_a_task_that_ended_another_way(
    sessions: async_sessionmaker[AsyncSession], ended: TaskStatus,
) -> None:
    task = await _running(sessions, status=ended)
    with pytest.raises(OutcomeRefused):
        await _save(sessions, **_outcome(task.thread_id))
    async with sessions() as session:
        reloaded = await TaskRepository(session).require(task.id)
    assert (reloaded.status, reloaded.result) == (ended, None)
    assert await _counts(sessions, task.id) == (1, 0, 0)


async def test_a_completed_task_takes_its_outcome_again(sessions: async_sessionmaker[AsyncSession]) -> None:
    # finalize ran again after a crash that followed the end of the run: the same outcome.
    task = await _running(sessions, status=TaskStatus.COMPLETED)
    saved = await _save(sessions, **_outcome(task.thread_id))
    assert (saved.status, saved.error) == (TaskStatus.COMPLETED, None)
    assert await _counts(sessions, task.id) == (1, 2, 2)


async def test_outcome_records_ignore_keys_storage_does_not_know(sessions: async_sessionmaker[AsyncSession]) -> None:
    task = await _running(sessions)
    attempts = [{**record, "turn": 1} for record in ATTEMPTS]
    usage = [{**record, "turn": 1} for record in USAGE]
    saved = await _save(sessions, **_outcome(task.thread_id, attempts=attempts, usage=usage))
    assert await _counts(sessions, saved.id) == (1, 2, 2)


async def test_outcome_without_request_text_keeps_the_queued_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _running(sessions, request="write about tides", params={"topic": "tides"})
    saved = await _save(sessions, **_outcome(task.thread_id, request="", params={}))
    assert (saved.request, saved.params) == ("write about tides", {"topic": "tides"})
