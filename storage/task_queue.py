"""Putting a new task on the queue: its row, its thread and its ``queued`` event, atomically.

This is the hot path of ``POST /api/tasks``. On Postgres it is one statement (data-modifying
CTEs plus ``pg_notify``) run in autocommit mode: one round trip, atomic on its own, and the
notification is sent when it commits. Through a session it took seven round trips (BEGIN, three
INSERTs, the notify, COMMIT, plus the ORM's flushes), which under load made the POST the
slowest request the API serves (bench/RESULTS.md). SQLite has no data-modifying CTEs: there the
same rows go in one short transaction of Core inserts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import Task, TaskEvent, TaskStatus, Thread, ThreadStatus, new_id, utcnow


@dataclass(frozen=True)
class QueuedTask:
    """What the caller needs back: the task (a detached row object) and its first event."""

    task: Task
    event_id: int
    event_type: str
    event_data: dict[str, Any]


def _task_values(task_id: str, thread_id: str, request: str, params: dict[str, Any], now: datetime) -> dict[str, Any]:
    # Every non-null column explicitly: Python-side column defaults are not applied inside a CTE.
    return {
        "id": task_id, "thread_id": thread_id, "kind": "task", "status": TaskStatus.QUEUED.value,
        "request": request, "params": params, "warnings": [], "input_tokens": 0, "output_tokens": 0,
        "cost_usd": 0.0, "run_count": 0, "created_at": now, "updated_at": now,
    }


async def queue_new_task(
    engine: AsyncEngine,
    autocommit_engine: AsyncEngine | None,
    *,
    request: str,
    params: dict[str, Any],
    thread_metadata: dict[str, Any],
    event_type: str,
    event_data: dict[str, Any],
    notify_channel: str,
) -> QueuedTask:
    """Insert a queued task on a new thread (busy with it, ``thread_metadata`` plus the task's
    id in its metadata) and its first event.

    ``autocommit_engine`` (Postgres only, storage.engine.create_autocommit_engine) selects the
    one-statement path, which also notifies ``notify_channel``; without it the rows go in one
    transaction on ``engine`` and nothing is notified (SQLite has no notifications).
    """
    now = utcnow()
    task_id, thread_id = new_id(), new_id()
    task_values = _task_values(task_id, thread_id, request, params, now)
    thread_values = {"thread_id": thread_id, "metadata": {**thread_metadata, "task_id": task_id}, "status": ThreadStatus.BUSY.value,
                     "created_at": now, "updated_at": now}
    event_values = {"task_id": task_id, "type": event_type, "data": event_data, "created_at": now}
    tasks, threads, events = Task.__table__, Thread.__table__, TaskEvent.__table__
    if autocommit_engine is not None:
        new_task = insert(tasks).values(task_values).returning(tasks.c.id).cte("new_task")
        new_thread = insert(threads).values(thread_values).returning(threads.c.thread_id).cte("new_thread")
        first_event = insert(events).values(event_values).returning(events.c.id).cte("first_event")
        # Joining the CTEs makes them part of the statement; pg_notify runs once, for the one row.
        statement = (select(first_event.c.id, func.pg_notify(notify_channel, ""))
                     .select_from(first_event.join(new_task, true()).join(new_thread, true())))
        async with autocommit_engine.connect() as connection:
            event_id = (await connection.execute(statement)).scalar_one()
    else:
        async with engine.begin() as connection:
            await connection.execute(insert(tasks).values(task_values))
            await connection.execute(insert(threads).values(thread_values))
            result = await connection.execute(insert(events).values(event_values))
            event_id = result.inserted_primary_key[0]
    task = Task(**task_values)
    return QueuedTask(task=task, event_id=int(event_id), event_type=event_type, event_data=event_data)
