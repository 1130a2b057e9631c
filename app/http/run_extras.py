"""LangGraph API run routes beyond one thread's run: background stateless runs (one or a batch)
and cancelling many runs at once. (Deleting a run is in runs.py: one path's handlers share a
controller.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import END
from app.engine.commands import RunCommands
from app.engine.events import EventBus
from app.engine.run_settings import RunSettings
from app.graph_runtime import GraphRuntime
from app.http.errors import NotFoundError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, run_dict, unprocessable
from app.http.lg_schemas import BatchRunCreate, RunCreate, RunsCancel
from app.http.run_requests import run_request
from app.http.runs import check_cancel_action, check_stateless, delete_thread_later, run_links, start_stateless
from storage.models import Task, TaskStatus
from storage.tasks import TaskNotFound, TaskRepository
from storage.thread_runs import runs_to_cancel

log = logging.getLogger("draftloop.http.run_extras")

# At most this many runs in one /runs/batch request: each makes a thread and a queued run.
MAX_BATCH = 100
CANCEL_STATUSES: dict[str, tuple[str, ...]] = {
    "pending": (TaskStatus.QUEUED.value,),
    "running": (TaskStatus.RUNNING.value,),
    "all": (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value),
}
# Keeps the tasks that delete a finished stateless run's thread alive (the loop holds weak refs).
_cleanups: set[asyncio.Task[Any]] = set()


async def _delete_when_ended(run: Task, bus: EventBus, sessions: async_sessionmaker[AsyncSession],
                             runtime: GraphRuntime) -> None:
    async for _ in bus.follow(run.id, heartbeat=3600, until=lambda e: e.type == END):
        pass
    async with sessions() as session:
        status = await TaskRepository(session).status_of(run.id)
    # The follow also ends when the server shuts down: a run still going keeps its thread.
    if status is not None and (status.is_terminal or status == TaskStatus.AWAITING_APPROVAL):
        await delete_thread_later(run.thread_id, sessions, runtime)


async def _start_stateless(request: Request[Any, Any, Any], body: RunCreate, sessions: async_sessionmaker[AsyncSession],
                           commands: RunCommands, run_settings: RunSettings, runtime: GraphRuntime,
                           bus: EventBus) -> Task:
    """A background run on a new temporary thread; with on_completion "delete" (the default),
    the thread goes once the run has ended. That clean-up lives in this process: a thread whose
    run outlives a restart stays."""
    _thread_id, run = await start_stateless(request, body, sessions, commands, run_settings, runtime)
    if (body.on_completion or "delete") == "delete":
        task = asyncio.create_task(_delete_when_ended(run, bus, sessions, runtime))
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)
    return run


class RunExtrasController(Controller):
    path = "/"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/runs", status_code=200, summary="A background stateless run on a temporary thread")
    async def create_stateless(self, request: Request[Any, Any, Any],
                               sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                               commands: NamedDependency[RunCommands], run_settings: NamedDependency[RunSettings],
                               runtime: NamedDependency[GraphRuntime], bus: NamedDependency[EventBus],
                               data: JSONBody[RunCreate | None] = None) -> Response[dict[str, Any]]:
        body = run_request(data)
        run = await _start_stateless(request, body, sessions, commands, run_settings, runtime, bus)
        return Response(run_dict(run), headers=run_links(run, stateless=True))

    @post("/runs/batch", status_code=200, opt={"audit_action": "run.create_batch"},
          summary="Several background stateless runs")
    async def create_batch(self, request: Request[Any, Any, Any],
                           sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                           commands: NamedDependency[RunCommands], run_settings: NamedDependency[RunSettings],
                           runtime: NamedDependency[GraphRuntime], bus: NamedDependency[EventBus],
                           data: JSONBody[list[BatchRunCreate] | None] = None) -> list[dict[str, Any]]:
        bodies = data or []
        if not bodies:
            raise unprocessable("body", "a list of at least one run")
        if len(bodies) > MAX_BATCH:
            raise unprocessable("body", f"at most {MAX_BATCH} runs")
        # Every run is checked before the first starts: a batch with a bad run starts none.
        for body in bodies:
            await check_stateless(body, sessions, runtime, run_settings)
        runs = [await _start_stateless(request, body, sessions, commands, run_settings, runtime, bus)
                for body in bodies]
        audit_change(request, after={"run_ids": [run.id for run in runs]})
        return [run_dict(run) for run in runs]

    @post("/runs/cancel", status_code=204, opt={"audit_action": "run.cancel_many"},
          summary="Cancel a thread's runs by id, or every run that is pending and/or running")
    async def cancel_many(self, request: Request[Any, Any, Any],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          commands: NamedDependency[RunCommands], action: FromQuery[str] = "interrupt",
                          data: JSONBody[RunsCancel | None] = None) -> None:
        body = data or RunsCancel()
        check_cancel_action(action)
        if body.status is not None:
            if body.thread_id is not None or body.run_ids is not None:
                raise unprocessable("status", "cancels every run in that status: send it without thread_id and run_ids")
            async with sessions() as session:
                runs = await runs_to_cancel(session, statuses=CANCEL_STATUSES[body.status])
        else:
            if body.thread_id is None or body.run_ids is None:
                raise unprocessable("thread_id", "send a status, or both thread_id and run_ids")
            async with sessions() as session:
                runs = await runs_to_cancel(session, thread_id=body.thread_id, run_ids=body.run_ids)
        if not runs:
            raise NotFoundError(detail="no runs found to cancel")
        cancelled = []
        for run in runs:
            # As langgraph-api: runs named that already ended are left as they are.
            if TaskStatus(run.status).is_terminal or run.status == TaskStatus.AWAITING_APPROVAL.value:
                continue
            try:
                if await (commands.rollback(run.id) if action == "rollback" else commands.cancel(run.id)):
                    cancelled.append(run.id)
            except TaskNotFound:
                log.info("run %s was deleted while being cancelled", run.id)
        audit_change(request, after={"cancelled": cancelled, "action": action})
