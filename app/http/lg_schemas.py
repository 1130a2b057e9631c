"""Request bodies of the LangGraph Server API routes (threads, runs, assistants).

Every field a route reads is typed here, so a value of the wrong shape is a 422 naming it before
any handler, query or graph call sees it; the fields are those langgraph-sdk (and Studio) send.
An unknown field is refused rather than ignored: the API never silently drops what a client
asked for. Checks that need the graph or the database (node names, the assistant) stay in the
handlers.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.http.task_schemas import ContentTypeName, PlatformName, ToneName
from app.settings_registry import SPECS
from tools.webhooks import MAX_URL_LENGTH as WEBHOOK_URL_LENGTH

# The widest id the threads and tasks tables store (String(255)); Postgres refuses longer.
MAX_ID_LENGTH = 255
# Bounds that keep a request's numbers inside what the queries take: a history limit becomes a
# SQL LIMIT (Postgres refuses one past bigint), thread ids become bind parameters (the drivers
# cap their count), a recursion limit becomes graph steps.
MAX_HISTORY = 1000
MAX_IDS = 1000
MAX_RECURSION = 10_000
# Pages of a search: far past any page a client shows, far below what overflows a query.
MAX_PAGE = 1000
MAX_OFFSET = 100_000
# The SQLite checkpointer splices history filter keys into a JSON path: it refuses others
# with a ValueError, and a key starting with "." is a JSON path error.
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SPECS = {spec.key: spec for spec in SPECS}
# A search filter becomes one SQL test per value on SQLite (storage/json_filter.py): bounded.
MAX_FILTER_VALUES = 50
MAX_FILTER_DEPTH = 8

Id = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
Metadata = dict[str, Any]


def _bound(key: str, end: Literal["minimum", "maximum"]) -> int | None:
    value = getattr(_SPECS[key], end)
    return None if value is None else int(value)


def _either(message: str) -> WrapValidator:
    """One error naming the field for a union, instead of one per member keyed by pydantic's
    member tags ("interrupt_before.list[str]")."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("union", message) from None

    return WrapValidator(validate)


def _listed(value: Any) -> Any:
    """The SDK sends a single stream mode as a bare string."""
    return [value] if isinstance(value, str) else value


def _checkpoint_of_id(value: Any) -> Any:
    return {"checkpoint_id": value} if isinstance(value, str) else value


def _filter_keys(metadata: Metadata | None) -> Metadata | None:
    for key in metadata or {}:
        if not _FILTER_KEY.match(key):
            raise ValueError(f"filter key {key!r} may hold only letters, digits, '_', '-' and '.', "
                             "and may not start with '.'")
    return metadata


def _search_filter(value: Metadata | None) -> Metadata | None:
    """A metadata/values filter the database can run: a bounded number of values, nested not too
    deep, keys without double quotes (SQLite's JSON paths quote keys with them)."""
    count = 0

    def walk(node: Metadata, depth: int) -> None:
        nonlocal count
        if depth > MAX_FILTER_DEPTH:
            raise ValueError(f"nested more than {MAX_FILTER_DEPTH} levels deep")
        for key, item in node.items():
            if '"' in key:
                raise ValueError(f"key {key!r} may not hold a double quote")
            count += 1
            if count > MAX_FILTER_VALUES:
                raise ValueError(f"more than {MAX_FILTER_VALUES} keys")
            if isinstance(item, dict):
                walk(item, depth + 1)

    walk(value or {}, 1)
    return value


SearchFilter = Annotated[Metadata | None, AfterValidator(_search_filter)]


class LangGraphBody(BaseModel):
    # Strict: the SDK sends JSON types; "5" for a limit or 1 for a flag is a client's mistake.
    model_config = ConfigDict(extra="forbid", strict=True)


class SendTarget(LangGraphBody):
    node: str
    input: Any = None


class CheckpointRef(BaseModel):
    """A checkpoint as the SDK sends it; its other keys (thread_id, checkpoint_map) are not read."""

    model_config = ConfigDict(extra="allow", strict=True)

    checkpoint_id: Id | None = None
    checkpoint_ns: str | None = None


# The thread routes take a bare checkpoint id too (older clients send one).
CheckpointArg = Annotated[CheckpointRef | None, BeforeValidator(_checkpoint_of_id)]
NodeNames = Annotated[Literal["*"] | list[str] | None, _either('must be "*" or a list of node names')]
Goto = Annotated[str | SendTarget | list[str | SendTarget] | None,
                 _either("must be a node name, {node, input}, or a list of them")]


class RunContext(LangGraphBody):
    """The graph's context fields (app.engine.api_runs.CONTEXT_FIELDS), bounded as their settings
    are, and the request's defaults (REQUEST_FIELDS: a new turn's input.request wins over them),
    typed as the task API types them. An assistant's defaults are checked by the same rules."""

    require_approval: bool | None = None
    quality_threshold: int | None = Field(default=None, ge=_bound("quality_threshold", "minimum"),
                                          le=_bound("quality_threshold", "maximum"))
    max_revisions: int | None = Field(default=None, ge=_bound("max_revisions", "minimum"),
                                      le=_bound("max_revisions", "maximum"))
    # The chat model, of the provider the settings select (GET /api/settings/model_provider).
    model: str | None = Field(default=None, min_length=1, max_length=_SPECS["model_name"].max_length)
    content_type: ContentTypeName | None = None
    platform: PlatformName | None = None
    tone: ToneName | None = None
    audience: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _platform_of_social_posts(self) -> RunContext:
        if self.platform and self.content_type not in (None, "social_post"):
            raise ValueError(f"platform: applies to a social_post only, not to a {self.content_type}")
        return self


class Configurable(RunContext):
    """config.configurable: any keys, but the context fields older clients pass here are
    checked as in ``context``."""

    model_config = ConfigDict(extra="allow", strict=True)


class RunConfig(LangGraphBody):
    configurable: Configurable | None = None
    tags: list[str] | None = None
    metadata: Metadata | None = None
    recursion_limit: int | None = Field(default=None, ge=1, le=MAX_RECURSION)
    run_name: str | None = None


class RunCommand(LangGraphBody):
    """Which keys were sent matters (``resume: null`` resumes with None), so the run stores
    only those."""

    resume: Any = None
    update: dict[str, Any] | None = None
    goto: Goto = None


class ThreadCreate(LangGraphBody):
    thread_id: Id | None = None
    metadata: Metadata | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    graph_id: str | None = None


ThreadField = Literal["thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config", "status",
                      "values", "interrupts"]


class ThreadSearch(LangGraphBody):
    """langgraph-api's ThreadSearchRequest but ``extract``."""

    metadata: SearchFilter = None
    values: SearchFilter = None
    ids: list[Id] | None = Field(default=None, max_length=MAX_IDS)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    # At least 1, as langgraph-api: an empty page would name itself as the next one.
    limit: int = Field(default=10, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None


class ThreadCount(LangGraphBody):
    metadata: SearchFilter = None
    values: SearchFilter = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadUpdate(LangGraphBody):
    metadata: Metadata | None = None


class StateAtCheckpoint(LangGraphBody):
    checkpoint: CheckpointArg = None
    subgraphs: bool | None = None


class StateUpdate(LangGraphBody):
    values: dict[str, Any] | None = None
    as_node: str | None = None
    checkpoint: CheckpointArg = None
    checkpoint_id: Id | None = None


class HistoryQuery(LangGraphBody):
    limit: int | None = Field(default=10, ge=1, le=MAX_HISTORY)
    before: CheckpointArg = None
    metadata: Annotated[Metadata | None, AfterValidator(_filter_keys)] = None
    checkpoint: CheckpointArg = None


AssistantField = Literal["assistant_id", "graph_id", "name", "description", "config", "context", "metadata",
                         "version", "created_at", "updated_at"]


class AssistantSearch(LangGraphBody):
    graph_id: str | None = None
    metadata: SearchFilter = None
    name: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    limit: int = Field(default=10, ge=0, le=MAX_PAGE)
    offset: int | None = Field(default=None, ge=0, le=MAX_OFFSET)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None


class AssistantCount(LangGraphBody):
    graph_id: str | None = None
    metadata: SearchFilter = None
    name: str | None = Field(default=None, max_length=MAX_ID_LENGTH)


class AssistantContext(RunContext):
    """An assistant's context: the run defaults, and the webhook its runs call when they name
    none (app/engine/assistant_context.py says why it lives here)."""

    webhook: str | None = Field(default=None, min_length=1, max_length=WEBHOOK_URL_LENGTH)


class AssistantConfigurable(Configurable):
    webhook: str | None = Field(default=None, min_length=1, max_length=WEBHOOK_URL_LENGTH)


class AssistantConfig(LangGraphBody):
    """An assistant's config: its configurable holds run defaults, as a run's does."""

    configurable: AssistantConfigurable | None = None
    tags: list[str] | None = None
    recursion_limit: int | None = Field(default=None, ge=1, le=MAX_RECURSION)


class AssistantCreate(LangGraphBody):
    assistant_id: str | None = None
    graph_id: str
    config: AssistantConfig | None = None
    context: AssistantContext | None = None
    metadata: Metadata | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    name: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    description: str | None = Field(default=None, max_length=5000)


class AssistantPatch(LangGraphBody):
    graph_id: str | None = None
    config: AssistantConfig | None = None
    context: AssistantContext | None = None
    metadata: Metadata | None = None
    name: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    description: str | None = Field(default=None, max_length=5000)


class AssistantVersionSearch(LangGraphBody):
    metadata: SearchFilter = None
    limit: int = Field(default=10, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class AssistantLatest(LangGraphBody):
    version: int = Field(ge=1, le=2**31 - 1)


class RunCreate(LangGraphBody):
    """A run request, stateful or stateless; parse_run refuses what this server cannot honour."""

    assistant_id: str
    input: Any = None
    command: RunCommand | None = None
    # One mode or several; which ones this server serves is parse_run's to say.
    stream_mode: Annotated[list[str] | None, BeforeValidator(_listed)] = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    config: RunConfig | None = None
    context: RunContext | None = None
    metadata: Metadata | None = None
    interrupt_before: NodeNames = None
    interrupt_after: NodeNames = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: Id | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    if_not_exists: Literal["reject", "create"] | None = None
    on_disconnect: Literal["continue", "cancel"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    # POSTed, signed, when the run ends (docs/webhooks.md); its rules are checked before queueing.
    webhook: str | None = Field(default=None, min_length=1, max_length=WEBHOOK_URL_LENGTH)
    # Named so that refusing one names it: parse_run refuses any value but null (strict_resume:
    # any but false, checkpoint_during: deprecated for durability).
    feedback_keys: Any = None
    after_seconds: Any = None
    langsmith_tracer: Any = None
    checkpoint_during: Any = None
    strict_resume: Any = None


# The JS SDK's runs.createBatch sends each run as its caller wrote it, in the SDK's camelCase
# (RunsCreatePayload), adding assistant_id beside assistantId. langgraph-api ignores the names it
# does not know, so such a batch runs there, minus what the camelCase fields asked for; here
# they are read as the fields they name, so nothing the caller asked for is dropped.
JS_RUN_FIELDS = {
    "assistantId": "assistant_id", "streamMode": "stream_mode", "streamSubgraphs": "stream_subgraphs",
    "streamResumable": "stream_resumable", "interruptBefore": "interrupt_before",
    "interruptAfter": "interrupt_after", "checkpointId": "checkpoint_id", "multitaskStrategy": "multitask_strategy",
    "ifNotExists": "if_not_exists", "onDisconnect": "on_disconnect", "onCompletion": "on_completion",
    "feedbackKeys": "feedback_keys", "afterSeconds": "after_seconds", "checkpointDuring": "checkpoint_during",
    "strictResume": "strict_resume",
}


class BatchRunCreate(RunCreate):
    """One run of POST /runs/batch: RunCreate's fields, under their names or the JS SDK's."""

    @model_validator(mode="before")
    @classmethod
    def _js_sdk_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        renamed = dict(data)
        for camel, snake in JS_RUN_FIELDS.items():
            if camel not in renamed:
                continue
            value = renamed.pop(camel)
            if snake in renamed and renamed[snake] != value:
                raise ValueError(f"{snake}: sent twice with different values, also as {camel}")
            renamed[snake] = value
        return renamed


class ThreadPrune(LangGraphBody):
    thread_ids: list[Id] = Field(default_factory=list, max_length=MAX_IDS)
    strategy: Literal["delete", "keep_latest"] = "delete"


class RunsCancel(LangGraphBody):
    """Either thread_id with run_ids, or a status (every run in it, on any thread)."""

    thread_id: Id | None = None
    run_ids: list[Id] | None = Field(default=None, max_length=MAX_IDS)
    status: Literal["pending", "running", "all"] | None = None
