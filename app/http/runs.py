"""LangGraph API runs: background, streamed (SSE) and waited-for runs on durable threads.

Every run is queued in the database and driven by the run engine like a task; a streaming
request just follows the run's stored events, so a client that drops can join again with
Last-Event-ID (the Location header says where) and the run goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from langchain_core.messages import HumanMessage, convert_to_messages
from langgraph.graph import END as GRAPH_END
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import API_STREAM_MODES, DEFAULT_STREAM_MODES, END, RUN_STATUS, jsonable
from app.engine.commands import RunCommands, ThreadBusy
from app.engine.events import STATUS, EventBus
from app.engine.run_settings import RunSettings
from app.graph_runtime import GraphRuntime
from app.http.errors import ConflictError, NotFoundError
from app.http.lg_common import (
    LANGGRAPH_EXCEPTION_HANDLERS,
    checkpoint_id_of,
    interrupt_dict,
    require_assistant,
    run_dict,
    unprocessable,
)
from app.http.lg_schemas import MAX_ID_LENGTH, MAX_OFFSET, RunCreate, SendTarget
from app.http.sse import LastEventIdHeader, resume_after, sse_comment, sse_event, sse_response
from app.http.threads import thread_config, thread_or_404
from app.service_settings import ServiceSettings
from graph.nodes.approval import InvalidDecision, parse_decision
from graph.nodes.route_intent import message_text
from storage.models import Task, TaskStatus
from storage.tasks import TaskRepository
from storage.threads import ThreadRepository

log = logging.getLogger("draftloop.http.runs")

# Accepted by name but not implemented: any non-null value is refused.
UNSUPPORTED_FIELDS = ("webhook", "feedback_keys", "after_seconds", "langsmith_tracer")

# Keeps cancel-on-disconnect tasks alive until they finish (the event loop holds weak refs).
_background: set[asyncio.Task[Any]] = set()


def _node_names(value: str | list[str] | None, field: str, nodes: set[str]) -> list[str] | str | None:
    if value is None or value == "*":
        return value
    unknown = [v for v in value if v not in nodes]
    if unknown:
        raise unprocessable(field, f"no node {unknown[0]!r} in the graph")
    return value


def _goto_nodes(goto: str | SendTarget | list[str | SendTarget] | None) -> list[str]:
    targets = goto if isinstance(goto, list) else [] if goto is None else [goto]
    return [target.node if isinstance(target, SendTarget) else target for target in targets]


def _run_request(data: RunCreate | None) -> RunCreate:
    """The body, which an empty request lacks: like {}, it lacks the assistant first."""
    if data is None:
        raise unprocessable("assistant_id", "required")
    return data


def parse_run(body: RunCreate, nodes: set[str], *, stateless: bool = False) -> dict[str, Any]:
    """The run columns for a validated request body; a 422 naming the first field this server
    cannot honour."""
    for field in UNSUPPORTED_FIELDS:
        if getattr(body, field) is not None:
            raise unprocessable(field, "not supported by this server")
    if body.strict_resume:
        raise unprocessable("strict_resume", "not supported by this server")
    if body.checkpoint_during is not None:
        raise unprocessable("checkpoint_during", "deprecated; use durability")
    assistant_id = require_assistant(body.assistant_id)
    if body.input is not None and body.command is not None:
        raise unprocessable("command", "send either input or command, not both")
    command = None
    if body.command is not None:
        # Only the keys sent: a resume value of null is still a resume.
        command = body.command.model_dump(exclude_unset=True)
        if not command:
            raise unprocessable("command", "must be an object with resume, update and/or goto")
        unknown = [node for node in _goto_nodes(body.command.goto) if node not in nodes | {GRAPH_END}]
        if unknown:
            raise unprocessable("command.goto", f"no node {unknown[0]!r} in the graph")
    modes = body.stream_mode or DEFAULT_STREAM_MODES
    for mode in modes:
        if mode not in API_STREAM_MODES:
            raise unprocessable("stream_mode", f"{mode!r} is not supported; use {', '.join(API_STREAM_MODES)}")
    strategy = body.multitask_strategy or "enqueue"
    if strategy not in ("reject", "enqueue"):
        raise unprocessable("multitask_strategy", f"{strategy!r} is not supported; use reject or enqueue")
    if body.on_completion is not None and not stateless:
        raise unprocessable("on_completion", "only applies to stateless runs")
    return {
        "assistant_id": assistant_id,
        "input": body.input,
        "command": command,
        "stream_modes": modes,
        # As sent (configurable keeps the client's own keys); only the shapes were checked.
        "config": body.config.model_dump(exclude_unset=True) if body.config else {},
        "context": body.context.model_dump(exclude_unset=True) if body.context else {},
        "run_metadata": body.metadata or {},
        "interrupt_before": _node_names(body.interrupt_before, "interrupt_before", nodes),
        "interrupt_after": _node_names(body.interrupt_after, "interrupt_after", nodes),
        "checkpoint_id": checkpoint_id_of(body.checkpoint) or body.checkpoint_id,
        "multitask_strategy": strategy,
        "durability": body.durability,
    }


def _links(run: Task, stateless: bool = False) -> dict[str, str]:
    base = f"/threads/{run.thread_id}/runs/{run.id}"
    return {"Content-Location": f"/runs/{run.id}" if stateless else base}


async def check_resume(runtime: GraphRuntime, thread_id: str, resume: Any) -> None:
    """A resume that answers the content graph's approval must be a decision: a 422 naming the
    field, instead of a run that would only ask again."""
    snapshot = await runtime.graph.aget_state({"configurable": {"thread_id": thread_id}})
    approvals = {item.id: item for item in snapshot.interrupts
                 if isinstance(item.value, dict) and item.value.get("type") == "approval"}
    if not approvals:
        return
    # A map of interrupt ids to answers, or one answer for the interrupt that waits.
    answers = ([value for key, value in resume.items() if key in approvals]
               if isinstance(resume, dict) and resume and set(resume) <= set(approvals) else [resume])
    for answer in answers:
        try:
            parse_decision(answer)
        except InvalidDecision as exc:
            field = "command.resume" if exc.field == "resume" else f"command.resume.{exc.field}"
            raise unprocessable(field, exc.message) from exc


def human_texts(run_input: Any) -> list[tuple[str, str]]:
    """(field, text) of each human message in a run's input, in the shapes the graph accepts
    (role/content pairs, LangChain message dicts); other shapes are the graph's to refuse."""
    messages = run_input.get("messages") if isinstance(run_input, Mapping) else None
    if not isinstance(messages, list):
        return []
    found = []
    for index, raw in enumerate(messages):
        try:
            message = convert_to_messages([raw])[0]
        except (ValueError, TypeError, KeyError, NotImplementedError):
            continue
        if isinstance(message, HumanMessage):
            found.append((f"input.messages.{index}.content", message_text(message)))
    return found


async def check_request_length(run_settings: RunSettings, run_input: Any) -> None:
    """A human message longer than the model's context takes is a 422 naming it, now, instead
    of a run that fails later with the provider's error."""
    texts = human_texts(run_input)
    if not texts:
        return
    limit = await run_settings.request_limit()
    for field, text in texts:
        if problem := limit.problem(text):
            raise unprocessable(field, problem)


async def _create(
    request: Request[Any, Any, Any], thread_id: str, body: RunCreate, sessions: async_sessionmaker[AsyncSession],
    commands: RunCommands, run_settings: RunSettings, runtime: GraphRuntime, *, stateless: bool = False,
) -> Task:
    run = parse_run(body, set(runtime.graph.nodes), stateless=stateless)
    if run["command"] and "resume" in run["command"] and not stateless:
        await check_resume(runtime, thread_id, run["command"]["resume"])
    if not stateless:  # the stateless routes checked before making their temporary thread
        await check_request_length(run_settings, run["input"])
    async with sessions.begin() as session:
        threads = ThreadRepository(session)
        if await threads.get(thread_id) is None:
            if body.if_not_exists != "create":
                raise NotFoundError(detail=f"thread {thread_id} not found")
            if len(thread_id) > MAX_ID_LENGTH:
                raise unprocessable("thread_id", f"at most {MAX_ID_LENGTH} characters")
            await threads.create(thread_id, {"graph_id": "draftloop"})
    try:
        created = await commands.enqueue_run(thread_id, run, reject_if_busy=run["multitask_strategy"] == "reject")
    except ThreadBusy as exc:
        raise ConflictError(detail=str(exc)) from exc
    audit_change(request, resource_id=created.id,
                 after={"thread_id": thread_id, "assistant_id": created.assistant_id, "status": created.status})
    return created


async def _get_run(sessions: async_sessionmaker[AsyncSession], thread_id: str, run_id: str) -> Task:
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


async def _delete_thread_later(thread_id: str, sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime) -> None:
    async with sessions.begin() as session:
        await ThreadRepository(session).delete(thread_id)
    await runtime.graph.checkpointer.adelete_thread(thread_id)


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
        run = await _create(request, thread_id, _run_request(data), sessions, commands, run_settings, runtime)
        return Response(run_dict(run), headers=_links(run))

    @post("/threads/{thread_id:str}/runs/stream", status_code=200, opt={"audit_action": "run.create"},
          summary="Start a run and stream it (SSE)")
    async def stream_run(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         commands: NamedDependency[RunCommands],
                         run_settings: NamedDependency[RunSettings], runtime: NamedDependency[GraphRuntime],
                         bus: NamedDependency[EventBus], settings: NamedDependency[ServiceSettings],
                         data: JSONBody[RunCreate | None] = None) -> Stream:
        body = _run_request(data)
        run = await _create(request, thread_id, body, sessions, commands, run_settings, runtime)
        headers = {**_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"}
        return sse_response(_stream(run, bus, settings, commands, cancel_on_disconnect=body.on_disconnect == "cancel"),
                            headers)

    @post("/threads/{thread_id:str}/runs/wait", status_code=200, opt={"audit_action": "run.create"},
          summary="Start a run and wait for its values")
    async def wait_run(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]], commands: NamedDependency[RunCommands],
                       run_settings: NamedDependency[RunSettings],
                       runtime: NamedDependency[GraphRuntime], bus: NamedDependency[EventBus],
                       data: JSONBody[RunCreate | None] = None) -> Response[dict[str, Any]]:
        run = await _create(request, thread_id, _run_request(data), sessions, commands, run_settings, runtime)
        result = await _wait_result(run, bus, sessions, runtime)
        return Response(result, headers={**_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/join"})

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
        return run_dict(await _get_run(sessions, thread_id, run_id))

    @get("/threads/{thread_id:str}/runs/{run_id:str}/stream", summary="Join a run's stream (Last-Event-ID resumes)")
    async def join_stream(self, thread_id: FromPath[str], run_id: FromPath[str],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]], bus: NamedDependency[EventBus],
                          settings: NamedDependency[ServiceSettings], commands: NamedDependency[RunCommands],
                          cancel_on_disconnect: FromQuery[bool] = False,
                          last_event_header: LastEventIdHeader = None) -> Stream:
        run = await _get_run(sessions, thread_id, run_id)
        return sse_response(_stream(run, bus, settings, commands, after=resume_after(last_event_header),
                                    cancel_on_disconnect=cancel_on_disconnect),
                            {**_links(run), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"})

    @get("/threads/{thread_id:str}/runs/{run_id:str}/join", summary="Wait for a run and answer the thread's values")
    async def join_run(self, thread_id: FromPath[str], run_id: FromPath[str],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                       bus: NamedDependency[EventBus], runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        return await _wait_result(await _get_run(sessions, thread_id, run_id), bus, sessions, runtime)

    @post("/threads/{thread_id:str}/runs/{run_id:str}/cancel", status_code=202, summary="Cancel a run")
    async def cancel_run(self, request: Request[Any, Any, Any], thread_id: FromPath[str], run_id: FromPath[str],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         commands: NamedDependency[RunCommands], bus: NamedDependency[EventBus],
                         runtime: NamedDependency[GraphRuntime], wait: FromQuery[bool] = False,
                         action: FromQuery[str] = "interrupt") -> Response[None]:
        if action != "interrupt":
            raise unprocessable("action", "only interrupt is supported")
        run = await _get_run(sessions, thread_id, run_id)
        audit_change(request, before={"status": run.status})
        if TaskStatus(run.status).is_terminal:
            raise ConflictError(detail=f"run {run_id} already ended")
        if run.status == TaskStatus.AWAITING_APPROVAL.value:
            # An interrupted run is over already; the thread stays resumable.
            raise ConflictError(detail=f"run {run_id} is interrupted, not running")
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
        body = _run_request(data)
        # Refused before the temporary thread exists, so a bad request leaves none behind.
        parse_run(body, set(runtime.graph.nodes), stateless=True)
        await check_request_length(run_settings, body.input)
        thread_id = await _temporary_thread(sessions)
        run = await _create(request, thread_id, body, sessions, commands, run_settings, runtime, stateless=True)

        async def cleanup() -> None:
            if (body.on_completion or "delete") == "delete":
                await _delete_thread_later(thread_id, sessions, runtime)

        headers = {**_links(run, stateless=True), "Location": f"/threads/{thread_id}/runs/{run.id}/stream"}
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
        body = _run_request(data)
        parse_run(body, set(runtime.graph.nodes), stateless=True)
        await check_request_length(run_settings, body.input)
        thread_id = await _temporary_thread(sessions)
        run = await _create(request, thread_id, body, sessions, commands, run_settings, runtime, stateless=True)
        result = await _wait_result(run, bus, sessions, runtime)
        if (body.on_completion or "delete") == "delete":
            await _delete_thread_later(thread_id, sessions, runtime)
        return Response(result, headers=_links(run, stateless=True))


async def _temporary_thread(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions.begin() as session:
        thread = await ThreadRepository(session).create(metadata={"graph_id": "draftloop", "temporary": True})
    return thread.thread_id
