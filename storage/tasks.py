"""The task aggregate: a task's row (a task, or a LangGraph API run), its listing and its queue entry.

Repositories flush but never commit: the caller owns the transaction
(``async with session_factory.begin() as session: ...``). Leases (storage/leases.py), events
(task_events.py), attempts and usage (attempts.py) and the run outcome (outcomes.py) are
aggregates of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Row, Select, String, Table, bindparam, func, insert, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.affected_rows import affected_rows
from storage.models import Task, TaskEvent, TaskStatus, Thread, ThreadStatus, new_id, utcnow
from storage.pagination import decode_cursor, next_cursor, older_than, page_limit
from storage.status import ACTIVE_VALUES, TERMINAL_VALUES, check_transition, status_timestamps
from storage.write_paths import WritePaths

# Ids of rows that the outcome writers create for a thread nobody queued (the CLI's runs).
_THREAD_TASK_NAMESPACE = uuid.UUID("0d5f1b8e-3c55-4d0e-9a57-9c4b8f1e2d70")


class TaskNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class TaskPage:
    # Task objects, or rows of the columns asked for (TaskRepository.list ``columns``).
    items: list[Task] | list[Row[Any]]
    next_cursor: str | None


# What a task listing shows (app/http/task_schemas.task_summary): the result's headline fields
# are picked out by the database instead of decoding every listed task's whole result (its
# markdown and sources), which made listings the API's heaviest reads under load.
SUMMARY_COLUMNS = (
    Task.id, Task.thread_id, Task.status, Task.request, Task.created_at, Task.updated_at, Task.finished_at,
    Task.result["title"].label("title"), Task.result["score"].label("score"),
    # As a boolean: SQLite's json_extract turns true into 1.
    Task.result["passed"].as_boolean().label("passed"),
)


async def fetch_task_row(connection: AsyncConnection, task_id: str) -> Row[Any] | None:
    """A task's columns as a plain row (attribute access like a Task), or None: for read-only
    handlers on a connection without a session, it costs half the CPU of loading an ORM object
    (bench/ANALYSIS.md)."""
    table = Task.__table__
    return (await connection.execute(select(table).where(table.c.id == task_id))).first()


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        request: str = "",
        params: dict[str, Any] | None = None,
        thread_id: str | None = None,
        task_id: str | None = None,
        status: TaskStatus | str = TaskStatus.QUEUED,
        intent: dict[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
        run: dict[str, Any] | None = None,
        webhook: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> Task:
        """A new task; its LangGraph thread defaults to the task id.

        ``run`` makes it a LangGraph API run (kind 'run'): the run columns to set, e.g.
        ``{"assistant_id": ..., "input": ..., "stream_modes": [...]}``. ``config``: a task's
        graph config (its creator, see app/engine/driver.py ``task_config``).
        """
        task_id = task_id or new_id()
        target = TaskStatus(status)
        now = utcnow()
        task = Task(
            id=task_id,
            thread_id=thread_id or task_id,
            request=request,
            params=params or {},
            intent=intent,
            model=model,
            provider=provider,
            created_at=now,
            updated_at=now,
            kind="run" if run is not None else "task",
            # A run's columns carry its webhook and config; a task's come on their own.
            **{"webhook": webhook, "config": config, **(run or {})},
        )
        for key, value in status_timestamps(task, target, now).items():
            setattr(task, key, value)
        self.session.add(task)
        await self.session.flush()
        return task

    async def get(self, task_id: str) -> Task | None:
        return await self.session.get(Task, task_id)

    async def get_by_thread(self, thread_id: str) -> Task | None:
        """The thread's newest task or run (a task's thread has just the one)."""
        return await self.session.scalar(
            select(Task).where(Task.thread_id == thread_id).order_by(Task.created_at.desc(), Task.id.desc()).limit(1)
        )

    async def runs_of_thread(
        self, thread_id: str, *, limit: int = 10, offset: int = 0, statuses: Sequence[str] | None = None
    ) -> list[Task]:
        """A thread's runs (and its task, if it is a task's thread), newest first."""
        stmt = select(Task).where(Task.thread_id == thread_id)
        if statuses:
            stmt = stmt.where(Task.status.in_(list(statuses)))
        stmt = stmt.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit).offset(offset)
        return list(await self.session.scalars(stmt))

    async def active_run_ids(self, thread_id: str, *, exclude: str | None = None) -> list[str]:
        """Runs of the thread that are queued or running: the thread is busy while any are."""
        stmt = select(Task.id).where(
            Task.thread_id == thread_id, Task.status.in_(ACTIVE_VALUES)
        )
        if exclude is not None:
            stmt = stmt.where(Task.id != exclude)
        return list(await self.session.scalars(stmt))

    async def status_of(self, task_id: str) -> TaskStatus | None:
        """Just the status (None if there is no such task): cheap enough to poll."""
        status = await self.session.scalar(select(Task.status).where(Task.id == task_id))
        return None if status is None else TaskStatus(status)

    async def require(self, task_id: str) -> Task:
        task = await self.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(
        self,
        *,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        kind: str | None = "task",
        columns: Sequence[Any] | None = None,
    ) -> TaskPage:
        """Newest first, keyset-paginated on (created_at, id).

        ``created_after`` is inclusive and ``created_before`` exclusive, so adjacent windows
        never share a task. Pass ``next_cursor`` back unchanged with the same filters.
        ``columns`` (e.g. SUMMARY_COLUMNS, which must include id and created_at) lists rows of
        just those instead of Task objects.
        """
        limit = page_limit(limit)
        stmt = select(*columns) if columns is not None else select(Task)
        if kind is not None:
            # The task API lists tasks; LangGraph API runs are listed per thread.
            stmt = stmt.where(Task.kind == kind)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            stmt = stmt.where(Task.status.in_([TaskStatus(s).value for s in statuses]))
        if created_after is not None:
            stmt = stmt.where(Task.created_at >= created_after)
        if created_before is not None:
            stmt = stmt.where(Task.created_at < created_before)
        if cursor is not None:
            after_created_at, after_id = decode_cursor(cursor)
            stmt = stmt.where(older_than(Task.created_at, Task.id, after_created_at, after_id))
        stmt = stmt.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
        rows = list(await (self.session.execute(stmt) if columns is not None else self.session.scalars(stmt)))
        items = rows[:limit]
        return TaskPage(items=items, next_cursor=next_cursor(rows, limit))

    async def lock_for_thread(self, thread_id: str, *, task_id: str | None = None) -> Task:
        """The task for ``thread_id`` (``task_id`` when given, else the thread's newest),
        row-locked until the transaction ends; raises TaskNotFound."""
        if task_id is None:
            task_id = await self.session.scalar(
                select(Task.id).where(Task.thread_id == thread_id).order_by(Task.created_at.desc(), Task.id.desc()).limit(1)
            )
            if task_id is None:
                raise TaskNotFound(f"no task on thread {thread_id}")
        task = await self.session.scalar(
            select(Task).where(Task.id == task_id).with_for_update().execution_options(populate_existing=True))
        if task is None:
            raise TaskNotFound(task_id)
        self._check_thread(task, thread_id)
        return task

    async def lock_or_create_for_thread(self, thread_id: str, *, task_id: str | None = None) -> tuple[Task, bool]:
        """The task for ``thread_id`` (``task_id`` when given, else the thread's newest) and
        whether it was just created; row-locked until the transaction ends.

        A thread may hold several runs, so thread_id is not unique: a new row gets ``task_id``
        or, without one, an id derived from the thread, so that concurrent callers still
        converge on one row through INSERT ... ON CONFLICT (id) DO NOTHING (which also takes
        SQLite's write lock up front instead of failing a read->write upgrade).
        """
        if task_id is None:
            existing = await self.session.scalar(
                select(Task.id).where(Task.thread_id == thread_id).order_by(Task.created_at.desc(), Task.id.desc()).limit(1)
            )
            task_id = existing or str(uuid.uuid5(_THREAD_TASK_NAMESPACE, thread_id))
        dialect = self.session.get_bind().dialect.name
        locking = select(Task).where(Task.id == task_id).with_for_update().execution_options(populate_existing=True)
        if dialect == "postgresql":
            # The executor's runs find their row queued already: one statement instead of two.
            # (Not on SQLite, where a read first would make the later write an upgrade that
            # can fail instead of waiting.)
            task = await self.session.scalar(locking)
            if task is not None:
                self._check_thread(task, thread_id)
                return task, False
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        now = utcnow()
        inserted = await self.session.execute(
            upsert(Task)
            .values(id=task_id, thread_id=thread_id, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[Task.id])
        )
        task = await self.session.scalar(locking)
        if task is None:
            raise TaskNotFound(task_id)
        self._check_thread(task, thread_id)
        return task, affected_rows(inserted) == 1

    @staticmethod
    def _check_thread(task: Task, thread_id: str) -> None:
        if task.thread_id != thread_id:
            raise ValueError(f"task {task.id} belongs to thread {task.thread_id!r}, not {thread_id!r}")

    async def cancel(self, task_id: str, *, now: datetime | None = None) -> bool:
        """Mark a task cancelled whatever runs it; False when it had already ended.

        The lease is cleared, so its worker learns it must stop from the next lease check.
        Raises TaskNotFound.
        """
        now = now or utcnow()
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.not_in(TERMINAL_VALUES))
            .values(
                status=TaskStatus.CANCELLED.value,
                updated_at=now,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
                pending_command=None,
            )
            .execution_options(synchronize_session=False)
        )
        if affected_rows(result) == 1:
            return True
        await self.require(task_id)
        return False

    async def queue_decision(self, task_id: str, command: dict[str, Any], *, now: datetime | None = None) -> bool:
        """Store a human's decision for the next worker and queue the task; False unless the
        task is awaiting approval (it may have been decided or cancelled concurrently)."""
        check_transition(TaskStatus.AWAITING_APPROVAL.value, TaskStatus.QUEUED.value)
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.AWAITING_APPROVAL.value)
            .values(status=TaskStatus.QUEUED.value, pending_command=command, updated_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )
        return affected_rows(result) == 1


# -- the queue's entry point ------------------------------------------------------------------
# Putting a new task on the queue (its row, its thread and its ``queued`` event, atomically) is
# the hot path of ``POST /api/tasks``. On Postgres it is one statement (data-modifying CTEs plus
# ``pg_notify``) run in autocommit mode: one round trip, atomic on its own, and the notification
# is sent when it commits. Through a session it took seven round trips (BEGIN, three INSERTs,
# the notify, COMMIT, plus the ORM's flushes), which under load made the POST the slowest
# request the API serves (bench/RESULTS.md). SQLite has no data-modifying CTEs: there the same
# rows go in one short transaction of Core inserts.

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
                      created_at="now", updated_at="now", webhook="webhook", config="config")
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
    paths: WritePaths,
    *,
    request: str,
    params: dict[str, Any],
    thread_metadata: dict[str, Any],
    event_type: str,
    event_data: dict[str, Any],
    notify_channel: str,
    webhook: str | None = None,
    config: dict[str, Any] | None = None,
) -> QueuedTask:
    """Insert a queued task on a new thread (busy with it, ``thread_metadata`` plus the task's
    id in its metadata) and its first event; ``config`` is the task's graph config.

    With ``paths.one_statement`` (Postgres) this is one statement, which also notifies
    ``notify_channel``; without it the rows go in one session transaction and nothing is
    notified (SQLite has no notifications).
    """
    now = utcnow()
    task_id, thread_id = new_id(), new_id()
    values = {
        "task_id": task_id, "thread_id": thread_id, "kind": "task", "status": TaskStatus.QUEUED.value,
        "request": request, "params": params, "warnings": [], "zero": 0, "no_cost": 0.0, "now": now,
        "thread_metadata": {**thread_metadata, "task_id": task_id}, "thread_status": ThreadStatus.BUSY.value,
        "event_type": event_type, "event_data": event_data, "webhook": webhook, "config": config,
    }
    if paths.one_statement is not None:
        async with paths.one_statement.connect() as connection:
            result = await connection.execute(_QUEUE_IN_ONE_STATEMENT, {**values, "channel": notify_channel})
            event_id = result.scalar_one()
    else:
        async with paths.sessions.begin() as session:
            await session.execute(_INSERT_TASK, values)
            await session.execute(_INSERT_THREAD, values)
            event_id = (await session.execute(_INSERT_EVENT, values)).scalar_one()
    task = Task(id=task_id, thread_id=thread_id, kind="task", status=TaskStatus.QUEUED.value, request=request,
                params=params, warnings=[], input_tokens=0, output_tokens=0, cost_usd=0.0, run_count=0, resume_count=0,
                created_at=now, updated_at=now, webhook=webhook, config=config)
    return QueuedTask(task=task, event_id=int(event_id))
