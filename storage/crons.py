"""Scheduled runs (crons): their rows, searches, and the claim of a due tick.

A tick is claimed by moving the cron's ``next_run_date`` on with a conditional UPDATE that
names the date the claimer saw: of several schedulers on one database exactly one matches it
(on Postgres the others wait for the row lock and then find the date moved; SQLite takes the
statement under its database write lock). The run the tick queues is written in the same
transaction, so a tick is queued once or not claimed at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.affected_rows import affected_rows
from storage.json_filter import json_filter
from storage.models import Cron, utcnow

SORT_COLUMNS: dict[str, Any] = {
    "cron_id": Cron.cron_id, "assistant_id": Cron.assistant_id, "thread_id": Cron.thread_id,
    "next_run_date": Cron.next_run_date, "end_time": Cron.end_time, "created_at": Cron.created_at,
    "updated_at": Cron.updated_at,
}
# The columns a cron update may set.
UPDATABLE = frozenset({"schedule", "timezone", "end_time", "payload", "run", "meta", "on_run_completed", "enabled",
                       "next_run_date"})


class CronRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, **columns: Any) -> Cron:
        now = utcnow()
        cron = Cron(**columns, created_at=now, updated_at=now)
        self.session.add(cron)
        await self.session.flush()
        return cron

    async def get(self, cron_id: str) -> Cron | None:
        return await self.session.get(Cron, cron_id)

    def _filtered(self, statement: Any, *, assistant_id: str | None, thread_id: str | None,
                  enabled: bool | None, metadata: Mapping[str, Any] | None) -> Any:
        if assistant_id is not None:
            statement = statement.where(Cron.assistant_id == assistant_id)
        if thread_id is not None:
            statement = statement.where(Cron.thread_id == thread_id)
        if enabled is not None:
            statement = statement.where(Cron.enabled == enabled)
        if metadata:
            statement = statement.where(json_filter(Cron.meta, metadata, self.session.get_bind().dialect.name))
        return statement

    async def search(self, *, assistant_id: str | None = None, thread_id: str | None = None,
                     enabled: bool | None = None, metadata: Mapping[str, Any] | None = None,
                     sort_by: str = "created_at", descending: bool = True, limit: int = 10,
                     offset: int = 0) -> list[Cron]:
        statement = self._filtered(select(Cron), assistant_id=assistant_id, thread_id=thread_id, enabled=enabled,
                                   metadata=metadata)
        column = SORT_COLUMNS[sort_by]
        # cron_id breaks ties the same way in both directions, so pages never overlap.
        statement = statement.order_by(column.desc() if descending else column.asc(), Cron.cron_id)
        return list(await self.session.scalars(statement.offset(offset).limit(limit)))

    async def count(self, *, assistant_id: str | None = None, thread_id: str | None = None,
                    metadata: Mapping[str, Any] | None = None) -> int:
        statement = self._filtered(select(func.count()).select_from(Cron), assistant_id=assistant_id,
                                   thread_id=thread_id, enabled=None, metadata=metadata)
        return int(await self.session.scalar(statement) or 0)

    async def update(self, cron_id: str, **values: Any) -> Cron | None:
        unknown = set(values) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        cron = await self.session.get(Cron, cron_id, with_for_update=True)
        if cron is None:
            return None
        for key, value in values.items():
            setattr(cron, key, value)
        cron.updated_at = utcnow()
        await self.session.flush()
        return cron

    async def delete(self, cron_id: str) -> bool:
        result = await self.session.execute(delete(Cron).where(Cron.cron_id == cron_id))
        return affected_rows(result) == 1

    async def delete_of_assistant(self, assistant_id: str) -> int:
        """Delete every cron that runs ``assistant_id``; how many."""
        return affected_rows(await self.session.execute(delete(Cron).where(Cron.assistant_id == assistant_id)))

    async def due(self, now: datetime, limit: int) -> list[Cron]:
        """Enabled crons whose next tick is at or before ``now``, the most overdue first."""
        statement = (select(Cron).where(Cron.enabled.is_(True), Cron.next_run_date <= now)
                     .order_by(Cron.next_run_date, Cron.cron_id).limit(limit))
        return list(await self.session.scalars(statement))

    async def claim_tick(self, cron_id: str, seen: datetime, following: datetime | None) -> bool:
        """Take the tick due at ``seen`` by moving the cron on to ``following`` (None: no tick is
        left before its end time). False when another scheduler took it first, or the cron was
        changed or deleted meanwhile."""
        result = await self.session.execute(
            update(Cron)
            .where(Cron.cron_id == cron_id, Cron.next_run_date == seen, Cron.enabled.is_(True))
            # updated_at stays: a tick is the schedule working, not a change anyone asked for.
            .values(next_run_date=following)
            .execution_options(synchronize_session=False)
        )
        return affected_rows(result) == 1
