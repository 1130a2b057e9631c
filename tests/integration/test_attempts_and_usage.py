from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.attempts import AttemptRepository, UsageRepository
from storage.models import Attempt, Task, Usage
from storage.records import AttemptRecord, UsageRecord
from storage.tasks import TaskRepository

DIMENSIONS = {"clarity": 80, "accuracy": 75, "completeness": 70, "relevance": 90, "seo": 60, "readability": 85, "engagement": 65}


def _attempt(number: int, score: float, passed: bool = False) -> AttemptRecord:
    return {
        "number": number,
        "title": f"Draft {number}",
        "markdown": f"# Draft {number}\n\nBody.",
        "word_count": 3,
        "score": score,
        "passed": passed,
        "dimensions": DIMENSIONS,
        "checks": {"length_ok": passed, "has_title": True},
        "issues": [] if passed else ["too short"],
        "suggestions": [] if passed else ["expand the introduction"],
        "feedback": None if number == 1 else "expand the introduction",
        "model": "qwen2.5:3b",
        "provider": "ollama",
        "input_tokens": 400,
        "output_tokens": 900,
        "duration_ms": 1200,
    }


def _usage(node: str, tokens_in: int, tokens_out: int, cost: float) -> UsageRecord:
    return {"node": node, "provider": "openai", "model": "gpt-4o-mini", "input_tokens": tokens_in,
            "output_tokens": tokens_out, "duration_ms": 250, "cost_usd": cost}


async def _new_task(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions.begin() as session:
        return (await TaskRepository(session).create(request="r")).id


async def _usage_of(sessions: async_sessionmaker[AsyncSession], task_id: str) -> list[Usage]:
    async with sessions() as session:
        return list(await session.scalars(
            select(Usage).where(Usage.task_id == task_id).order_by(Usage.created_at, Usage.id)))


async def test_attempts_list_in_number_order_with_all_fields(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await AttemptRepository(session).replace_all(task_id, [_attempt(2, 91.5, passed=True), _attempt(1, 62.0)])
    async with sessions() as session:
        attempts = await AttemptRepository(session).list_for_task(task_id)
    assert [a.number for a in attempts] == [1, 2]
    second = attempts[1]
    assert (second.score, second.passed, second.dimensions) == (91.5, True, DIMENSIONS)
    assert second.feedback == "expand the introduction"
    assert attempts[0].issues == ["too short"] and attempts[0].feedback is None
    assert second.created_at.tzinfo is not None


async def test_attempt_numbers_are_unique_per_task(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await AttemptRepository(session).replace_all(task_id, [_attempt(1, 50.0), _attempt(1, 60.0)])


async def test_replacing_attempts_twice_leaves_one_copy(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    records = [_attempt(1, 55.0), _attempt(2, 88.0, passed=True)]
    for _ in range(2):
        async with sessions.begin() as session:
            await AttemptRepository(session).replace_all(task_id, records)
    async with sessions() as session:
        attempts = await AttemptRepository(session).list_for_task(task_id)
    assert [(a.number, a.score) for a in attempts] == [(1, 55.0), (2, 88.0)]


async def test_replacing_attempts_drops_ones_no_longer_listed(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await AttemptRepository(session).replace_all(task_id, [_attempt(1, 40.0), _attempt(2, 70.0)])
    async with sessions.begin() as session:
        await AttemptRepository(session).replace_all(task_id, [_attempt(1, 95.0, passed=True)])
    async with sessions() as session:
        attempts = await AttemptRepository(session).list_for_task(task_id)
    assert [(a.number, a.score, a.passed) for a in attempts] == [(1, 95.0, True)]


async def test_usage_lists_in_call_order(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await UsageRepository(session).replace_all(
            task_id,
            [_usage("route_intent", 120, 30, 0.0000375), _usage("draft", 900, 1400, 0.00097), _usage("critique", 1500, 200, 0.000345)],
        )
    rows = await _usage_of(sessions, task_id)
    assert [r.node for r in rows] == ["route_intent", "draft", "critique"]
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(120, 30), (900, 1400), (1500, 200)]


async def test_replacing_usage_twice_leaves_one_copy(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    for _ in range(2):
        async with sessions.begin() as session:
            await UsageRepository(session).replace_all(task_id, [_usage("draft", 1, 1, 0.0)])
    assert [r.node for r in await _usage_of(sessions, task_id)] == ["draft"]


async def test_usage_keeps_explicit_timestamps(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    record = _usage("draft", 1, 1, 0.0)
    record["created_at"] = when + timedelta(hours=2)
    async with sessions.begin() as session:
        await UsageRepository(session).replace_all(task_id, [record])
    (row,) = await _usage_of(sessions, task_id)
    assert row.created_at == when + timedelta(hours=2)


async def test_deleting_a_task_deletes_its_attempts_and_usage(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await AttemptRepository(session).replace_all(task_id, [_attempt(1, 50.0)])
        await UsageRepository(session).replace_all(task_id, [_usage("draft", 1, 1, 0.0)])
    async with sessions.begin() as session:
        await session.delete(await TaskRepository(session).require(task_id))
    async with sessions() as session:
        attempts = await session.scalar(select(func.count()).select_from(Attempt).where(Attempt.task_id == task_id))
        usage = await session.scalar(select(func.count()).select_from(Usage).where(Usage.task_id == task_id))
        task = await session.get(Task, task_id)
    assert (attempts, usage, task) == (0, 0, None)
