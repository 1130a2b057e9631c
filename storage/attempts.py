"""A task's attempts (one per draft + critique) and usage (one per model call).

Both are written whole by the run's outcome (storage/outcomes.py): replaced, so that a re-run of
finalize leaves exactly one copy. Repositories flush but never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Attempt, Usage, utcnow
from storage.records import ATTEMPT_FIELDS, USAGE_FIELDS, AttemptRecord, UsageRecord, pick


async def _bulk_insert(session: AsyncSession, model: type[Attempt] | type[Usage], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` as one bulk INSERT: no ORM objects are built or tracked for rows nobody
    reads back in the transaction, which made the run outcome's flushes a profile hot spot."""
    if rows:
        await session.execute(insert(model), rows)


class AttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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

    async def replace_all(self, task_id: str, records: Iterable[UsageRecord]) -> None:
        """Make the task's usage exactly ``records``; running it twice leaves one copy.
        Untimestamped records get distinct, increasing times so listing keeps call order."""
        await self.session.execute(delete(Usage).where(Usage.task_id == task_id))
        now = utcnow()
        rows = []
        for offset, record in enumerate(records):
            values = pick(record, USAGE_FIELDS)
            values.setdefault("created_at", now + timedelta(microseconds=offset))
            rows.append({"task_id": task_id, **values})
        await _bulk_insert(self.session, Usage, rows)
