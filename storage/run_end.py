"""The end of a worker's run of a task, in one statement on Postgres (app/executor.py's _end).

Through a session it was a transaction of eight round trips: BEGIN, the conditional UPDATE of
the task, the per-task event lock, an INSERT per event, the notification, the look for other
runs of the thread, the thread's UPDATE and COMMIT; every run ends once, and under load that
was one of the workers' larger costs (bench/ANALYSIS.md). On a connection in autocommit mode
the same steps are one statement, atomic on its own, with the same rules as the session path
(TaskRepository.end_run, EventRepository.append, ThreadRepository.after_run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import TERMINAL_STATUSES, TaskStatus, ThreadStatus, utcnow
from storage.repositories import EVENT_LOCK_NAMESPACE, THREAD_STATUS_AFTER_RUN, check_transition
from storage.storable import storable_json, storable_text

# Every CTE sees the statement's one snapshot, in which the ending task is still running: the
# look for other active runs of its thread leaves it out by id. The events wait for the lock
# (the join yields no row before ``locked`` is read) and draw their ids in the order given.
_END_RUN = text("""
WITH ended AS (
    UPDATE tasks
    SET status = :status, updated_at = :now, lease_owner = NULL, lease_expires_at = NULL,
        pending_command = NULL, error = :error, finished_at = :finished_at
    WHERE id = :task_id AND status = 'running' AND lease_owner = :worker_id
    RETURNING id, thread_id
), others AS (
    SELECT EXISTS (
        SELECT 1 FROM tasks AS other JOIN ended ON other.thread_id = ended.thread_id
        WHERE other.id <> ended.id AND other.status IN ('queued', 'running')
    ) AS busy
), thread AS (
    UPDATE threads
    SET status = CASE WHEN others.busy THEN 'busy' ELSE :thread_status END, updated_at = :now
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
)
SELECT events.id, others.busy, (SELECT count(pg_notify(:channel, ended.id)) FROM ended) AS notified
FROM events CROSS JOIN others
ORDER BY events.id
""")


@dataclass(frozen=True, slots=True)
class RunEnd:
    """What the caller announces: the stored events' ids (in the order given) and their time,
    and the thread's status now. ``event_ids`` is empty when the worker no longer held the task
    (cancelled or taken over meanwhile): then nothing was written."""

    event_ids: list[int]
    created_at: datetime
    thread_status: ThreadStatus | None


async def end_run_in_one_statement(
    engine: AsyncEngine,
    *,
    task_id: str,
    worker_id: str,
    status: TaskStatus,
    error: str | None,
    events: list[tuple[str, dict[str, Any]]],
    channel: str,
) -> RunEnd:
    """End ``worker_id``'s run of ``task_id`` with ``status``, store ``events`` (type, data) for
    it and set its thread's status, if the worker still holds the task. ``engine`` must be in
    autocommit mode (storage.engine.create_autocommit_engine)."""
    target = check_transition(TaskStatus.RUNNING.value, status)
    now = utcnow()
    values = {
        "task_id": task_id, "worker_id": worker_id, "status": target.value,
        "error": None if error is None else storable_text(error), "now": now,
        "finished_at": now if target in TERMINAL_STATUSES else None,
        "thread_status": THREAD_STATUS_AFTER_RUN[target].value,
        "namespace": EVENT_LOCK_NAMESPACE,
        "types": [event_type for event_type, _ in events],
        "data": [storable_json(data) for _, data in events],
        "channel": channel,
    }
    async with engine.connect() as connection:
        rows = (await connection.execute(_END_RUN, values)).all()
    if not rows:
        return RunEnd([], now, None)
    busy = rows[0].busy
    return RunEnd([row.id for row in rows], now, ThreadStatus.BUSY if busy else THREAD_STATUS_AFTER_RUN[target])
