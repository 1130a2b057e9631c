"""LangGraph API runs in the run engine: stream modes, event shapes, graph arguments.

A run is a ``tasks`` row of kind 'run'. The engine drives it like a task; this module turns
its row into the graph's input, config and context, and holds the shapes of the events a
langgraph-sdk client expects (stored in ``task_events`` under the SSE event name, the payload
under ``data["payload"]``; app/engine/publishers.py writes them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.constants import TAG_HIDDEN
from langgraph.types import Command, Interrupt, Send, StreamMode
from pydantic import BaseModel

from graph.context import Dependencies, DraftloopContext
from graph.message_text import as_message
from storage.models import Task, TaskStatus

GRAPH_ID = "draftloop"
# The namespace langgraph-api derives system assistant ids from (langgraph_api.graph.NAMESPACE_GRAPH),
# so a client that computed the id for `langgraph dev` finds the same assistant here.
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
ASSISTANT_ID = str(uuid.uuid5(NAMESPACE_GRAPH, GRAPH_ID))

# API stream mode -> the LangGraph stream mode that feeds it. "messages" (langgraph-api's
# messages/metadata, /partial and /complete events) is built from LangGraph's "messages" mode,
# as "messages-tuple" is; "events" has no LangGraph mode: the driver runs astream_events for it.
API_STREAM_MODES: dict[str, StreamMode | None] = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "debug": "debug",
    "custom": "custom",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "events": None,
}
EVENTS = "events"
DEFAULT_STREAM_MODES = ["values"]
# Always streamed: "tasks" tells which node runs (errors, drain points), "updates" carries interrupts.
INTERNAL_MODES: tuple[StreamMode, ...] = ("tasks", "updates")
# Structured calls (intent JSON, query plans and gaps, judge scores) are plumbing, not chat: a
# chat UI would print them.
QUIET_MESSAGE_NODES = frozenset({"route_intent", "research", "critique"})
CONTEXT_FIELDS = frozenset({"require_approval", "quality_threshold", "max_revisions"})
# Context keys that are a new turn's request defaults: the graph reads them from input.request.
REQUEST_FIELDS = frozenset({"content_type", "platform", "tone", "audience"})
# Every run default a run's context (or an assistant) may hold; "model" selects the chat model.
DEFAULT_FIELDS = CONTEXT_FIELDS | REQUEST_FIELDS | {"model"}

RUN_STATUS: dict[TaskStatus, str] = {
    TaskStatus.QUEUED: "pending",
    TaskStatus.RUNNING: "running",
    TaskStatus.AWAITING_APPROVAL: "interrupted",
    TaskStatus.COMPLETED: "success",
    TaskStatus.FAILED: "error",
    TaskStatus.CANCELLED: "interrupted",
}

METADATA = "metadata"
END = "end"
API_ERROR = "error"


def _default(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return value.model_dump()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Interrupt):
        return {"value": value.value, "id": value.id}
    if isinstance(value, Send):
        return {"node": value.node, "arg": value.arg}
    if isinstance(value, Command):
        return {"resume": value.resume, "update": value.update, "goto": value.goto}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return repr(value)


def jsonable(value: Any) -> Any:
    """Plain JSON (dicts, lists, strings, numbers) for storage and SSE: messages become their
    LangChain dicts, interrupts {value, id}; anything unknown its repr rather than a crash."""
    return json.loads(json.dumps(value, default=_default))


def _checkpoint_of(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("checkpoint_id"):
        return None
    return {"thread_id": configurable.get("thread_id"), "checkpoint_ns": configurable.get("checkpoint_ns") or "",
            "checkpoint_id": configurable["checkpoint_id"]}


def debug_payload(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """A debug event as langgraph-api sends it: checkpoint events name their checkpoint and
    its parent as {thread_id, checkpoint_ns, checkpoint_id}."""
    event = dict(chunk)
    payload = event.get("payload")
    if event.get("type") == "checkpoint" and isinstance(payload, Mapping):
        event["payload"] = {
            **payload,
            "checkpoint": _checkpoint_of(payload.get("config")),
            "parent_checkpoint": _checkpoint_of(payload.get("parent_config")),
        }
    return event


def langgraph_modes(stream_modes: Iterable[str]) -> list[StreamMode]:
    modes = list(INTERNAL_MODES)
    for native in wanted_modes(stream_modes):
        if native not in modes:
            modes.append(native)
    return modes


def wanted_modes(stream_modes: Iterable[str]) -> list[StreamMode]:
    """The LangGraph modes whose chunks the client asked to see."""
    return [native for mode in stream_modes if (native := API_STREAM_MODES[mode]) is not None]


def wants_events(stream_modes: Iterable[str]) -> bool:
    """Whether the run must go through astream_events: a callback per runnable, and an event
    stored per callback, so only a client that asked pays for them."""
    return EVENTS in stream_modes


def visible_event(event: Mapping[str, Any]) -> bool:
    """Whether an astream_events event may reach a client: LangGraph tags its own plumbing
    (the START task, channel writers, branches) "langsmith:hidden" and keeps it out of the
    values and updates modes; their events, and their children's (tags are inherited), stay
    out too, as langgraph-api drops them."""
    return TAG_HIDDEN not in (event.get("tags") or ())


def run_context(run: Task, deps: Dependencies) -> DraftloopContext:
    """Context fields from ``context`` win over the same keys in ``config.configurable`` (how
    clients before LangGraph's context API passed them)."""
    configurable = (run.config or {}).get("configurable") or {}
    fields = {key: configurable[key] for key in CONTEXT_FIELDS if configurable.get(key) is not None}
    fields.update({key: value for key, value in (run.context or {}).items() if key in CONTEXT_FIELDS})
    return DraftloopContext(deps=deps, **fields)


def run_config(run: Task) -> RunnableConfig:
    given = dict(run.config or {})
    configurable = {**(given.pop("configurable", None) or {}), "thread_id": run.thread_id, "task_id": run.id}
    if run.checkpoint_id:
        configurable["checkpoint_id"] = run.checkpoint_id
    metadata = {**(given.pop("metadata", None) or {}), **(run.run_metadata or {}),
                "run_id": run.id, "thread_id": run.thread_id, "assistant_id": run.assistant_id, "graph_id": GRAPH_ID}
    # A client's config may carry keys of its own: passed on as LangGraph takes them.
    config: dict[str, Any] = {**given, "configurable": configurable, "metadata": metadata}
    if run.run_count <= 1:
        # The graph's root run is the API run on a first attempt, as in langgraph-api: the root
        # events of stream mode "events" carry the run's id. A retry gets a fresh one, since a
        # tracer would see a second root run under the same id.
        with contextlib.suppress(ValueError):
            config["run_id"] = uuid.UUID(run.id)
    return cast(RunnableConfig, config)


def run_input(run: Task) -> Any:
    """The graph input: a Command when the run carries one, else its input (None continues
    from the checkpoint, which is what a run on an interrupted or forked thread wants)."""
    command = run.command or {}
    if command:
        goto = command.get("goto")
        if isinstance(goto, Mapping):
            goto = Send(str(goto.get("node")), goto.get("input"))
        elif isinstance(goto, list):
            goto = [Send(str(g.get("node")), g.get("input")) if isinstance(g, Mapping) else g for g in goto]
        kwargs: dict[str, Any] = {}
        if "resume" in command:
            kwargs["resume"] = command["resume"]
        if command.get("update") is not None:
            kwargs["update"] = with_messages(command["update"])
        if goto is not None:
            kwargs["goto"] = goto
        return Command(**kwargs)
    return with_messages(with_request_defaults(run.input, run.context))


def with_request_defaults(value: Any, context: Mapping[str, Any] | None) -> Any:
    """A new turn's input (one with messages) with the context's REQUEST_FIELDS under its own
    ``request``; other inputs (None continues a thread) are left alone."""
    defaults = {key: item for key, item in (context or {}).items() if key in REQUEST_FIELDS and item is not None}
    if not defaults or not isinstance(value, Mapping) or not isinstance(value.get("messages"), list):
        return value
    given = value.get("request")
    if given is not None and not isinstance(given, Mapping):
        return value  # the graph's to refuse, as it would without defaults
    return {**value, "request": {**defaults, **(given or {})}}


def with_messages(value: Any) -> Any:
    """The input with its messages as message objects, whichever form the client sent them in
    (graph/message_text.py takes serialised message objects that older langchain_core does not);
    one it cannot read is left for the graph's reducer to refuse with its own error."""
    if not isinstance(value, Mapping) or not isinstance(value.get("messages"), list):
        return value
    messages: list[Any] = []
    for raw in value["messages"]:
        try:
            messages.append(as_message(raw))
        except (ValueError, TypeError, KeyError, NotImplementedError):
            messages.append(raw)
    return {**value, "messages": messages}
