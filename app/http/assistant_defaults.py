"""Assistants as the API shows them, found by id or graph id, and the run defaults they hold.

An assistant's ``context`` (or ``config.configurable``, kept equal to it as langgraph-api keeps
them) holds defaults for the runs made with it: a run's own context and configurable win over
them, and REQUEST_FIELDS are a new turn's request defaults (app/engine/api_runs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.api_runs import ASSISTANT_ID, GRAPH_ID
from app.engine.assistant_context import merged_context, own_defaults
from app.http.errors import NotFoundError
from app.http.lg_common import unprocessable
from app.http.lg_schemas import RunContext
from storage.assistants import AssistantRepository
from storage.models import Assistant, AssistantVersion

# The built-in assistant, as migration 0013 stores it; a fixed date keeps responses stable.
BUILT_IN_CREATED = datetime(2025, 1, 1, tzinfo=UTC)
BUILT_IN: dict[str, Any] = {
    "graph_id": GRAPH_ID, "name": GRAPH_ID, "meta": {"created_by": "system"}, "config": {}, "context": {},
    "description": "Draftloop content pipeline: route, research, draft, critique, approve, persist.",
}


def assistant_dict(assistant: Assistant | AssistantVersion) -> dict[str, Any]:
    """langgraph-api's Assistant (a version lacks updated_at, as there)."""
    shown: dict[str, Any] = {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": assistant.config or {},
        "context": assistant.context or {},
        "metadata": assistant.meta or {},
        "name": assistant.name,
        "description": assistant.description,
        "version": assistant.version,
        "created_at": assistant.created_at.isoformat(),
    }
    if isinstance(assistant, Assistant):
        shown["updated_at"] = assistant.updated_at.isoformat()
    return shown


def stored_id(assistant_id: str) -> str:
    """The graph id names the built-in assistant, as langgraph-api lets it."""
    return ASSISTANT_ID if assistant_id == GRAPH_ID else assistant_id


async def ensure_built_in(sessions: async_sessionmaker[AsyncSession]) -> Assistant:
    """The built-in assistant, made again if its row went (migration 0013 makes it): a run by
    graph id always finds it."""
    async with sessions.begin() as session:
        return await AssistantRepository(session).ensure(ASSISTANT_ID, BUILT_IN, BUILT_IN_CREATED)


async def assistant_or_404(sessions: async_sessionmaker[AsyncSession], assistant_id: str) -> Assistant:
    async with sessions() as session:
        assistant = await AssistantRepository(session).get(stored_id(assistant_id))
    if assistant is None and stored_id(assistant_id) == ASSISTANT_ID:
        assistant = await ensure_built_in(sessions)
    if assistant is None:
        raise NotFoundError(detail=f"assistant {assistant_id} not found")
    return assistant


def require_graph(graph_id: str | None) -> None:
    """langgraph-api's 404 for a graph the server does not serve."""
    if graph_id is not None and graph_id != GRAPH_ID:
        raise NotFoundError(detail=f"graph {graph_id!r} not found; this server serves {GRAPH_ID!r}")


def with_defaults(defaults: Mapping[str, Any], configurable: Mapping[str, Any] | None,
                  context: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's context over its configurable over the assistant's defaults; 422 when together they
    contradict (a platform for an assistant's newsletter)."""
    try:
        RunContext.model_validate({**defaults, **own_defaults(configurable), **(context or {})})
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise unprocessable("context", f"with the assistant's defaults: {problem}") from None
    return merged_context(defaults, configurable, context)
