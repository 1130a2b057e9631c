"""LangGraph API runs taken as sets: the runs a bulk cancel selects, the runs of an assistant
still going, deleting a run that has ended, and the runs of a thread a thread-level stream
follows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.affected_rows import affected_rows
from storage.models import Task, TaskEvent
from storage.status import ACTIVE_VALUES

RUN_KIND = "run"


async def runs_to_cancel(session: AsyncSession, *, statuses: Sequence[str] | None = None,
                         thread_id: str | None = None, run_ids: Sequence[str] | None = None) -> list[Task]:
    """Runs in ``statuses`` (any thread), or the runs ``run_ids`` of ``thread_id`` whatever
    their status, oldest first."""
    stmt = select(Task).where(Task.kind == RUN_KIND)
    if statuses is not None:
        stmt = stmt.where(Task.status.in_(list(statuses)))
    else:
        stmt = stmt.where(Task.thread_id == thread_id, Task.id.in_(list(run_ids or ())))
    return list(await session.scalars(stmt.order_by(Task.created_at, Task.id)))


async def active_runs_of_assistant(session: AsyncSession, assistant_id: str) -> list[str]:
    """The ids of the runs made with ``assistant_id`` that are queued or running, oldest first."""
    stmt = (select(Task.id).where(Task.kind == RUN_KIND, Task.assistant_id == assistant_id,
                                  Task.status.in_(ACTIVE_VALUES))
            .order_by(Task.created_at, Task.id))
    return list(await session.scalars(stmt))


async def delete_ended_run(session: AsyncSession, thread_id: str, run_id: str) -> bool:
    """Delete the run (its events, attempts and usage cascade) unless it is queued or running;
    False when it is (or is gone). One statement, so a run that starts meanwhile is kept."""
    result = await session.execute(
        delete(Task).where(Task.id == run_id, Task.thread_id == thread_id, Task.status.not_in(ACTIVE_VALUES))
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result) == 1


async def latest_event_id(session: AsyncSession) -> int:
    """The newest event's id: a stream that starts now shows only what follows it."""
    return int(await session.scalar(select(func.max(TaskEvent.id))) or 0)


async def runs_to_follow(session: AsyncSession, thread_id: str, after_id: int, seen: Sequence[str]) -> list[str]:
    """Runs of the thread not in ``seen`` that are queued or running, or have events after
    ``after_id``: in the order they were created, which on one thread is the order they run."""
    newer = exists().where(TaskEvent.task_id == Task.id, TaskEvent.id > after_id)
    stmt = (select(Task.id)
            .where(Task.thread_id == thread_id, Task.kind == RUN_KIND, or_(Task.status.in_(ACTIVE_VALUES), newer))
            .order_by(Task.created_at, Task.id))
    if seen:
        stmt = stmt.where(Task.id.not_in(list(seen)))
    return list(await session.scalars(stmt))
