"""LangGraph API threads: the index of them (their state lives in the checkpointer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.affected_rows import affected_rows
from storage.json_filter import json_filter
from storage.models import Cron, Task, TaskStatus, Thread, ThreadStatus, new_id, utcnow
from storage.status import ACTIVE_VALUES, THREAD_STATUS_AFTER_RUN, thread_status_after_run

# What a search sorts by; langgraph-api's state_updated_at is updated_at here (a thread's row
# changes with its state: every run and state update sets its status).
SORT_COLUMNS: dict[str, Any] = {
    "thread_id": Thread.thread_id, "status": Thread.status, "created_at": Thread.created_at,
    "updated_at": Thread.updated_at, "state_updated_at": Thread.updated_at,
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
        metadata: Mapping[str, Any] | None = None, sort_by: str = "updated_at", descending: bool = True,
        limit: int | None = None, offset: int = 0,
    ) -> list[Thread]:
        """Threads matching ids, status and metadata (containment, storage/json_filter.py), sorted,
        from ``offset``; at most ``limit`` of them when given."""
        stmt = select(Thread)
        if ids:
            stmt = stmt.where(Thread.thread_id.in_(list(ids)))
        if status is not None:
            stmt = stmt.where(Thread.status == status)
        if metadata:
            stmt = stmt.where(json_filter(Thread.meta, metadata, self.session.get_bind().dialect.name))
        column = SORT_COLUMNS[sort_by]
        # thread_id breaks ties the same way in both directions, so pages never overlap.
        stmt = stmt.order_by(column.desc() if descending else column.asc(), Thread.thread_id)
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(await self.session.scalars(stmt))

    async def count(self, *, status: str | None = None, metadata: Mapping[str, Any] | None = None) -> int:
        stmt = select(func.count()).select_from(Thread)
        if status is not None:
            stmt = stmt.where(Thread.status == status)
        if metadata:
            stmt = stmt.where(json_filter(Thread.meta, metadata, self.session.get_bind().dialect.name))
        return int(await self.session.scalar(stmt) or 0)

    async def merge_metadata(self, thread_id: str, values: Mapping[str, Any],
                             if_absent: Mapping[str, Any] | None = None) -> None:
        """Merge ``values`` into the thread's metadata, and ``if_absent`` where its keys are not
        there yet. The row is locked first (on Postgres), so a concurrent PATCH is not lost."""
        thread = await self.session.get(Thread, thread_id, with_for_update=True)
        if thread is None:
            return
        merged = {**(if_absent or {}), **(thread.meta or {}), **values}
        if merged != thread.meta:
            thread.meta = merged

    async def ids_with_metadata(self, metadata: Mapping[str, Any]) -> list[str]:
        """Every thread whose metadata holds ``metadata`` (storage/json_filter.py), oldest first."""
        dialect = self.session.get_bind().dialect.name
        return list(await self.session.scalars(
            select(Thread.thread_id).where(json_filter(Thread.meta, metadata, dialect))
            .order_by(Thread.created_at, Thread.thread_id)))

    async def delete(self, thread_id: str) -> bool:
        """The thread, every run on it (their events, attempts and usage cascade) and the crons
        scheduled on it, as langgraph-api deletes them."""
        await self.session.execute(delete(Task).where(Task.thread_id == thread_id))
        await self.session.execute(delete(Cron).where(Cron.thread_id == thread_id))
        result = await self.session.execute(delete(Thread).where(Thread.thread_id == thread_id))
        return affected_rows(result) == 1

    async def set_status(self, thread_id: str, status: ThreadStatus) -> None:
        await self.session.execute(
            update(Thread).where(Thread.thread_id == thread_id).values(status=status.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def after_run(self, thread_id: str, run_id: str, run_status: TaskStatus) -> ThreadStatus:
        """Set and return the thread's status once ``run_id`` reached ``run_status``: still busy
        while other runs of it wait or run."""
        # A run that leaves its thread busy anyway needs no look at the others.
        others = THREAD_STATUS_AFTER_RUN[run_status] != ThreadStatus.BUSY and await self._other_runs_active(
            thread_id, run_id)
        status = thread_status_after_run(run_status, others)
        await self.set_status(thread_id, status)
        return status

    async def _other_runs_active(self, thread_id: str, run_id: str) -> bool:
        """Whether a run of the thread other than ``run_id`` is queued or running."""
        other = await self.session.scalar(
            select(Task.id).where(Task.thread_id == thread_id, Task.id != run_id, Task.status.in_(ACTIVE_VALUES)).limit(1)
        )
        return other is not None
