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
from typing import Any

from sqlalchemy import BindParameter, Select, String, Table, bindparam, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import Task, TaskEvent, TaskStatus, Thread, ThreadStatus, new_id, utcnow


@dataclass(frozen=True)
class QueuedTask:
    """What the caller needs back: the task (a detached row object) and its first event's id."""

    task: Task
    event_id: int


_TASKS, _THREADS, _EVENTS = Task.__table__, Thread.__table__, TaskEvent.__table__


def _bound(table: Table, **names: str) -> dict[str, BindParameter[Any]]:
    """column -> a bound parameter typed like it (one parameter may fill several columns)."""
    return {column: bindparam(name, type_=table.c[column].type) for column, name in names.items()}


# Every non-null column explicitly: Python-side column defaults are not applied inside a CTE.
_TASK_VALUES = _bound(_TASKS, id="task_id", thread_id="thread_id", kind="kind", status="status", request="request",
                      params="params", warnings="warnings", input_tokens="zero", output_tokens="zero",
                      cost_usd="no_cost", run_count="zero", resume_count="zero",
                      created_at="now", updated_at="now")
_THREAD_VALUES = _bound(_THREADS, thread_id="thread_id", metadata="thread_metadata", status="thread_status",
                        created_at="now", updated_at="now")
_EVENT_VALUES = _bound(_EVENTS, task_id="task_id", type="event_type", data="event_data", created_at="now")

# Built once: constructing and cache-keying these per request cost about as much as running them.
_INSERT_TASK = insert(_TASKS).values(_TASK_VALUES)
_INSERT_THREAD = insert(_THREADS).values(_THREAD_VALUES)
_INSERT_EVENT = insert(_EVENTS).values(_EVENT_VALUES).returning(_EVENTS.c.id)


def _one_statement() -> Select[Any]:
    new_task = _INSERT_TASK.returning(_TASKS.c.id).cte("new_task")
    new_thread = _INSERT_THREAD.returning(_THREADS.c.thread_id).cte("new_thread")
    first_event = _INSERT_EVENT.cte("first_event")
    # Joining the CTEs makes them part of the statement; pg_notify runs once, for the one row.
    return (select(first_event.c.id, func.pg_notify(bindparam("channel", type_=String()), ""))
            .select_from(first_event.join(new_task, true()).join(new_thread, true())))


_QUEUE_IN_ONE_STATEMENT = _one_statement()


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
    values = {
        "task_id": task_id, "thread_id": thread_id, "kind": "task", "status": TaskStatus.QUEUED.value,
        "request": request, "params": params, "warnings": [], "zero": 0, "no_cost": 0.0, "now": now,
        "thread_metadata": {**thread_metadata, "task_id": task_id}, "thread_status": ThreadStatus.BUSY.value,
        "event_type": event_type, "event_data": event_data,
    }
    if autocommit_engine is not None:
        async with autocommit_engine.connect() as connection:
            result = await connection.execute(_QUEUE_IN_ONE_STATEMENT, {**values, "channel": notify_channel})
            event_id = result.scalar_one()
    else:
        async with engine.begin() as connection:
            await connection.execute(_INSERT_TASK, values)
            await connection.execute(_INSERT_THREAD, values)
            event_id = (await connection.execute(_INSERT_EVENT, values)).scalar_one()
    task = Task(id=task_id, thread_id=thread_id, kind="task", status=TaskStatus.QUEUED.value, request=request,
                params=params, warnings=[], input_tokens=0, output_tokens=0, cost_usd=0.0, run_count=0, resume_count=0,
                created_at=now, updated_at=now)
    return QueuedTask(task=task, event_id=int(event_id))
