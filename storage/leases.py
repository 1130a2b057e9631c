"""Leases: which worker runs a task now, and the end of its run.

A worker claims runnable tasks (storage is the queue: ``FOR UPDATE SKIP LOCKED`` on Postgres),
renews its leases while it runs them, hands them back, and records how each run ended. The
session methods flush but never commit; ``end_run`` is the one entry point for the end of a
run and picks its own path (storage/write_paths.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Update, and_, bindparam, case, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.affected_rows import affected_rows
from storage.models import TERMINAL_STATUSES, DeliveryStatus, Task, TaskStatus, ThreadStatus, utcnow
from storage.notifications import notify
from storage.status import ACTIVE_VALUES, THREAD_STATUS_AFTER_RUN, WAITING_VALUES, check_transition
from storage.storable import storable_json, storable_text
from storage.task_events import EVENT_LOCK_NAMESPACE, EventRepository
from storage.threads import ThreadRepository
from storage.webhooks import DeliveryRepository, PlannedDelivery, delivery_values
from storage.write_paths import WritePaths


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Where a task a worker runs stands now: ``held`` is False once the worker must stop
    (cancelled, taken over by another worker, or ended by someone else)."""

    task_id: str
    status: TaskStatus
    lease_owner: str | None
    held: bool


# A claim of a row that still says running takes over a run that stopped without ending (its
# lease ran out): one more resume. SET reads the row as it was before the update.
_RESUMED = Task.resume_count + case((Task.status == TaskStatus.RUNNING.value, 1), else_=0)


def _claim_statement() -> Update:
    """LeaseRepository.claim's statement, built once: constructing and cache-keying it on every
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
            older.status.in_(ACTIVE_VALUES),
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

class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
                    Task.status.in_(WAITING_VALUES),
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
        return affected_rows(result) == 1

    async def end_run_row(
        self,
        task_id: str,
        worker_id: str,
        status: TaskStatus | str,
        *,
        error: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """The task row's part of end_run's session path, in the caller's transaction: how
        ``worker_id``'s run of a task ended (completed, failed, awaiting approval, or queued
        again), freeing the lease and any consumed pending command. Callers outside storage use
        end_run, which also stores the run's events and its thread's status.

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
        return affected_rows(result) == 1

    async def clear_pending_command(self, task_id: str, worker_id: str) -> None:
        """Forget a decision the graph has taken in (or that no longer applies)."""
        await self.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.lease_owner == worker_id)
            .values(pending_command=None, updated_at=Task.updated_at)
            .execution_options(synchronize_session=False)
        )

# -- the end of a run ---------------------------------------------------------------------------
# Through a session the end of a run was a transaction of eight round trips: BEGIN, the
# conditional UPDATE of the task, the per-task event lock, an INSERT per event, the
# notification, the look for other runs of the thread, the thread's UPDATE and COMMIT; every run
# ends once, and under load that was one of the workers' larger costs (bench/ANALYSIS.md). On a
# connection in autocommit mode the same steps are one statement, atomic on its own, with the
# same rules as the session path.
#
# Every CTE sees the statement's one snapshot, in which the ending task is still running: the
# look for other active runs of its thread leaves it out by id. The events wait for the lock
# (the join yields no row before ``locked`` is read) and draw their ids in the order given.
# ``others`` always has its one row, so the answer has a row even when no event is stored.
# ``hook``, the run's webhook delivery (the outbox, storage/webhooks.py), is written only when a
# URL is given and the run ended here; Postgres runs a data-modifying CTE even when nothing reads it.
_END_RUN = text("""
WITH ended AS (
    UPDATE tasks
    SET status = :status, updated_at = :now, lease_owner = NULL, lease_expires_at = NULL,
        pending_command = NULL, error = :error, finished_at = :finished_at
    WHERE id = :task_id AND status = :running AND lease_owner = :worker_id
    RETURNING id, thread_id
), others AS (
    SELECT EXISTS (
        SELECT 1 FROM tasks AS other JOIN ended ON other.thread_id = ended.thread_id
        WHERE other.id <> ended.id AND other.status = ANY(CAST(:active AS text[]))
    ) AS busy
), thread AS (
    UPDATE threads
    SET status = CASE WHEN others.busy THEN :busy ELSE :thread_status END, updated_at = :now
    FROM ended, others
    WHERE threads.thread_id = ended.thread_id
    RETURNING threads.thread_id
), locked AS (
    SELECT count(pg_advisory_xact_lock(:namespace, hashtext(ended.id))) AS n FROM ended
), events AS (
    INSERT INTO task_events (task_id, type, data, created_at)
    SELECT ended.id, batch.type, CAST(batch.data AS jsonb), :now
    FROM ended CROSS JOIN locked
    CROSS JOIN unnest(CAST(:types AS text[]), CAST(:data AS text[])) WITH ORDINALITY AS batch(type, data, position)
    ORDER BY batch.position
    RETURNING id
), hook AS (
    INSERT INTO webhook_deliveries (id, task_id, url, body, status, attempt_count, next_attempt_at, created_at,
                                    updated_at)
    SELECT CAST(:hook_id AS text), ended.id, CAST(:hook_url AS text), CAST(:hook_body AS jsonb), :pending, 0,
           :now, :now, :now
    FROM ended WHERE CAST(:hook_url AS text) IS NOT NULL
)
SELECT events.id, others.busy, (SELECT count(*) FROM ended) AS held,
       (SELECT count(pg_notify(:channel, ended.id)) FROM ended) AS notified
FROM others LEFT JOIN events ON true
ORDER BY events.id
""")


@dataclass(frozen=True, slots=True)
class RunEnd:
    """What the caller announces: whether the run's end was recorded, the stored events' ids (in
    the order given) and their time, and the thread's status now. ``ended`` is False when the
    worker no longer held the task (cancelled or taken over meanwhile): then nothing was written."""

    ended: bool
    event_ids: list[int]
    created_at: datetime
    thread_status: ThreadStatus | None


async def end_run(
    paths: WritePaths,
    *,
    task_id: str,
    thread_id: str,
    worker_id: str,
    status: TaskStatus,
    error: str | None,
    events: list[tuple[str, dict[str, Any]]],
    channel: str,
    webhook: PlannedDelivery | None = None,
    now: datetime | None = None,
) -> RunEnd:
    """End ``worker_id``'s run of ``task_id`` with ``status``, store ``events`` (type, data) for
    it, notify ``channel``, set its thread's status and queue its ``webhook`` delivery, if the
    worker still holds the task: one statement on Postgres, one transaction otherwise."""
    target = check_transition(TaskStatus.RUNNING.value, status)
    now = now or utcnow()
    engine = paths.one_statement
    if engine is None:
        return await _end_run_in_session(paths, task_id=task_id, thread_id=thread_id, worker_id=worker_id,
                                         status=target, error=error, events=events, channel=channel,
                                         webhook=webhook, now=now)
    hook = None if webhook is None else delivery_values(webhook, task_id, now)
    values = {
        "task_id": task_id, "worker_id": worker_id, "status": target.value,
        "error": None if error is None else storable_text(error), "now": now,
        "finished_at": now if target in TERMINAL_STATUSES else None,
        "running": TaskStatus.RUNNING.value, "active": list(ACTIVE_VALUES), "busy": ThreadStatus.BUSY.value,
        "thread_status": THREAD_STATUS_AFTER_RUN[target].value,
        "namespace": EVENT_LOCK_NAMESPACE,
        "types": [event_type for event_type, _ in events],
        "data": [storable_json(data) for _, data in events],
        "channel": channel,
        "hook_id": None if hook is None else hook["id"], "hook_url": None if hook is None else hook["url"],
        "hook_body": None if hook is None else storable_json(hook["body"]), "pending": DeliveryStatus.PENDING.value,
    }
    async with engine.connect() as connection:
        rows = (await connection.execute(_END_RUN, values)).all()
    if not rows[0].held:
        return RunEnd(False, [], now, None)
    busy = rows[0].busy
    return RunEnd(True, [row.id for row in rows if row.id is not None], now,
                  ThreadStatus.BUSY if busy else THREAD_STATUS_AFTER_RUN[target])


async def _end_run_in_session(
    paths: WritePaths, *, task_id: str, thread_id: str, worker_id: str, status: TaskStatus, error: str | None,
    events: list[tuple[str, dict[str, Any]]], channel: str, webhook: PlannedDelivery | None, now: datetime,
) -> RunEnd:
    """end_run through a transaction (SQLite, which has no data-modifying CTEs)."""
    async with paths.sessions.begin() as session:
        if not await LeaseRepository(session).end_run_row(task_id, worker_id, status, error=error, now=now):
            return RunEnd(False, [], now, None)
        repository = EventRepository(session)
        stored = [await repository.append(task_id, event_type, data, now=now) for event_type, data in events]
        await notify(session, channel, task_id)
        thread_status = await ThreadRepository(session).after_run(thread_id, task_id, status)
        if webhook is not None:
            await DeliveryRepository(session).plan(webhook, task_id, now=now)
    return RunEnd(True, [event.id for event in stored], now, thread_status)
