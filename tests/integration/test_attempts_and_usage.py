from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Attempt, Task, Usage
from storage.records import AttemptRecord, UsageRecord
from storage.repositories import AttemptRepository, TaskRepository, UsageRepository

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


async def test_attempts_list_in_number_order_with_all_fields(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        repo = AttemptRepository(session)
        await repo.add(task_id, _attempt(2, 91.5, passed=True))
        await repo.add(task_id, _attempt(1, 62.0))
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
        repo = AttemptRepository(session)
        await repo.add(task_id, _attempt(1, 50.0))
        with pytest.raises(IntegrityError):
            await repo.add(task_id, _attempt(1, 60.0))


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


async def test_usage_totals_add_up_tokens_and_cost(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await UsageRepository(session).add_many(
            task_id,
            [_usage("route_intent", 120, 30, 0.0000375), _usage("draft", 900, 1400, 0.00097), _usage("critique", 1500, 200, 0.000345)],
        )
    async with sessions() as session:
        repo = UsageRepository(session)
        totals = await repo.totals_for_task(task_id)
        rows = await repo.list_for_task(task_id)
    assert (totals.calls, totals.input_tokens, totals.output_tokens, totals.duration_ms) == (3, 2520, 1630, 750)
    assert totals.cost_usd == pytest.approx(0.0013525, abs=1e-9)
    assert [r.node for r in rows] == ["route_intent", "draft", "critique"]


async def test_usage_totals_for_a_task_without_calls_are_zero(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions() as session:
        totals = await UsageRepository(session).totals_for_task(task_id)
    assert (totals.calls, totals.input_tokens, totals.output_tokens, totals.cost_usd) == (0, 0, 0, 0.0)


async def test_usage_keeps_explicit_timestamps(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    record = _usage("draft", 1, 1, 0.0)
    record["created_at"] = when + timedelta(hours=2)
    async with sessions.begin() as session:
        await UsageRepository(session).add_many(task_id, [record])
    async with sessions() as session:
        (row,) = await UsageRepository(session).list_for_task(task_id)
    assert row.created_at == when + timedelta(hours=2)


async def test_deleting_a_task_deletes_its_attempts_and_usage(sessions: async_sessionmaker[AsyncSession]) -> None:
    task_id = await _new_task(sessions)
    async with sessions.begin() as session:
        await AttemptRepository(session).replace_all(task_id, [_attempt(1, 50.0)])
        await UsageRepository(session).add_many(task_id, [_usage("draft", 1, 1, 0.0)])
    async with sessions.begin() as session:
        await session.delete(await TaskRepository(session).require(task_id))
    async with sessions() as session:
        attempts = await session.scalar(select(func.count()).select_from(Attempt).where(Attempt.task_id == task_id))
        usage = await session.scalar(select(func.count()).select_from(Usage).where(Usage.task_id == task_id))
        task = await session.get(Task, task_id)
    assert (attempts, usage, task) == (0, 0, None)
