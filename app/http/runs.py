"""LangGraph API runs: background, streamed (SSE) and waited-for runs on durable threads.

Every run is queued in the database and driven by the run engine like a task; a streaming
request just follows the run's stored events, so a client that drops can join again with
Last-Event-ID (the Location header says where) and the run goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import END, GRAPH_ID, RUN_STATUS, jsonable
from app.engine.assistant_context import defaults_of, webhook_of
from app.engine.commands import RunCommands, ThreadBusy
from app.engine.events import STATUS, EventBus
from app.engine.run_settings import RunSettings
from app.engine.webhooks import run_webhook_url
from app.graph_runtime import GraphRuntime
from app.http.assistant_defaults import assistant_or_404, with_defaults
from app.http.auth import auth_outcome
from app.http.errors import ConflictError, NotFoundError
from app.http.lg_common import (
    LANGGRAPH_EXCEPTION_HANDLERS,
    creator,
    interrupt_dict,
    run_dict,
    unprocessable,
)
from app.http.lg_schemas import MAX_ID_LENGTH, MAX_OFFSET, RunCreate
from app.http.run_requests import check_request_length, check_resume, parse_run, run_request
from app.http.sse import LastEventIdHeader, resume_after, sse_comment, sse_event, sse_response
from app.http.threads import thread_config, thread_or_404
from app.http.webhook_checks import check_run_webhook
from app.service_settings import ServiceSettings
from storage.models import Assistant, Task, TaskStatus
from storage.tasks import TaskNotFound, TaskRepository
from storage.thread_runs import delete_ended_run
from storage.threads import ThreadRepository

log = logging.getLogger("draftloop.http.runs")

# langgraph-api's: interrupt stops the run and keeps what it wrote, rollback deletes both.
CANCEL_ACTIONS = ("interrupt", "rollback")
# Keeps cancel-on-disconnect tasks alive until they finish (the event loop holds weak refs).
_background: set[asyncio.Task[Any]] = set()


def new_thread_metadata(request: Request[Any, Any, Any], body: RunCreate, assistant_id: str,
                        **extra: Any) -> dict[str, Any]:
    """A thread a run makes (if_not_exists="create", or a stateless run's temporary thread)
    starts with the run's metadata, as langgraph-api's does."""
    given = {**((body.config and body.config.metadata) or {}), **(body.metadata or {})}
    return {**creator(request), "graph_id": GRAPH_ID, "assistant_id": assistant_id, **given, **extra}


async def check_stateless(body: RunCreate, sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime,
                          run_settings: RunSettings) -> Assistant:
    """Everything that can refuse a stateless run, checked before its temporary thread exists
    (so a bad request leaves none behind); the assistant it runs."""
    checked = parse_run(body, set(runtime.graph.nodes), stateless=True)
    assistant = await assistant_or_404(sessions, body.assistant_id)
    with_defaults(defaults_of(assistant), checked["config"].get("configurable"), checked["context"])
    await check_request_length(run_settings, body.input)
    await check_run_webhook(run_settings.env.service.webhooks, body.webhook, webhook_of(assistant))
    return assistant


async def start_stateless(request: Request[Any, Any, Any], body: RunCreate, sessions: async_sessionmaker[AsyncSession],
                          commands: RunCommands, run_settings: RunSettings, runtime: GraphRuntime) -> tuple[str, Task]:
    """A stateless run on a new temporary thread, once check_stateless passed: the thread's id
    and the run."""
    assistant = await check_stateless(body, sessions, runtime, run_settings)
    thread_id = await temporary_thread(sessions, new_thread_metadata(request, body, assistant.assistant_id,
                                                                     temporary=True))
    return thread_id, await start_run(request, thread_id, body, sessions, commands, run_settings, runtime,
                                      stateless=True)

def run_links(run: Task, stateless: bool = False) -> dict[str, str]:
    base = f"/threads/{run.thread_id}/runs/{run.id}"
    return {"Content-Location": f"/runs/{run.id}" if stateless else base}


async def start_run(
    request: Request[Any, Any, Any], thread_id: str, body: RunCreate, sessions: async_sessionmaker[AsyncSession],
    commands: RunCommands, run_settings: RunSettings, runtime: GraphRuntime, *, stateless: bool = False,
) -> Task:
    run = parse_run(body, set(runtime.graph.nodes), stateless=stateless)
    assistant = await assistant_or_404(sessions, run["assistant_id"])
    run["assistant_id"] = assistant.assistant_id
    requested = run["webhook"]
    run["webhook"] = run_webhook_url(requested, default=webhook_of(assistant))
    run["context"] = with_defaults(defaults_of(assistant), run["config"].get("configurable"), run["context"])
    principal = auth_outcome(request.scope).principal
    if principal is not None:
        # As langgraph-api does under its auth: the graph's per-user memory (graph/memory.py) is
        # the signed-in user's, whatever the client's config says.
        configurable = {**(run["config"].get("configurable") or {}), "langgraph_auth_user_id": principal.user_id}
        run["config"] = {**run["config"], "configurable": configurable}
    if run["command"] and "resume" in run["command"] and not stateless:
        await check_resume(runtime, thread_id, run["command"]["resume"])
    if not stateless:  # the stateless routes checked before making their temporary thread
        await check_request_length(run_settings, run["input"])
        await check_run_webhook(run_settings.env.service.webhooks, requested, webhook_of(assistant))
    async with sessions.begin() as session:
        threads = ThreadRepository(session)
        if await threads.get(thread_id) is None:
            if body.if_not_exists != "create":
                raise NotFoundError(detail=f"thread {thread_id} not found")
            if len(thread_id) > MAX_ID_LENGTH:
                raise unprocessable("thread_id", f"at most {MAX_ID_LENGTH} characters")
            await threads.create(thread_id, new_thread_metadata(request, body, run["assistant_id"]))
        else:
            # As langgraph-api: a run stamps its thread with the graph and assistant it ran, so
            # a chat UI's thread list (threads.search by graph_id) finds threads made bare.
            await threads.merge_metadata(thread_id, {"graph_id": GRAPH_ID, "assistant_id": run["assistant_id"]},
                                         if_absent=creator(request))
    try:
        created = await commands.enqueue_run(thread_id, run, reject_if_busy=run["multitask_strategy"] == "reject")
    except ThreadBusy as exc:
        raise ConflictError(detail=str(exc)) from exc
    audit_change(request, resource_id=created.id,
                 after={"thread_id": thread_id, "assistant_id": created.assistant_id, "status": created.status})
    return created


def check_cancel_action(action: str) -> None:
    if action not in CANCEL_ACTIONS:
        raise unprocessable("action", f"{action!r} is not an action; use {' or '.join(CANCEL_ACTIONS)}")


async def run_or_404(sessions: async_sessionmaker[AsyncSession], thread_id: str, run_id: str) -> Task:
    async with sessions() as session:
        run = await TaskRepository(session).get(run_id)
    if run is None or run.thread_id != thread_id:
        raise NotFoundError(detail=f"run {run_id} not found on thread {thread_id}")
    return run


def _stream(run: Task, bus: EventBus, settings: ServiceSettings, commands: RunCommands, *, after: int = 0,
            cancel_on_disconnect: bool = False, cleanup: Any = None) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        ended = False
        try:
            async for event in bus.follow(run.id, after_id=after, heartbeat=settings.sse_heartbeat_seconds,
                                          until=lambda e: e.type == END):
                if event is None:
                    yield sse_comment()
                elif event.type != STATUS:
                    ended = event.type == END
                    yield sse_event(event.type, event.data.get("payload"), event.id)
            ended = True
        finally:
            if not ended and cancel_on_disconnect:
                # The client went away and asked for the run to go with it; the generator is
                # being closed, so the cancel runs on its own.
                task = asyncio.create_task(commands.cancel(run.id))
                _background.add(task)
                task.add_done_callback(_background.discard)
            if ended and cleanup is not None:
                await cleanup()

    return body()


async def _wait_result(run: Task, bus: EventBus, sessions: async_sessionmaker[AsyncSession],
                       runtime: GraphRuntime) -> dict[str, Any]:
    """What /wait and /join answer: the thread's values once the run ended, with its interrupts
    under __interrupt__, or {"__error__": ...} when it failed."""
    async for _ in bus.follow(run.id, heartbeat=3600, until=lambda e: e.type == END):
        pass
    async with sessions() as session:
        final = await TaskRepository(session).get(run.id)
    if final is not None and final.status == TaskStatus.FAILED.value:
        return {"__error__": {"error": "RunError", "message": final.error or "run failed"}}
    snapshot = await runtime.graph.aget_state(thread_config(run.thread_id))
    values = jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {}
    if snapshot.interrupts:
        values["__interrupt__"] = [interrupt_dict(i) for i in snapshot.interrupts]
    return values


async def delete_thread_later(thread_id: str, sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime) -> None:
    async with sessions.begin() as session:
        await ThreadRepository(session).delete(thread_id)
    await runtime.checkpointer.adelete_thread(thread_id)


class RunController(Controller):
    path = "/"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/threads/{thread_id:str}/runs", status_code=200, summary="Start a background run")
    async def create_run(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         commands: NamedDependency[RunCommands],
                         run_settings: NamedDependency[RunSettings], runtime: NamedDependency[GraphRuntime],
                         data: JSONBody[RunCreate | None] = None) -> Response[dict[str, Any]]:
        run = await start_run(request, thread_id, run_request(data), sessions, commands, run_settings, runtime)
        return Response(run_dict(run), headers=run_links(run))

    @post("/threads/{thread_id:str}/runs/stream", status_code=200, opt={"audit_action": "run.create"},
          summary="Start a run and stream it (SSE)")
    async def stream_run(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         commands: NamedDependency[RunCommands],
                         run_settings: NamedDependency[RunSettings], runtime: NamedDependency[GraphRuntime],
                         bus: NamedDependency[EventBus], settings: NamedDependency[ServiceSettings],
                         data: JSONBody[RunCreate | None] = None) -> Stream:
        body = run_request(data)
        run = await start_run(request, thread_id, body, sessions, commands, run_settings, runtime)
        headers = {**run_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"}
        return sse_response(_stream(run, bus, settings, commands, cancel_on_disconnect=body.on_disconnect == "cancel"),
                            headers)

    @post("/threads/{thread_id:str}/runs/wait", status_code=200, opt={"audit_action": "run.create"},
          summary="Start a run and wait for its values")
    async def wait_run(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]], commands: NamedDependency[RunCommands],
                       run_settings: NamedDependency[RunSettings],
                       runtime: NamedDependency[GraphRuntime], bus: NamedDependency[EventBus],
                       data: JSONBody[RunCreate | None] = None) -> Response[dict[str, Any]]:
        run = await start_run(request, thread_id, run_request(data), sessions, commands, run_settings, runtime)
        result = await _wait_result(run, bus, sessions, runtime)
        return Response(result, headers={**run_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/join"})

    @get("/threads/{thread_id:str}/runs", summary="A thread's runs, newest first")
    async def list_runs(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                        limit: int = Parameter(default=10, ge=1, le=200),
                        offset: int = Parameter(default=0, ge=0, le=MAX_OFFSET),
                        status: FromQuery[str | None] = None) -> list[dict[str, Any]]:
        await thread_or_404(sessions, thread_id)
        statuses = None
        if status is not None:
            statuses = [task_status.value for task_status, name in RUN_STATUS.items() if name == status]
            if not statuses:
                raise unprocessable("status", "must be pending, running, error, success, timeout or interrupted")
        async with sessions() as session:
            runs = await TaskRepository(session).runs_of_thread(thread_id, limit=limit, offset=offset, statuses=statuses)
        return [run_dict(run) for run in runs]

    @get("/threads/{thread_id:str}/runs/{run_id:str}", summary="One run")
    async def get_run(self, thread_id: FromPath[str], run_id: FromPath[str],
                      sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        return run_dict(await run_or_404(sessions, thread_id, run_id))

    @get("/threads/{thread_id:str}/runs/{run_id:str}/stream", summary="Join a run's stream (Last-Event-ID resumes)")
    async def join_stream(self, thread_id: FromPath[str], run_id: FromPath[str],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]], bus: NamedDependency[EventBus],
                          settings: NamedDependency[ServiceSettings], commands: NamedDependency[RunCommands],
                          cancel_on_disconnect: FromQuery[bool] = False,
                          last_event_header: LastEventIdHeader = None) -> Stream:
        run = await run_or_404(sessions, thread_id, run_id)
        return sse_response(_stream(run, bus, settings, commands, after=resume_after(last_event_header),
                                    cancel_on_disconnect=cancel_on_disconnect),
                            {**run_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"})

    @get("/threads/{thread_id:str}/runs/{run_id:str}/join", summary="Wait for a run and answer the thread's values")
    async def join_run(self, thread_id: FromPath[str], run_id: FromPath[str],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                       bus: NamedDependency[EventBus], runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        return await _wait_result(await run_or_404(sessions, thread_id, run_id), bus, sessions, runtime)

    @delete("/threads/{thread_id:str}/runs/{run_id:str}", status_code=204, summary="Delete a run that has ended")
    async def delete_run(self, request: Request[Any, Any, Any], thread_id: FromPath[str], run_id: FromPath[str],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> None:
        run = await run_or_404(sessions, thread_id, run_id)
        audit_change(request, before={"status": run.status})
        async with sessions.begin() as session:
            deleted = await delete_ended_run(session, thread_id, run_id)
        if not deleted:
            raise ConflictError(detail=f"run {run_id} is pending or running; cancel it first")

    @post("/threads/{thread_id:str}/runs/{run_id:str}/cancel", status_code=202, summary="Cancel a run")
    async def cancel_run(self, request: Request[Any, Any, Any], thread_id: FromPath[str], run_id: FromPath[str],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         commands: NamedDependency[RunCommands], bus: NamedDependency[EventBus],
                         runtime: NamedDependency[GraphRuntime], wait: FromQuery[bool] = False,
                         action: FromQuery[str] = "interrupt") -> Response[None]:
        check_cancel_action(action)
        run = await run_or_404(sessions, thread_id, run_id)
        audit_change(request, before={"status": run.status}, cancel_action=action)
        if TaskStatus(run.status).is_terminal:
            raise ConflictError(detail=f"run {run_id} already ended")
        if run.status == TaskStatus.AWAITING_APPROVAL.value:
            # An interrupted run is over already; the thread stays resumable.
            raise ConflictError(detail=f"run {run_id} is interrupted, not running")
        if action == "rollback":
            if run.kind != "run":
                raise unprocessable("action", "rollback applies to LangGraph API runs; this is a task API task")
            try:
                # Done before answering (this process's run is waited for): ``wait`` has nothing left.
                await commands.rollback(run.id)
            except TaskNotFound as exc:
                raise NotFoundError(detail=f"run {run_id} was deleted meanwhile") from exc
            return Response(None, status_code=202)
        await commands.cancel(run.id)
        if wait:
            async for _ in bus.follow(run.id, heartbeat=3600, until=lambda e: e.type == END):
                pass
        return Response(None, status_code=202)

    @post("/runs/stream", status_code=200, opt={"audit_action": "run.create"},
          summary="A stateless run, streamed, on a temporary thread")
    async def stream_stateless(self, request: Request[Any, Any, Any],
                               sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                               commands: NamedDependency[RunCommands],
                               run_settings: NamedDependency[RunSettings], runtime: NamedDependency[GraphRuntime],
                               bus: NamedDependency[EventBus], settings: NamedDependency[ServiceSettings],
                               data: JSONBody[RunCreate | None] = None) -> Stream:
        body = run_request(data)
        thread_id, run = await start_stateless(request, body, sessions, commands, run_settings, runtime)

        async def cleanup() -> None:
            if (body.on_completion or "delete") == "delete":
                await delete_thread_later(thread_id, sessions, runtime)

        headers = {**run_links(run, stateless=True), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"}
        return sse_response(_stream(run, bus, settings, commands, cleanup=cleanup,
                                    cancel_on_disconnect=body.on_disconnect == "cancel"), headers)

    @post("/runs/wait", status_code=200, opt={"audit_action": "run.create"},
          summary="A stateless run on a temporary thread; its final values")
    async def wait_stateless(self, request: Request[Any, Any, Any],
                             sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                             commands: NamedDependency[RunCommands],
                             run_settings: NamedDependency[RunSettings], runtime: NamedDependency[GraphRuntime],
                             bus: NamedDependency[EventBus],
                             data: JSONBody[RunCreate | None] = None) -> Response[dict[str, Any]]:
        body = run_request(data)
        thread_id, run = await start_stateless(request, body, sessions, commands, run_settings, runtime)
        result = await _wait_result(run, bus, sessions, runtime)
        if (body.on_completion or "delete") == "delete":
            await delete_thread_later(thread_id, sessions, runtime)
        return Response(result, headers=run_links(run, stateless=True))


async def temporary_thread(sessions: async_sessionmaker[AsyncSession], metadata: dict[str, Any]) -> str:
    async with sessions.begin() as session:
        thread = await ThreadRepository(session).create(metadata=metadata)
    return thread.thread_id
