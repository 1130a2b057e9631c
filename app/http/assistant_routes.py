"""LangGraph API assistants that clients make: create, read one, update (each update a new version), list
versions, set the latest, delete. The built-in assistant of the graph is listed with them but
stays as it is: a run by graph id always finds it."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.api_runs import ASSISTANT_ID, GRAPH_ID
from app.engine.commands import RunCommands
from app.graph_runtime import GraphRuntime
from app.http.assistant_defaults import assistant_dict, assistant_or_404, require_graph, stored_id
from app.http.errors import ConflictError, NotFoundError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, unprocessable
from app.http.lg_schemas import (
    MAX_ID_LENGTH,
    AssistantConfig,
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantVersionSearch,
    RunContext,
)
from app.http.threads import delete_thread_everywhere
from storage.assistants import AssistantRepository
from storage.models import Assistant
from storage.threads import ThreadRepository

# Threads of a deleted assistant (delete_threads) are looked up this many at a time.
THREAD_PAGE = 100


def _uuid(assistant_id: str, field: str = "assistant_id") -> str:
    """langgraph-api's assistant ids are UUIDs: another id is a 422 naming the field."""
    try:
        return str(uuid.UUID(assistant_id))
    except ValueError:
        raise unprocessable(field, "must be a UUID") from None


def _settings(config: AssistantConfig | None, context: RunContext | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(config, context) kept equal as langgraph-api keeps them: configurable is the context."""
    given = config.model_dump(exclude_unset=True) if config is not None else {}
    own = context.model_dump(exclude_unset=True) if context is not None else None
    if given.get("configurable") and own:
        raise ClientException(detail="Cannot specify both configurable and context. Prefer setting context alone.",
                              status_code=400)
    if given.get("configurable"):
        own = dict(given["configurable"])
    elif own:
        given["configurable"] = dict(own)
    return given, own


def _built_in(assistant_id: str, action: str) -> None:
    if stored_id(assistant_id) == ASSISTANT_ID:
        raise ConflictError(detail=f"the built-in assistant {GRAPH_ID} cannot be {action}; "
                                   "create an assistant of your own")


async def _locked(session: AsyncSession, assistant_id: str) -> Assistant:
    # Locked (on Postgres), so two concurrent updates do not both take the same next version.
    assistant = await AssistantRepository(session).get(assistant_id, for_update=True)
    if assistant is None:
        raise NotFoundError(detail=f"assistant {assistant_id} not found")
    return assistant


async def _delete_threads_of(sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime,
                             commands: RunCommands, assistant_id: str) -> list[str]:
    """As langgraph-api: every thread whose metadata.assistant_id names the assistant goes, each
    as DELETE /threads/{id} deletes it (active runs cancelled, runs and checkpoints with it)."""
    gone: dict[str, None] = {}
    while True:
        async with sessions() as session:
            page = await ThreadRepository(session).search(metadata={"assistant_id": assistant_id},
                                                          sort_by="thread_id", limit=THREAD_PAGE)
        # Each page is fetched after the last one's threads went; one seen again ends the loop
        # rather than spinning on it.
        fresh = [thread.thread_id for thread in page if thread.thread_id not in gone]
        if not fresh:
            return list(gone)
        for thread_id in fresh:
            await delete_thread_everywhere(sessions, runtime, commands, thread_id)
            gone[thread_id] = None


class AssistantChangeController(Controller):
    path = "/assistants"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/", status_code=200, summary="Create an assistant of the graph, with run defaults")
    async def create_assistant(self, request: Request[Any, Any, Any],
                               sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                               data: JSONBody[AssistantCreate]) -> dict[str, Any]:
        assistant_id = _uuid(data.assistant_id) if data.assistant_id is not None else str(uuid.uuid4())
        require_graph(data.graph_id)
        config, context = _settings(data.config, data.context)
        fields = {"graph_id": data.graph_id, "name": data.name or "Untitled", "description": data.description,
                  "meta": data.metadata or {}, "config": config, "context": context or {}}
        async with sessions.begin() as session:
            repository = AssistantRepository(session)
            existing = await repository.get(assistant_id)
            if existing is not None:
                audit_change(request, resource_id=assistant_id)
                if (data.if_exists or "raise") == "raise":
                    raise ConflictError(detail=f"assistant {assistant_id} already exists")
                return assistant_dict(existing)
            created = await repository.create(assistant_id, fields)
            shown = assistant_dict(created)
        audit_change(request, resource_id=assistant_id, after={"name": shown["name"], "context": shown["context"],
                                                                "metadata": shown["metadata"]})
        return shown

    @get("/{assistant_id:str}", summary="One assistant (its latest version)")
    async def get_assistant(self, assistant_id: FromPath[str],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        return assistant_dict(await assistant_or_404(sessions, assistant_id))

    @patch("/{assistant_id:str}", status_code=200, summary="Update an assistant: a new version, the latest")
    async def patch_assistant(self, request: Request[Any, Any, Any], assistant_id: FromPath[str],
                              sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                              data: JSONBody[AssistantPatch | None] = None) -> dict[str, Any]:
        body = data or AssistantPatch()
        _built_in(assistant_id, "changed")
        require_graph(body.graph_id)
        config, context = _settings(body.config, body.context)
        async with sessions.begin() as session:
            assistant = await _locked(session, assistant_id[:MAX_ID_LENGTH])
            before = assistant_dict(assistant)
            # As langgraph-api: config and context replace the old ones when given, metadata merges.
            fields = {
                "graph_id": body.graph_id or assistant.graph_id,
                "name": body.name if body.name is not None else assistant.name,
                "description": body.description if body.description is not None else assistant.description,
                "meta": {**(assistant.meta or {}), **(body.metadata or {})},
                "config": config or assistant.config or {},
                "context": context if context is not None else assistant.context or {},
            }
            shown = assistant_dict(await AssistantRepository(session).add_version(assistant, fields))
        audit_change(request, resource_id=assistant_id,
                     before={"version": before["version"], "context": before["context"]},
                     after={"version": shown["version"], "context": shown["context"]})
        return shown

    @delete("/{assistant_id:str}", status_code=204,
            summary="Delete an assistant and its versions (with delete_threads=true, its threads too)")
    async def delete_assistant(self, request: Request[Any, Any, Any], assistant_id: FromPath[str],
                               sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                               runtime: NamedDependency[GraphRuntime], commands: NamedDependency[RunCommands],
                               delete_threads: FromQuery[bool] = False) -> None:
        _built_in(assistant_id, "deleted")
        async with sessions.begin() as session:
            deleted = await AssistantRepository(session).delete(assistant_id[:MAX_ID_LENGTH])
        if not deleted:
            raise NotFoundError(detail=f"assistant {assistant_id} not found")
        threads = await _delete_threads_of(sessions, runtime, commands, assistant_id) if delete_threads else []
        audit_change(request, resource_id=assistant_id, after={"deleted_threads": threads} if delete_threads else None)

    @post("/{assistant_id:str}/versions", status_code=200, opt={"read_only": True},
          summary="An assistant's versions, newest first")
    async def list_versions(self, assistant_id: FromPath[str],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            data: JSONBody[AssistantVersionSearch | None] = None) -> list[dict[str, Any]]:
        body = data or AssistantVersionSearch()
        async with sessions() as session:
            versions = await AssistantRepository(session).versions(
                stored_id(assistant_id)[:MAX_ID_LENGTH], metadata=body.metadata, limit=body.limit, offset=body.offset)
        if not versions:
            raise NotFoundError(detail=f"assistant {assistant_id} not found")
        return [assistant_dict(version) for version in versions]

    @post("/{assistant_id:str}/latest", status_code=200, summary="Make one of an assistant's versions the latest")
    async def set_latest(self, request: Request[Any, Any, Any], assistant_id: FromPath[str],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         data: JSONBody[AssistantLatest]) -> Response[dict[str, Any]]:
        _built_in(assistant_id, "changed")
        async with sessions.begin() as session:
            assistant = await _locked(session, assistant_id[:MAX_ID_LENGTH])
            before = assistant.version
            changed = await AssistantRepository(session).set_latest(assistant, data.version)
            if changed is None:
                raise NotFoundError(detail=f"assistant {assistant_id} has no version {data.version}")
            shown = assistant_dict(changed)
        audit_change(request, resource_id=assistant_id, before={"version": before}, after={"version": data.version})
        return Response(shown)
