"""Rolling a cancelled LangGraph API run back, as langgraph-api's ``action=rollback`` does: the
run goes, and with it the checkpoints it wrote, so its thread is as it was before the run.

RunCommands.rollback cancels the run, waits for it to stop if this process drives it, and then
calls ``forget_run``. A run driven by another process stops at its next lease check, possibly
after a last checkpoint; that worker calls ``drop_if_rolled_back`` once its run has unwound, and
since the row is deleted before the checkpoints, whatever it saved late goes too.
"""

from __future__ import annotations

import logging

from psycopg import Error as PsycopgError
from sqlalchemy.exc import SQLAlchemyError

from app.graph_runtime import GraphRuntime
from storage.checkpoint_prune import delete_run_checkpoints
from storage.models import Task, ThreadStatus
from storage.tasks import TaskRepository
from storage.thread_runs import delete_ended_run
from storage.threads import ThreadRepository

log = logging.getLogger("draftloop.executor")


async def forget_run(runtime: GraphRuntime, run: Task) -> None:
    """Delete a run that has ended (its events cascade), then its checkpoints, and set its
    thread's status from the state that is left."""
    async with runtime.sessions.begin() as session:
        await delete_ended_run(session, run.thread_id, run.id)
    await delete_run_checkpoints(runtime.checkpointer, run.thread_id, run.id)
    snapshot = await runtime.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
    async with runtime.sessions.begin() as session:
        if await TaskRepository(session).active_run_ids(run.thread_id):
            status = ThreadStatus.BUSY
        else:
            status = ThreadStatus.INTERRUPTED if snapshot.interrupts else ThreadStatus.IDLE
        await ThreadRepository(session).set_status(run.thread_id, status)


async def drop_if_rolled_back(runtime: GraphRuntime, run: Task) -> None:
    """Called by the worker whose run was stopped by a cancel or a deletion, once it has
    unwound: if the row is gone, the checkpoints the run saved go as well."""
    try:
        async with runtime.sessions() as session:
            if await TaskRepository(session).status_of(run.id) is not None:
                return
        await delete_run_checkpoints(runtime.checkpointer, run.thread_id, run.id)
    except (SQLAlchemyError, PsycopgError, OSError) as exc:
        # The rollback itself deleted them already; only a late write is left behind.
        log.warning("could not delete the checkpoints of rolled-back run %s: %s", run.id, exc)
