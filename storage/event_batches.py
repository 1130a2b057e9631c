"""A batch of progress events written in one statement on Postgres (app/events.py's writer).

As a transaction the batch took five round trips: BEGIN, the per-task ordering locks, the
multi-row insert, the notifications, COMMIT, and the writer of each worker process runs one
such batch after another all through a run. On a connection in autocommit mode the same steps
are one statement, atomic on its own: the locks are taken before any id is drawn and held until
it commits, as EventRepository.append_many does, and the notifications go out when it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import utcnow
from storage.repositories import EVENT_LOCK_NAMESPACE
from storage.storable import storable_json

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


async def append_event_batch(engine: AsyncEngine, events: Sequence[tuple[str, str, dict[str, Any]]],
                             *, channel: str) -> None:
    """Store (task id, type, data) events in order and notify ``channel`` once per task.
    ``engine`` must be in autocommit mode (storage.engine.create_autocommit_engine)."""
    if not events:
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
