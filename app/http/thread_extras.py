"""LangGraph API thread routes beyond create/read/update/delete: copying a thread, pruning many
(deleting them, or only their older checkpoints), and the thread-level stream of its runs' events. (The GET form of history is in threads.py: one
path's handlers share a controller.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from psycopg.errors import DeadlockDetected, SerializationFailure
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import END, METADATA
from app.engine.commands import RunCommands
from app.engine.events import STATUS, EventBus
from app.graph_runtime import GraphRuntime
from app.http.errors import ConflictError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, thread_dict, unprocessable
from app.http.lg_schemas import ThreadPrune
from app.http.sse import LastEventIdHeader, resume_after, sse_comment, sse_event, sse_response
from app.http.threads import delete_thread_everywhere, thread_config, thread_or_404
from app.service_settings import ServiceSettings
from storage.checkpoint_copy import copy_thread_checkpoints
from storage.checkpoint_prune import keep_latest
from storage.models import ThreadStatus
from storage.thread_runs import latest_event_id, runs_to_follow
from storage.threads import ThreadRepository

# langgraph-api's thread stream modes; state_update events are not produced here.
THREAD_STREAM_MODES = ("run_modes", "lifecycle")


def _stream_modes(raw: list[str] | None) -> set[str]:
    """The modes asked for: repeated (the SDK) or comma-separated (langgraph-api) values."""
    modes = {mode.strip() for value in raw or () for mode in value.split(",") if mode.strip()} or {"run_modes"}
    for mode in modes:
        if mode not in THREAD_STREAM_MODES:
            raise unprocessable("stream_mode", f"{mode!r} is not supported; use {' or '.join(THREAD_STREAM_MODES)}")
    return modes


async def _thread_exists(sessions: async_sessionmaker[AsyncSession], thread_id: str) -> bool:
    async with sessions() as session:
        return await ThreadRepository(session).get(thread_id) is not None


def _thread_events(thread_id: str, after: int, modes: set[str], bus: EventBus,
                   sessions: async_sessionmaker[AsyncSession], heartbeat: float) -> AsyncIterator[bytes]:
    """Every run of the thread in turn, each followed to its end (gapless, as a run's own
    stream), then the next one as it is queued; the stream lasts until the client leaves. A
    run's end is langgraph-api's metadata event {"status": "run_done"}."""
    async def body() -> AsyncIterator[bytes]:
        seen: list[str] = []
        quiet_since = time.monotonic()
        while not bus.closed:
            async with sessions() as session:
                pending = await runs_to_follow(session, thread_id, after, seen)
            for run_id in pending:
                seen.append(run_id)
                async for event in bus.follow(run_id, after_id=after, heartbeat=heartbeat, until=lambda e: e.type == END):
                    if event is None:
                        yield sse_comment()
                    elif event.type == END:
                        yield sse_event(METADATA, {"status": "run_done", "run_id": run_id}, event.id)
                    elif event.type != STATUS and ("run_modes" in modes or event.type == METADATA):
                        yield sse_event(event.type, event.data.get("payload"), event.id)
                quiet_since = time.monotonic()
            if pending:
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                yield sse_comment()
                quiet_since = time.monotonic()
            await asyncio.sleep(min(bus.poll_seconds, heartbeat))

    return body()


class ThreadExtrasController(Controller):
    path = "/threads"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/prune", status_code=200,
          summary="Delete the threads named, or (keep_latest) all their checkpoints but the latest")
    async def prune_threads(self, request: Request[Any, Any, Any],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            runtime: NamedDependency[GraphRuntime], commands: NamedDependency[RunCommands],
                            data: JSONBody[ThreadPrune | None] = None) -> dict[str, int]:
        body = data or ThreadPrune()
        pruned = 0
        # Ids that name no thread are skipped, as langgraph-api does.
        for thread_id in dict.fromkeys(body.thread_ids):
            if body.strategy == "delete":
                if await delete_thread_everywhere(sessions, runtime, commands, thread_id):
                    pruned += 1
            elif await _thread_exists(sessions, thread_id):
                # The thread, its runs and its state stay; its history is the latest checkpoint.
                try:
                    await keep_latest(runtime.checkpointer, thread_id)
                except (SerializationFailure, DeadlockDetected) as exc:
                    # Postgres: another prune of it, or a state update, changed it meanwhile.
                    raise ConflictError(detail=f"thread {thread_id} changed while it was pruned; try again") from exc
                pruned += 1
        audit_change(request, after={"thread_ids": list(body.thread_ids), "strategy": body.strategy,
                                     "pruned_count": pruned})
        return {"pruned_count": pruned}

    @post("/{thread_id:str}/copy", status_code=200, summary="A new thread with a copy of this one's checkpoints")
    async def copy_thread(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        async with sessions() as session:
            source = await ThreadRepository(session).get(thread_id)
        if source is None:
            # langgraph-api answers a copy of a missing thread with 409, not 404.
            raise ConflictError(detail=f"thread {thread_id} not found")
        new_id = str(uuid.uuid4())
        await copy_thread_checkpoints(runtime.checkpointer, thread_id, new_id)
        snapshot = await runtime.graph.aget_state(thread_config(new_id))
        status = ThreadStatus.INTERRUPTED if snapshot.interrupts else ThreadStatus.IDLE
        async with sessions.begin() as session:
            copy = await ThreadRepository(session).create(new_id, dict(source.meta or {}), status=status)
        audit_change(request, resource_id=new_id, after={"copied_from": thread_id, "metadata": copy.meta})
        return thread_dict(copy, snapshot)

    @get("/{thread_id:str}/stream", summary="The events of a thread's runs as they happen (Last-Event-ID resumes)")
    async def join_thread_stream(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                                 bus: NamedDependency[EventBus], settings: NamedDependency[ServiceSettings],
                                 stream_mode: FromQuery[list[str] | None] = None,
                                 stream_modes: FromQuery[list[str] | None] = None,
                                 last_event_header: LastEventIdHeader = None) -> Stream:
        modes = _stream_modes([*(stream_mode or ()), *(stream_modes or ())])
        after = resume_after(last_event_header)
        await thread_or_404(sessions, thread_id)
        if not (last_event_header or "").strip():
            # Without Last-Event-ID the stream starts now, as langgraph-api's does.
            async with sessions() as session:
                after = await latest_event_id(session)
        return sse_response(_thread_events(thread_id, after, modes, bus, sessions, settings.sse_heartbeat_seconds))

