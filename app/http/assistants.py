"""LangGraph API discovery: server info, and reading assistants (search, count, one, its graph
and schemas); app/http/assistant_routes.py changes them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.api_runs import GRAPH_ID
from app.graph_runtime import GraphRuntime
from app.http.assistant_defaults import assistant_dict, assistant_or_404, ensure_built_in, require_graph
from app.http.errors import NotFoundError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, unprocessable
from app.http.lg_schemas import AssistantCount, AssistantSearch
from app.http.threads import pagination_headers
from storage.assistants import AssistantRepository


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


# Subgraph levels to draw: this graph has none, and 99 is far past any graph's nesting.
MAX_XRAY_DEPTH = 99
# The schema states the bound too, so that clients (and the fuzzer) see it.
XRAY_PATTERN = r"^(?:|true|True|false|False|[1-9][0-9]?)$"


def _xray(raw: str | None) -> bool | int:
    if raw in (None, "", "false", "False"):
        return False
    if raw in ("true", "True"):
        return True
    depth = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 2 else 0
    if not 1 <= depth <= MAX_XRAY_DEPTH:
        raise unprocessable("xray", f"must be true, false or a depth from 1 to {MAX_XRAY_DEPTH}")
    return depth


class InfoController(Controller):
    path = "/"
    tags = ["langgraph api"]

    @get("/info", opt={"public": True}, summary="Server information (LangGraph API)")
    async def info(self) -> dict[str, Any]:
        return {
            "version": _version("draftloop"),
            "langgraph_py_version": _version("langgraph"),
            # langgraph-api's flags, each as it holds here, plus auth_required: langgraph-api has no
            # flag for it, and a chat UI should ask for a key before the first message, not after a 401.
            "flags": {"assistants": True, "crons": True, "langsmith": False, "langsmith_tracing_replicas": False,
                      "langsmith_tracing_session_on_runs": False, "auth_required": True},
            "host": {"kind": "draftloop", "project_id": None, "host_revision_id": None, "revision_id": None,
                     "tenant_id": None},
            # How to authenticate: an API key as the SDKs send it (api_key=, LANGGRAPH_API_KEY), or a
            # bearer token from the password login.
            "auth": {"required": True, "schemes": ["api_key", "bearer"], "api_key_header": "X-Api-Key",
                     "token_url": "/api/auth/token"},
        }

    @get("/ok", opt={"public": True}, summary="Liveness in LangGraph API terms")
    async def ok(self) -> dict[str, bool]:
        return {"ok": True}


class AssistantController(Controller):
    path = "/assistants"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/search", status_code=200, opt={"read_only": True}, summary="Search assistants (JSON body, text/plain accepted)")
    async def search(self, sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                     data: JSONBody[AssistantSearch | None] = None) -> Response[list[dict[str, Any]]]:
        body = data or AssistantSearch()
        require_graph(body.graph_id)
        await ensure_built_in(sessions)
        offset = body.offset or 0
        if body.limit == 0:
            return Response([])
        async with sessions() as session:
            # One row past the page says whether another follows, without counting them all.
            found = await AssistantRepository(session).search(
                graph_id=body.graph_id, name=body.name, metadata=body.metadata, sort_by=body.sort_by or "created_at",
                descending=body.sort_order != "asc", limit=body.limit + 1, offset=offset)
        page = [assistant_dict(assistant) for assistant in found[:body.limit]]
        if body.select:
            page = [{key: item[key] for key in body.select} for item in page]
        return Response(page, headers=pagination_headers(offset, len(page), len(found) > body.limit))

    @get("/{assistant_id:str}/graph", summary="The graph's nodes and edges")
    async def get_graph(
        self, assistant_id: FromPath[str], runtime: NamedDependency[GraphRuntime],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        xray: Annotated[str | None, QueryParameter(
            name="xray", pattern=XRAY_PATTERN,
            description=f"true, false or how many subgraph levels to draw (1-{MAX_XRAY_DEPTH})")] = None
    ) -> dict[str, Any]:
        await assistant_or_404(sessions, assistant_id)
        return runtime.graph.get_graph(xray=_xray(xray)).to_json()

    @get("/{assistant_id:str}/schemas", summary="Input, output, state and context JSON schemas")
    async def get_schemas(self, assistant_id: FromPath[str], runtime: NamedDependency[GraphRuntime],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        await assistant_or_404(sessions, assistant_id)
        graph = runtime.graph
        return {
            "graph_id": GRAPH_ID,
            "input_schema": graph.get_input_jsonschema(),
            "output_schema": graph.get_output_jsonschema(),
            # The graph has no separate output schema: its output is the whole state.
            "state_schema": graph.get_output_jsonschema(),
            # Nothing is read from config.configurable but the context fields (older clients).
            "config_schema": None,
            "context_schema": graph.get_context_jsonschema(),
        }

    @get(["/{assistant_id:str}/subgraphs", "/{assistant_id:str}/subgraphs/{namespace:str}"],
         summary="Subgraph schemas (this graph has none)")
    async def get_subgraphs(self, assistant_id: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            namespace: FromPath[str | None] = None) -> dict[str, Any]:
        await assistant_or_404(sessions, assistant_id)
        if namespace is not None:
            raise NotFoundError(detail=f"no subgraph {namespace}")
        return {}

    @post("/count", status_code=200, opt={"read_only": True}, summary="Count assistants")
    async def count(self, sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                    data: JSONBody[AssistantCount | None] = None) -> Response[int]:
        body = data or AssistantCount()
        require_graph(body.graph_id)
        await ensure_built_in(sessions)
        async with sessions() as session:
            return Response(await AssistantRepository(session).count(graph_id=body.graph_id, name=body.name,
                                                                      metadata=body.metadata))
