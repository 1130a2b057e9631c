"""Async repositories over one AsyncSession, plus the finalize node's one-shot writer.

Repositories flush but never commit: the caller owns the transaction
(``async with session_factory.begin() as session: ...``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Row, Update, and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import (
    RevokedToken,
    User,
    TERMINAL_STATUSES,
    Attempt,
    Task,
    TaskEvent,
    TaskStatus,
    Thread,
    ThreadStatus,
    Usage,
    new_id,
    utcnow,
)
from storage.posts import PostRepository, RenderedBody
from storage.records import ATTEMPT_FIELDS, USAGE_FIELDS, AttemptRecord, UsageRecord, pick
from storage.storable import storable, storable_text

MAX_PAGE_SIZE = 200
EVENT_PAGE_SIZE = 500
# First key of the two-key advisory lock that orders one task's event inserts on Postgres (the
# migration and checkpointer locks use the one-key space, so they cannot collide with it).
EVENT_LOCK_NAMESPACE = 0x646C6576  # "dlev"
# Ids of rows that save_run_outcome creates for a thread nobody queued (the CLI's runs).
_THREAD_TASK_NAMESPACE = uuid.UUID("0d5f1b8e-3c55-4d0e-9a57-9c4b8f1e2d70")
_TERMINAL_VALUES = tuple(status.value for status in TERMINAL_STATUSES)

# Terminal states are final except FAILED -> QUEUED (an explicit retry). RUNNING -> QUEUED is
# the executor handing a task back (lease lost, shutdown) for another worker to pick up.
# AWAITING_APPROVAL -> QUEUED is a human's decision: the task waits for any worker to resume it.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.QUEUED, TaskStatus.AWAITING_APPROVAL, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.AWAITING_APPROVAL: frozenset(
        {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELLED: frozenset(),
}


class TaskNotFound(LookupError):
    pass


class InvalidStatusTransition(ValueError):
    def __init__(self, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"task cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


class ConcurrentStatusChange(RuntimeError):
    """Another session changed the task's status between our read and our write."""


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


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Where a task a worker runs stands now: ``held`` is False once the worker must stop
    (cancelled, taken over by another worker, or ended by someone else)."""

    task_id: str
    status: TaskStatus
    lease_owner: str | None
    held: bool


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    duration_ms: int
    cost_usd: float


def check_transition(current: str, target: str) -> TaskStatus:
    """The target as a TaskStatus; raises InvalidStatusTransition unless allowed (same status is)."""
    current_status, target_status = TaskStatus(current), TaskStatus(target)
    if target_status != current_status and target_status not in ALLOWED_TRANSITIONS[current_status]:
        raise InvalidStatusTransition(current_status, target_status)
    return target_status


def outcome_status(current: str, target: str) -> TaskStatus:
    """The status a finished run may record over ``current``.

    Looser than check_transition: a run that reached finalize did run, whatever the executor
    last wrote (queued, running, awaiting approval). Only a task that already ended another
    way (cancelled, failed, or completed when this outcome says failed) is protected.
    """
    current_status, target_status = TaskStatus(current), TaskStatus(target)
    if current_status in TERMINAL_STATUSES and target_status != current_status:
        raise InvalidStatusTransition(current_status, target_status)
    return target_status


def status_timestamps(task: Task, target: TaskStatus, now: datetime) -> dict[str, Any]:
    """Column values that go with entering ``target``: timestamps, and the lease released."""
    values: dict[str, Any] = {"status": target.value, "updated_at": now}
    if target != TaskStatus.QUEUED and task.started_at is None:
        values["started_at"] = now
    if target in TERMINAL_STATUSES:
        values["finished_at"] = task.finished_at or now
    else:
        values["finished_at"] = None
    if target != TaskStatus.RUNNING:
        # Only a running task is being worked on; any other state frees it from its worker.
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    return values


def encode_cursor(task: Task | Row[Any]) -> str:
    return encode_keyset(task.created_at, task.id)


def encode_keyset(at: datetime, key: str) -> str:
    """An opaque cursor for newest-first (timestamp, key) pages; decode_cursor reads it back."""
    payload = json.dumps([at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, task_id = json.loads(base64.urlsafe_b64decode(padded))
        parsed = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if parsed.tzinfo is None or not isinstance(task_id, str):
        raise ValueError("invalid cursor")
    return parsed, task_id


async def fetch_task_row(connection: AsyncConnection, task_id: str) -> Row[Any] | None:
    """A task's columns as a plain row (attribute access like a Task), or None: for read-only
    handlers on a connection without a session, it costs half the CPU of loading an ORM object
    (bench/ANALYSIS.md)."""
    table = Task.__table__
    return (await connection.execute(select(table).where(table.c.id == task_id))).first()


# A claim of a row that still says running takes over a run that stopped without ending (its
# lease ran out): one more resume. SET reads the row as it was before the update.
_RESUMED = Task.resume_count + case((Task.status == TaskStatus.RUNNING.value, 1), else_=0)


def _claim_statement() -> Update:
    """TaskRepository.claim's statement, built once: constructing and cache-keying it on every
    claim cost the workers more than running it (bench/ANALYSIS.md). Parameters: ``now``,
    ``claim_limit``, ``claimer`` (the worker id) and ``claim_expires_at``."""
    now = bindparam("now", type_=Task.__table__.c.updated_at.type)
    # Runs of one thread go one at a time, oldest first: a run waits while an older run of
    # its thread is queued or running (a task is alone on its thread, so never waits).
    older = aliased(Task)
    blocked = (
        select(older.id)
        .where(
            older.thread_id == Task.thread_id,
            older.id != Task.id,
            older.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
            or_(older.created_at < Task.created_at, and_(older.created_at == Task.created_at, older.id < Task.id)),
        )
        .exists()
    )
    runnable = (
        select(Task.id)
        .where(
            or_(
                Task.status == TaskStatus.QUEUED.value,
                and_(
                    Task.status == TaskStatus.RUNNING.value,
                    or_(Task.lease_expires_at.is_(None), Task.lease_expires_at < now),
                ),
            ),
            ~blocked,
        )
        .order_by(Task.created_at, Task.id)
        .limit(bindparam("claim_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(Task)
        .where(Task.id.in_(runnable.scalar_subquery()))
        .values(
            status=TaskStatus.RUNNING.value,
            lease_owner=bindparam("claimer", type_=Task.__table__.c.lease_owner.type),
            lease_expires_at=bindparam("claim_expires_at", type_=Task.__table__.c.lease_expires_at.type),
            run_count=Task.run_count + 1,
            resume_count=_RESUMED,
            started_at=func.coalesce(Task.started_at, now),
            finished_at=None,
            updated_at=now,
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


_CLAIM = _claim_statement()


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
    ) -> Task:
        """A new task; its LangGraph thread defaults to the task id.

        ``run`` makes it a LangGraph API run (kind 'run'): the run columns to set, e.g.
        ``{"assistant_id": ..., "input": ..., "stream_modes": [...]}``.
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
            **(run or {}),
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
            Task.thread_id == thread_id, Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value])
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

    async def update_status(
        self, task_id: str, status: TaskStatus | str, *, error: str | None = None, now: datetime | None = None
    ) -> Task:
        """Move a task to ``status``, stamping started_at/finished_at/updated_at.

        The write is conditional on the status we read, so two workers racing on one task
        cannot both succeed: the loser gets ConcurrentStatusChange.
        """
        task = await self.require(task_id)
        current = task.status
        target = check_transition(current, status)
        values = status_timestamps(task, target, now or utcnow())
        if error is not None:
            values["error"] = error
        if target == TaskStatus(current) and error is None:
            return task
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == current)
            .values(**values)
            # Our own bookkeeping below: the ORM's would also "apply" an update that matched no row.
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await self.session.refresh(task)
            raise ConcurrentStatusChange(task_id)
        for key, value in values.items():
            set_committed_value(task, key, value)
        return task

    async def set_result(
        self,
        task_id: str,
        result: dict[str, Any],
        *,
        warnings: Sequence[Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> Task:
        task = await self.require(task_id)
        task.result = result
        if warnings is not None:
            task.warnings = list(warnings)
        if model is not None:
            task.model = model
        if provider is not None:
            task.provider = provider
        task.updated_at = utcnow()
        await self.session.flush()
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
        if limit < 1:
            raise ValueError("limit must be at least 1")
        limit = min(limit, MAX_PAGE_SIZE)
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
            stmt = stmt.where(
                or_(
                    Task.created_at < after_created_at,
                    and_(Task.created_at == after_created_at, Task.id < after_id),
                )
            )
        stmt = stmt.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
        rows = list(await (self.session.execute(stmt) if columns is not None else self.session.scalars(stmt)))
        items = rows[:limit]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
        return TaskPage(items=items, next_cursor=next_cursor)

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
        return task, inserted.rowcount == 1

    @staticmethod
    def _check_thread(task: Task, thread_id: str) -> None:
        if task.thread_id != thread_id:
            raise ValueError(f"task {task.id} belongs to thread {task.thread_id!r}, not {thread_id!r}")


    # -- durable queue ------------------------------------------------------------------------

    async def claim(self, worker_id: str, limit: int, lease_seconds: float, *, now: datetime | None = None) -> list[Task]:
        """Lease up to ``limit`` runnable tasks to ``worker_id``, oldest first, and mark them running.

        Runnable: queued, or running under a lease that expired (its worker died) or never had
        one. On Postgres, FOR UPDATE SKIP LOCKED lets concurrent claimers split the queue
        without waiting on each other or taking the same row; SQLite runs the one statement
        under its database write lock, which is just as exclusive.
        """
        if limit < 1:
            return []
        now = now or utcnow()
        claimed = list(await self.session.scalars(_CLAIM, {
            "now": now, "claim_limit": limit, "claimer": worker_id,
            "claim_expires_at": now + timedelta(seconds=lease_seconds),
        }))
        claimed.sort(key=lambda task: (task.created_at, task.id))
        return claimed

    async def heartbeat(
        self, worker_id: str, task_ids: Iterable[str], lease_seconds: float, *, now: datetime | None = None
    ) -> dict[str, LeaseState]:
        """Extend the leases ``worker_id`` still holds on ``task_ids``; report every one of them.

        A task missing from the answer was deleted. One that is not ``held`` must stop on this
        worker: it was cancelled, another worker took it over, or its run already ended.
        """
        ids = list(task_ids)
        if not ids:
            return {}
        now = now or utcnow()
        await self.session.execute(
            update(Task)
            .where(Task.id.in_(ids), Task.lease_owner == worker_id, Task.status == TaskStatus.RUNNING.value)
            # updated_at stays: a lease extension is bookkeeping, not a change anyone asked for.
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=Task.updated_at)
            .execution_options(synchronize_session=False)
        )
        return await self.lease_states(worker_id, ids)

    async def lease_states(self, worker_id: str, task_ids: Iterable[str]) -> dict[str, LeaseState]:
        """The same report as heartbeat without writing: one indexed read, cheap enough to run
        several times a second so a cancel made by another process is noticed quickly."""
        ids = list(task_ids)
        if not ids:
            return {}
        rows = await self.session.execute(select(Task.id, Task.status, Task.lease_owner).where(Task.id.in_(ids)))
        states = {}
        for task_id, status, owner in rows:
            held = status == TaskStatus.RUNNING.value and owner == worker_id
            states[task_id] = LeaseState(task_id, TaskStatus(status), owner, held)
        return states

    async def release(self, worker_id: str, task_ids: Iterable[str] | None = None, *,
                      interrupted: bool = False) -> list[str]:
        """Hand ``worker_id``'s running tasks (all of them when ``task_ids`` is None) back to the
        queue with no lease, for any worker to resume from the checkpoint. Returns their ids.

        ``interrupted``: their runs stopped without ending (a worker restarted under the same
        id finds them), so each counts as a resume."""
        statement = update(Task).where(Task.lease_owner == worker_id, Task.status == TaskStatus.RUNNING.value)
        if task_ids is not None:
            ids = list(task_ids)
            if not ids:
                return []
            statement = statement.where(Task.id.in_(ids))
        values: dict[str, Any] = {"status": TaskStatus.QUEUED.value, "lease_owner": None, "lease_expires_at": None,
                                  "updated_at": utcnow()}
        if interrupted:
            values["resume_count"] = Task.resume_count + 1
        result = await self.session.execute(
            statement.values(**values)
            .returning(Task.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    async def take(self, task_id: str, worker_id: str, lease_seconds: float, *, steal_from: str | None = None,
                   now: datetime | None = None) -> bool:
        """Lease one task to ``worker_id`` to run it here (the CLI's own runs): it must be
        waiting (queued, awaiting approval) or running under a lease nobody renews, or held by
        ``steal_from`` (a holder known to be dead). False when a live worker holds it, or it
        has ended."""
        now = now or utcnow()
        holders = [worker_id] + ([steal_from] if steal_from else [])
        result = await self.session.execute(
            update(Task)
            .where(
                Task.id == task_id,
                or_(
                    Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.AWAITING_APPROVAL.value]),
                    and_(Task.status == TaskStatus.RUNNING.value,
                         or_(Task.lease_expires_at.is_(None), Task.lease_expires_at < now,
                             Task.lease_owner.in_(holders))),
                ),
            )
            .values(status=TaskStatus.RUNNING.value, lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds), run_count=Task.run_count + 1,
                    resume_count=_RESUMED, started_at=func.coalesce(Task.started_at, now), finished_at=None,
                    updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def end_run(
        self,
        task_id: str,
        worker_id: str,
        status: TaskStatus | str,
        *,
        error: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Record how ``worker_id``'s run of a task ended (completed, failed, awaiting approval,
        or queued again), freeing the lease and any consumed pending command.

        Conditional on the worker still holding the task: False (nothing written) when it was
        cancelled or taken over meanwhile, so a late writer never overrides the newer state.
        """
        target = check_transition(TaskStatus.RUNNING.value, status)
        now = now or utcnow()
        values: dict[str, Any] = {
            "status": target.value,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            "pending_command": None,
            "error": None if error is None else storable_text(error),
            "finished_at": now if target in TERMINAL_STATUSES else None,
        }
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.RUNNING.value, Task.lease_owner == worker_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def cancel(self, task_id: str, *, now: datetime | None = None) -> bool:
        """Mark a task cancelled whatever runs it; False when it had already ended.

        The lease is cleared, so its worker learns it must stop from the next lease check.
        Raises TaskNotFound.
        """
        now = now or utcnow()
        result = await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.not_in(_TERMINAL_VALUES))
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
        if result.rowcount == 1:
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
        return result.rowcount == 1

    async def clear_pending_command(self, task_id: str, worker_id: str) -> None:
        """Forget a decision the graph has taken in (or that no longer applies)."""
        await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.lease_owner == worker_id)
            .values(pending_command=None, updated_at=Task.updated_at)
            .execution_options(synchronize_session=False)
        )

    async def status_counts(self) -> dict[TaskStatus, int]:
        rows = await self.session.execute(select(Task.status, func.count()).group_by(Task.status))
        counts = {status: 0 for status in TaskStatus}
        for status, count in rows:
            counts[TaskStatus(status)] = int(count)
        return counts


THREAD_STATUS_AFTER_RUN: dict[TaskStatus, ThreadStatus] = {
    TaskStatus.QUEUED: ThreadStatus.BUSY,
    TaskStatus.RUNNING: ThreadStatus.BUSY,
    TaskStatus.AWAITING_APPROVAL: ThreadStatus.INTERRUPTED,
    TaskStatus.COMPLETED: ThreadStatus.IDLE,
    TaskStatus.FAILED: ThreadStatus.ERROR,
    TaskStatus.CANCELLED: ThreadStatus.IDLE,
}


class ThreadRepository:
    """LangGraph API threads. Their state lives in the checkpointer; this is the index."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, thread_id: str | None = None, metadata: dict[str, Any] | None = None,
                     status: ThreadStatus = ThreadStatus.IDLE) -> Thread:
        now = utcnow()
        thread = Thread(thread_id=thread_id or new_id(), meta=dict(metadata or {}), status=status.value,
                        created_at=now, updated_at=now)
        self.session.add(thread)
        await self.session.flush()
        return thread

    async def get(self, thread_id: str) -> Thread | None:
        return await self.session.get(Thread, thread_id)

    async def search(
        self, *, ids: Sequence[str] | None = None, status: str | None = None,
        sort_by: str = "updated_at", descending: bool = True,
    ) -> list[Thread]:
        """Threads matching ids/status, sorted; metadata filtering is the caller's (portable
        JSON containment differs between SQLite and Postgres)."""
        stmt = select(Thread)
        if ids:
            stmt = stmt.where(Thread.thread_id.in_(list(ids)))
        if status is not None:
            stmt = stmt.where(Thread.status == status)
        column = {"thread_id": Thread.thread_id, "status": Thread.status, "created_at": Thread.created_at,
                  "updated_at": Thread.updated_at}[sort_by]
        stmt = stmt.order_by(column.desc() if descending else column.asc(), Thread.thread_id)
        return list(await self.session.scalars(stmt))

    async def delete(self, thread_id: str) -> bool:
        """The thread and every run on it (their events, attempts and usage cascade)."""
        await self.session.execute(delete(Task).where(Task.thread_id == thread_id))
        result = await self.session.execute(delete(Thread).where(Thread.thread_id == thread_id))
        return result.rowcount == 1

    async def set_status(self, thread_id: str, status: ThreadStatus) -> None:
        await self.session.execute(
            update(Thread).where(Thread.thread_id == thread_id).values(status=status.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def after_run(self, thread_id: str, run_id: str, run_status: TaskStatus) -> ThreadStatus:
        """Set and return the thread's status once ``run_id`` reached ``run_status``: still busy
        while other runs of it wait or run."""
        status = THREAD_STATUS_AFTER_RUN[run_status]
        if status != ThreadStatus.BUSY and await TaskRepository(self.session).active_run_ids(thread_id, exclude=run_id):
            status = ThreadStatus.BUSY
        await self.set_status(thread_id, status)
        return status

    async def touch(self, thread_id: str) -> None:
        await self.session.execute(
            update(Thread).where(Thread.thread_id == thread_id).values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


class EventRepository:
    """The append-only progress log behind SSE."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, task_id: str, event_type: str, data: dict[str, Any] | None = None, *,
                     new_task: bool = False) -> TaskEvent:
        """Add one event in the caller's transaction. ``new_task``: the task row is being created
        in this same transaction, so no other writer can know it yet and the lock is skipped.

        A reader resumes after the highest id it saw, so ids must become visible in order. On
        Postgres two transactions could take ids 10 and 11 and commit 11 first; a follower
        reading then would skip 10 for good. Holding a per-task transaction lock from before
        the id is drawn until commit makes one task's events commit in id order. SQLite
        already serialises every writer.
        """
        if not new_task and self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                select(func.pg_advisory_xact_lock(EVENT_LOCK_NAMESPACE, func.hashtext(task_id)))
            )
        # Events carry model output (tokens, titles, the draft on offer): see storage/storable.py.
        event = TaskEvent(task_id=task_id, type=event_type, data=storable(dict(data or {})), created_at=utcnow())
        self.session.add(event)
        await self.session.flush()
        return event

    async def append_many(self, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Add (task id, type, data) events in order, in one multi-row insert in the caller's
        transaction. Takes the per-task locks of ``append`` for every task in the batch, in a
        fixed order so that two batch writers cannot deadlock."""
        if not events:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            # One round trip for all of them; the sorted subquery fixes the locking order.
            await self.session.execute(
                text("SELECT count(pg_advisory_xact_lock(:namespace, hashtext(t))) "
                     "FROM (SELECT t FROM unnest(CAST(:task_ids AS text[])) AS t ORDER BY t) AS ordered"),
                {"namespace": EVENT_LOCK_NAMESPACE, "task_ids": sorted({task_id for task_id, _, _ in events})},
            )
        now = utcnow()
        await self.session.execute(TaskEvent.__table__.insert(), [
            {"task_id": task_id, "type": event_type, "data": storable(dict(data)), "created_at": now}
            for task_id, event_type, data in events
        ])

    async def list_after(self, task_id: str, after_id: int = 0, limit: int = EVENT_PAGE_SIZE) -> list[TaskEvent]:
        """A task's events with id > ``after_id``, oldest first, at most ``limit``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = await self.session.scalars(
            select(TaskEvent)
            .where(TaskEvent.task_id == task_id, TaskEvent.id > after_id)
            .order_by(TaskEvent.id)
            .limit(limit)
        )
        return list(rows)


async def _bulk_insert(session: AsyncSession, model: type[Attempt] | type[Usage], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` as one bulk INSERT: no ORM objects are built or tracked for rows nobody
    reads back in the transaction, which made the run outcome's flushes a profile hot spot."""
    if rows:
        await session.execute(insert(model), rows)


class AttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, task_id: str, record: AttemptRecord) -> Attempt:
        attempt = Attempt(task_id=task_id, **pick(record, ATTEMPT_FIELDS))
        self.session.add(attempt)
        await self.session.flush()
        return attempt

    async def replace_all(self, task_id: str, records: Iterable[AttemptRecord]) -> None:
        """Make the task's attempts exactly ``records``; running it twice leaves one copy."""
        await self.session.execute(delete(Attempt).where(Attempt.task_id == task_id))
        await _bulk_insert(self.session, Attempt, [{"task_id": task_id, **pick(record, ATTEMPT_FIELDS)}
                                                  for record in records])

    async def list_for_task(self, task_id: str) -> list[Attempt]:
        rows = await self.session.scalars(select(Attempt).where(Attempt.task_id == task_id).order_by(Attempt.number))
        return list(rows)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, task_id: str, records: Iterable[UsageRecord]) -> None:
        now = utcnow()
        rows = []
        for offset, record in enumerate(records):
            values = pick(record, USAGE_FIELDS)
            # Untimestamped records get distinct, increasing times so listing keeps call order.
            values.setdefault("created_at", now + timedelta(microseconds=offset))
            rows.append({"task_id": task_id, **values})
        await _bulk_insert(self.session, Usage, rows)

    async def replace_all(self, task_id: str, records: Iterable[UsageRecord]) -> None:
        await self.session.execute(delete(Usage).where(Usage.task_id == task_id))
        await self.add_many(task_id, records)

    async def list_for_task(self, task_id: str) -> list[Usage]:
        rows = await self.session.scalars(
            select(Usage).where(Usage.task_id == task_id).order_by(Usage.created_at, Usage.id)
        )
        return list(rows)

    async def totals_for_task(self, task_id: str) -> UsageTotals:
        row = (
            await self.session.execute(
                select(
                    func.count(Usage.id),
                    func.coalesce(func.sum(Usage.input_tokens), 0),
                    func.coalesce(func.sum(Usage.output_tokens), 0),
                    func.coalesce(func.sum(Usage.duration_ms), 0),
                    func.coalesce(func.sum(Usage.cost_usd), 0),
                ).where(Usage.task_id == task_id)
            )
        ).one()
        calls, input_tokens, output_tokens, duration_ms, cost = row
        return UsageTotals(
            calls=int(calls),
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            duration_ms=int(duration_ms),
            cost_usd=round(float(cost), 8),
        )


async def save_run_outcome(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    thread_id: str,
    request: str,
    params: dict[str, Any],
    intent: dict[str, Any] | None,
    result: dict[str, Any] | None,
    attempts: Sequence[AttemptRecord],
    usage: Sequence[UsageRecord],
    warnings: Sequence[Any],
    model: str | None,
    provider: str | None,
    status: TaskStatus | str = TaskStatus.COMPLETED,
    task_id: str | None = None,
    error: str | None = None,
    numbers_engine: AsyncEngine | None = None,
    rendered: RenderedBody | None = None,
) -> Task:
    """Persist a finished run in one transaction: the task row (found by thread_id, created if
    missing), its attempts and its usage, replaced wholesale so a re-run of finalize after a
    crash or retry leaves exactly one copy, and for content its draft post (storage/posts.py).
    Task token/cost totals are summed from ``usage``.

    Raises InvalidStatusTransition if the task already finished differently (e.g. it was
    cancelled while the graph ran); nothing is written then. ``numbers_engine``: see
    PostRepository. ``rendered``: the post's body rendered (PostRepository.save_for_task).
    """
    # Model output and search results may hold text the database refuses (storage/storable.py).
    request, params, intent, result, attempts, usage, warnings, model, provider, error = storable(
        (request, params, intent, result, list(attempts), list(usage), list(warnings), model, provider, error))
    async with session_factory.begin() as session:
        tasks = TaskRepository(session)
        task, _created = await tasks.lock_or_create_for_thread(thread_id, task_id=task_id)
        target = outcome_status(task.status, status)
        for key, value in status_timestamps(task, target, utcnow()).items():
            setattr(task, key, value)
        # The executor may have stored the request when it queued the task; a graph state that
        # lost it (empty text) must not wipe it.
        task.request = request or task.request
        task.params = dict(params) or task.params
        task.intent = intent
        task.result = result
        task.warnings = list(warnings)
        task.model = model
        task.provider = provider
        task.error = error
        task.pending_approval = None
        # Set before the first flush, so the task row is written by one UPDATE.
        task.input_tokens = sum(record.get("input_tokens") or 0 for record in usage)
        task.output_tokens = sum(record.get("output_tokens") or 0 for record in usage)
        task.cost_usd = round(sum(record.get("cost_usd") or 0.0 for record in usage), 8)
        await AttemptRepository(session).replace_all(task.id, attempts)
        await UsageRepository(session).replace_all(task.id, usage)
        # Same transaction as the outcome: a run that is recorded always has its post, and a
        # re-run of finalize finds that post by task instead of adding a second one.
        await PostRepository(session, numbers_engine).save_for_task(task, result or {}, rendered)
    return task


async def save_pending_approval(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    thread_id: str,
    pending: dict[str, Any],
    attempts: Sequence[AttemptRecord],
    usage: Sequence[UsageRecord],
    task_id: str | None = None,
) -> None:
    """While a run waits for approval: the draft on offer and the attempts and usage so far, so
    the task API shows them before the run ends. The status stays as the run's owner sets it;
    a task that already ended is left alone."""
    pending, attempts, usage = storable((pending, list(attempts), list(usage)))
    async with session_factory.begin() as session:
        task, _created = await TaskRepository(session).lock_or_create_for_thread(thread_id, task_id=task_id)
        if TaskStatus(task.status) in TERMINAL_STATUSES:
            return
        task.pending_approval = pending
        task.input_tokens = sum(record.get("input_tokens") or 0 for record in usage)
        task.output_tokens = sum(record.get("output_tokens") or 0 for record in usage)
        task.cost_usd = round(sum(record.get("cost_usd") or 0.0 for record in usage), 8)
        await AttemptRepository(session).replace_all(task.id, attempts)
        await UsageRepository(session).replace_all(task.id, usage)


class UserExists(ValueError):
    """A user with that name is already there."""


@dataclass(frozen=True)
class TokenOwner:
    """What a request's token resolves to: the user as stored now, and whether it was revoked."""

    user_id: str
    name: str
    role: str
    revoked: bool


class UserRepository:
    """Accounts and revoked token ids. Password hashing happens in the caller (app/security.py):
    this layer only ever sees hashes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, password_hash: str, role: str) -> User:
        if await self.by_name(name) is not None:
            raise UserExists(f"user {name!r} already exists")
        user = User(name=name, password_hash=password_hash, role=role)
        self.session.add(user)
        await self.session.flush()
        return user

    async def by_name(self, name: str) -> User | None:
        return await self.session.scalar(select(User).where(User.name == name))

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(User)) or 0)

    async def token_owner(self, user_id: str, jti: str) -> TokenOwner | None:
        """One round trip per authenticated request: the user's current role (a role change or a
        deleted user takes effect at once) and whether this token was logged out."""
        revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
        row = (await self.session.execute(
            select(User.id, User.name, User.role, revoked).where(User.id == user_id))).first()
        if row is None:
            return None
        return TokenOwner(user_id=row[0], name=row[1], role=row[2], revoked=bool(row[3]))

    async def revoke(self, jti: str, user_id: str, expires_at: datetime) -> None:
        if await self.session.get(RevokedToken, jti) is None:
            self.session.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at))
        # Tokens past their expiry are refused on their exp claim anyway; their rows can go.
        await self.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
