"""LangGraph API threads: durable conversations whose state lives in the checkpointer."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import jsonable, with_messages
from app.engine.commands import RunCommands
from app.graph_runtime import GraphRuntime
from app.http.errors import ConflictError, NotFoundError
from app.http.lg_common import (
    LANGGRAPH_EXCEPTION_HANDLERS,
    checkpoint_id_of,
    checkpoint_of,
    state_dict,
    thread_dict,
    unprocessable,
)
from app.http.lg_schemas import (
    MAX_HISTORY,
    MAX_ID_LENGTH,
    HistoryQuery,
    StateAtCheckpoint,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadSearch,
    ThreadUpdate,
)
from storage.json_filter import contains
from storage.models import Thread, ThreadStatus
from storage.tasks import TaskRepository
from storage.threads import ThreadRepository

# The most threads a values filter reads the state of (see _search_by_values).
MAX_VALUES_SCAN = 1000


def thread_config(thread_id: str, checkpoint_id: str | None = None, checkpoint_ns: str = "") -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable.update(checkpoint_id=checkpoint_id, checkpoint_ns=checkpoint_ns)
    return {"configurable": configurable}


async def thread_or_404(sessions: async_sessionmaker[AsyncSession], thread_id: str) -> Thread:
    async with sessions() as session:
        thread = await ThreadRepository(session).get(thread_id)
    if thread is None:
        raise NotFoundError(detail=f"thread {thread_id} not found")
    return thread


async def delete_thread_everywhere(sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime,
                                   commands: RunCommands, thread_id: str) -> bool:
    """Delete a thread, its runs (their events cascade) and its checkpoints; False when there
    was no such thread row."""
    async with sessions() as session:
        active = await TaskRepository(session).active_run_ids(thread_id)
    for run_id in active:
        # Stop them first: a run still writing checkpoints would resurrect the thread's state.
        await commands.cancel(run_id)
    async with sessions.begin() as session:
        deleted = await ThreadRepository(session).delete(thread_id)
    await runtime.checkpointer.adelete_thread(thread_id)
    return deleted


async def _search(threads: ThreadRepository, body: ThreadSearch, *, limit: int, offset: int) -> list[Thread]:
    return await threads.search(ids=body.ids, status=body.status, metadata=body.metadata,
                                sort_by=body.sort_by or "updated_at", descending=(body.sort_order or "desc") == "desc",
                                limit=limit, offset=offset)


async def _search_by_values(sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime,
                            body: ThreadSearch) -> list[tuple[Thread, StateSnapshot | None]]:
    """The page (and one more) of threads whose state holds ``body.values``. The values live in
    the checkpointer, not in the threads table: each candidate's state is read, so the other
    filters must leave at most MAX_VALUES_SCAN of them."""
    async with sessions() as session:
        candidates = await _search(ThreadRepository(session), body, limit=MAX_VALUES_SCAN + 1, offset=0)
    if len(candidates) > MAX_VALUES_SCAN:
        raise unprocessable("values", f"a values filter reads each thread's state, and more than {MAX_VALUES_SCAN} "
                                      "threads match the other filters; narrow them with metadata, status or ids")
    wanted = body.values or {}
    matched: list[tuple[Thread, StateSnapshot | None]] = []
    for thread in candidates:
        snapshot = await runtime.graph.aget_state(thread_config(thread.thread_id))
        if snapshot.metadata is not None and contains(jsonable(snapshot.values), wanted):
            matched.append((thread, snapshot))
            if len(matched) > body.offset + body.limit:
                break
    return matched[body.offset:]


def pagination_headers(offset: int, shown: int, more: bool) -> dict[str, str]:
    """langgraph-api's: with a next page, its offset and a total of at least one past it; on the
    last page, the exact total."""
    if more:
        return {"X-Pagination-Total": str(offset + shown + 1), "X-Pagination-Next": str(offset + shown)}
    return {"X-Pagination-Total": str(offset + shown)}


class ThreadController(Controller):
    path = "/threads"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/", status_code=200, summary="Create a thread")
    async def create_thread(self, request: Request[Any, Any, Any],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            data: JSONBody[ThreadCreate | None] = None) -> dict[str, Any]:
        body = data or ThreadCreate()
        metadata = dict(body.metadata or {})
        if body.graph_id:
            metadata["graph_id"] = body.graph_id
        thread_id = body.thread_id or str(uuid.uuid4())
        if_exists = body.if_exists or "raise"
        async with sessions.begin() as session:
            threads = ThreadRepository(session)
            existing = await threads.get(thread_id)
            if existing is not None:
                audit_change(request, resource_id=thread_id)
                if if_exists == "raise":
                    raise ConflictError(detail=f"thread {thread_id} already exists")
                return thread_dict(existing, None)
            thread = await threads.create(thread_id, metadata)
        audit_change(request, resource_id=thread.thread_id, after={"metadata": thread.meta})
        return thread_dict(thread, None)

    @post("/search", status_code=200, opt={"read_only": True}, summary="Search threads")
    async def search_threads(
        self, sessions: NamedDependency[async_sessionmaker[AsyncSession]], runtime: NamedDependency[GraphRuntime],
        data: JSONBody[ThreadSearch | None] = None
    ) -> Response[list[dict[str, Any]]]:
        body = data or ThreadSearch()
        # One row past the page says whether another follows, without counting them all.
        if body.values:
            found = await _search_by_values(sessions, runtime, body)
        else:
            async with sessions() as session:
                rows = await _search(ThreadRepository(session), body, limit=body.limit + 1, offset=body.offset)
            found = [(thread, None) for thread in rows]
        more = len(found) > body.limit
        page = found[:body.limit]
        wanted: set[str] | None = set(body.select or ()) or None
        reads_state = wanted is None or bool(wanted & {"values", "interrupts"})
        threads: list[dict[str, Any]] = []
        for thread, snapshot in page:
            if snapshot is None and reads_state:
                snapshot = await runtime.graph.aget_state(thread_config(thread.thread_id))
            shown = thread_dict(thread, snapshot)
            threads.append(shown if wanted is None else {k: v for k, v in shown.items() if k in wanted})
        return Response(threads, headers=pagination_headers(body.offset, len(page), more))

    @post("/count", status_code=200, opt={"read_only": True}, summary="Count threads")
    async def count_threads(
        self, sessions: NamedDependency[async_sessionmaker[AsyncSession]], runtime: NamedDependency[GraphRuntime],
        data: JSONBody[ThreadCount | None] = None
    ) -> int:
        body = data or ThreadCount()
        if body.values:
            # At most MAX_VALUES_SCAN candidates, so a page of that size holds every match.
            query = ThreadSearch(metadata=body.metadata, values=body.values, status=body.status, limit=MAX_VALUES_SCAN)
            return len(await _search_by_values(sessions, runtime, query))
        async with sessions() as session:
            return await ThreadRepository(session).count(status=body.status, metadata=body.metadata)

    @get("/{thread_id:str}", summary="A thread with its current values")
    async def get_thread(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        thread = await thread_or_404(sessions, thread_id)
        return thread_dict(thread, await runtime.graph.aget_state(thread_config(thread_id)))

    @patch("/{thread_id:str}", summary="Merge metadata into a thread")
    async def update_thread(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            runtime: NamedDependency[GraphRuntime],
                            data: JSONBody[ThreadUpdate | None] = None) -> dict[str, Any]:
        async with sessions.begin() as session:
            thread = await ThreadRepository(session).get(thread_id)
            if thread is None:
                raise NotFoundError(detail=f"thread {thread_id} not found")
            before = thread.meta or {}
            thread.meta = {**before, **((data and data.metadata) or {})}
            audit_change(request, before={"metadata": before}, after={"metadata": thread.meta})
        return thread_dict(thread, await runtime.graph.aget_state(thread_config(thread_id)))

    @delete("/{thread_id:str}", status_code=204, summary="Delete a thread, its runs and its checkpoints")
    async def delete_thread(self, request: Request[Any, Any, Any], thread_id: FromPath[str],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            runtime: NamedDependency[GraphRuntime], commands: NamedDependency[RunCommands]) -> None:
        thread = await thread_or_404(sessions, thread_id)
        audit_change(request, before={"status": thread.status, "metadata": thread.meta})
        await delete_thread_everywhere(sessions, runtime, commands, thread_id)

    @get(["/{thread_id:str}/state", "/{thread_id:str}/state/{checkpoint_id:str}"], summary="A thread's state")
    async def get_state(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                        runtime: NamedDependency[GraphRuntime], checkpoint_id: FromPath[str | None] = None,
                        subgraphs: FromQuery[bool] = False) -> dict[str, Any]:
        await thread_or_404(sessions, thread_id)
        snapshot = await runtime.graph.aget_state(thread_config(thread_id, checkpoint_id))
        if checkpoint_id and snapshot.metadata is None:
            raise NotFoundError(detail=f"checkpoint {checkpoint_id} not found")
        return state_dict(snapshot)

    @post("/{thread_id:str}/state/checkpoint", status_code=200, opt={"read_only": True}, summary="A thread's state at a checkpoint")
    async def get_state_at(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                           runtime: NamedDependency[GraphRuntime],
                           data: JSONBody[StateAtCheckpoint | None] = None) -> dict[str, Any]:
        checkpoint_id = checkpoint_id_of((data or StateAtCheckpoint()).checkpoint)
        await thread_or_404(sessions, thread_id)
        snapshot = await runtime.graph.aget_state(thread_config(thread_id, checkpoint_id))
        return state_dict(snapshot)

    @post("/{thread_id:str}/state", status_code=200, opt={"audit_action": "thread.update_state"},
          summary="Update a thread's values, or fork it (as_node __copy__)")
    async def update_state(self, thread_id: FromPath[str], request: Request[Any, Any, Any],
                           sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                           runtime: NamedDependency[GraphRuntime],
                           data: JSONBody[StateUpdate | None] = None) -> dict[str, Any]:
        body = data or StateUpdate()
        checkpoint_id = checkpoint_id_of(body.checkpoint) if body.checkpoint is not None else body.checkpoint_id
        await thread_or_404(sessions, thread_id)
        async with sessions() as session:
            if await TaskRepository(session).active_run_ids(thread_id):
                raise ConflictError(detail=f"thread {thread_id} is busy: a run is pending or running")
        as_node = body.as_node
        if as_node is not None and as_node != "__copy__" and as_node not in runtime.graph.nodes:
            raise unprocessable("as_node", f"no node {as_node!r} in the graph")
        values = with_messages(body.values)
        try:
            config = await runtime.graph.aupdate_state(thread_config(thread_id, checkpoint_id), values, as_node=as_node)
        # What the state's reducers raise for a value of the wrong shape (add_messages on a
        # number, operator.add on a list and a string; langchain_core's message conversion raises
        # NotImplementedError for an unsupported message), and LangGraph for an update it cannot place.
        except (ValueError, KeyError, TypeError, NotImplementedError, InvalidUpdateError) as exc:
            raise unprocessable("values", str(exc)) from exc
        # Which channels changed, not their content: state can hold whole drafts.
        audit_change(request, after={"as_node": as_node, "checkpoint": checkpoint_of(config),
                                     "values": sorted(values) if isinstance(values, dict) else type(values).__name__})
        async with sessions.begin() as session:
            threads = ThreadRepository(session)
            snapshot = await runtime.graph.aget_state(thread_config(thread_id))
            await threads.set_status(thread_id, ThreadStatus.INTERRUPTED if snapshot.interrupts else ThreadStatus.IDLE)
        return {"checkpoint": checkpoint_of(config)}

    @post("/{thread_id:str}/history", status_code=200, opt={"read_only": True}, summary="A thread's checkpoints, newest first")
    async def get_history(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime],
                          data: JSONBody[HistoryQuery | None] = None) -> list[dict[str, Any]]:
        body = data or HistoryQuery()
        before_id = checkpoint_id_of(body.before, "before")
        before = thread_config(thread_id, before_id) if before_id else None
        config = thread_config(thread_id, checkpoint_id_of(body.checkpoint))
        await thread_or_404(sessions, thread_id)
        states = []
        async for snapshot in runtime.graph.aget_state_history(
            config, limit=body.limit or 10, before=before, filter=body.metadata or None
        ):
            states.append(state_dict(snapshot))
        return states

    @get("/{thread_id:str}/history", summary="A thread's checkpoints, newest first (GET form; limit defaults to 1)")
    async def get_history_by_query(self, thread_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime],
                          limit: int = Parameter(default=1, ge=1, le=MAX_HISTORY),
                          before: str | None = Parameter(default=None, max_length=MAX_ID_LENGTH)) -> list[dict[str, Any]]:
        await thread_or_404(sessions, thread_id)
        before_config = thread_config(thread_id, before) if before else None
        return [state_dict(snapshot) async for snapshot in
                runtime.graph.aget_state_history(thread_config(thread_id), limit=limit, before=before_config)]
