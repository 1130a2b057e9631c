"""A task's events: the append-only progress log behind SSE.

``append_events`` is the one entry point for a batch of events written outside any other
write (the event writer's batches) and picks its own path (storage/write_paths.py); events that
must commit together with a status change go through EventRepository in the caller's session.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import TaskEvent, utcnow
from storage.notifications import notify_each
from storage.storable import storable, storable_json
from storage.write_paths import WritePaths

EVENT_PAGE_SIZE = 500
# First key of the two-key advisory lock that orders one task's event inserts on Postgres (the
# migration and checkpointer locks use the one-key space, so they cannot collide with it).
EVENT_LOCK_NAMESPACE = 0x646C6576  # "dlev"


class EventRepository:
    """The append-only progress log behind SSE."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, task_id: str, event_type: str, data: dict[str, Any] | None = None, *,
                     new_task: bool = False, now: datetime | None = None) -> TaskEvent:
        """Add one event in the caller's transaction. ``new_task``: the task row is being created
        in this same transaction, so no other writer can know it yet and the lock is skipped.
        ``now``: its time, when it must match other rows of the same write.

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
        event = TaskEvent(task_id=task_id, type=event_type, data=storable(dict(data or {})),
                          created_at=now or utcnow())
        self.session.add(event)
        await self.session.flush()
        return event

    async def append_many(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
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


# -- the event writer's batches ------------------------------------------------------------------
# As a transaction a batch took five round trips: BEGIN, the per-task ordering locks, the
# multi-row insert, the notifications, COMMIT, and the writer of each worker process runs one
# such batch after another all through a run. On a connection in autocommit mode the same steps
# are one statement, atomic on its own: the locks are taken before any id is drawn and held until
# it commits, as EventRepository.append_many does, and the notifications go out when it commits.
# The join with ``locked`` makes every insert wait for all the locks (a join yields no row
# before both sides are read); ORDER BY position draws the ids in the batch's order.
_APPEND_BATCH = text("""
WITH locked AS (
    SELECT count(pg_advisory_xact_lock(:namespace, hashtext(t))) AS n
    FROM (SELECT t FROM unnest(CAST(:lock_ids AS text[])) AS t ORDER BY t) AS ordered
), inserted AS (
    INSERT INTO task_events (task_id, type, data, created_at)
    SELECT batch.task_id, batch.type, CAST(batch.data AS jsonb), :created_at
    FROM unnest(CAST(:task_ids AS text[]), CAST(:types AS text[]), CAST(:data AS text[]))
         WITH ORDINALITY AS batch(task_id, type, data, position)
    CROSS JOIN locked
    ORDER BY batch.position
    RETURNING task_id
)
SELECT count(pg_notify(:channel, notified.task_id)) FROM (SELECT DISTINCT task_id FROM inserted) AS notified
""")


async def append_events(paths: WritePaths, events: Sequence[tuple[str, str, dict[str, Any]]], *,
                        channel: str) -> None:
    """Store (task id, type, data) events in order and notify ``channel`` once per task: one
    statement on Postgres, one transaction otherwise."""
    if not events:
        return
    engine = paths.one_statement
    if engine is None:
        async with paths.sessions.begin() as session:
            await EventRepository(session).append_many(events)
            await notify_each(session, channel, list(dict.fromkeys(task_id for task_id, _, _ in events)))
        return
    values = {
        "namespace": EVENT_LOCK_NAMESPACE,
        "lock_ids": sorted({task_id for task_id, _, _ in events}),
        "task_ids": [task_id for task_id, _, _ in events],
        "types": [event_type for _, event_type, _ in events],
        # Serialised here as SQLAlchemy's JSON type would: a value json cannot encode raises
        # before anything is sent, and the writer then drops just that event. Tokens and titles
        # are model output, which may hold what jsonb refuses (storage/storable.py).
        "data": [storable_json(data) for _, _, data in events],
        "created_at": utcnow(),
        "channel": channel,
    }
    async with engine.connect() as connection:
        await connection.execute(_APPEND_BATCH, values)
