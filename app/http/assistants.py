"""LangGraph API discovery: server info and the one system assistant per graph."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.engine.api_runs import ASSISTANT_ID, GRAPH_ID
from app.graph_runtime import GraphRuntime
from app.http.errors import NotFoundError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, require_assistant, unprocessable
from app.http.lg_schemas import AssistantCount, AssistantSearch

# The system assistant exists as long as the graph does; a fixed date keeps responses stable.
_CREATED = datetime(2025, 1, 1, tzinfo=UTC).isoformat()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def assistant_dict() -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": GRAPH_ID,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "name": GRAPH_ID,
        "description": "Draftloop content pipeline: route, research, draft, critique, approve, persist.",
        "version": 1,
        "created_at": _CREATED,
        "updated_at": _CREATED,
    }


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
    async def search(self, data: JSONBody[AssistantSearch | None] = None) -> list[dict[str, Any]]:
        body = data or AssistantSearch()
        assistant = assistant_dict()
        matches = True
        if body.graph_id not in (None, GRAPH_ID):
            matches = False
        if body.name and body.name.lower() not in assistant["name"]:
            matches = False
        for key, value in (body.metadata or {}).items():
            if assistant["metadata"].get(key) != value:
                matches = False
        return [assistant] if matches and not body.offset and body.limit > 0 else []

    @get("/{assistant_id:str}", summary="One assistant")
    async def get_assistant(self, assistant_id: FromPath[str]) -> dict[str, Any]:
        require_assistant(assistant_id)
        return assistant_dict()

    @get("/{assistant_id:str}/graph", summary="The graph's nodes and edges")
    async def get_graph(
        self, assistant_id: FromPath[str], runtime: NamedDependency[GraphRuntime],
        xray: Annotated[str | None, QueryParameter(
            name="xray", pattern=XRAY_PATTERN,
            description=f"true, false or how many subgraph levels to draw (1-{MAX_XRAY_DEPTH})")] = None
    ) -> dict[str, Any]:
        require_assistant(assistant_id)
        return runtime.graph.get_graph(xray=_xray(xray)).to_json()

    @get("/{assistant_id:str}/schemas", summary="Input, output, state and context JSON schemas")
    async def get_schemas(self, assistant_id: FromPath[str], runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        require_assistant(assistant_id)
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
    async def get_subgraphs(self, assistant_id: FromPath[str], namespace: FromPath[str | None] = None) -> dict[str, Any]:
        require_assistant(assistant_id)
        if namespace is not None:
            raise NotFoundError(detail=f"no subgraph {namespace}")
        return {}

    @post("/count", status_code=200, opt={"read_only": True}, summary="Count assistants")
    async def count(self, data: JSONBody[AssistantCount | None] = None) -> Response[int]:
        return Response(1 if (data or AssistantCount()).graph_id in (None, GRAPH_ID) else 0)
