"""Shared pieces of the LangGraph Server API controllers: lenient JSON bodies, 422s that name
the field, and the response shapes langgraph-sdk reads (threads, thread state, runs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.types import StateSnapshot
from litestar import Request
from litestar.exceptions import ValidationException

from app.http.errors import NotFoundError
from app.runs import ASSISTANT_ID, GRAPH_ID, RUN_STATUS, jsonable
from storage.models import Task, TaskStatus, Thread


def unprocessable(field: str, message: str) -> ValidationException:
    """A 422 naming the field: the API never ignores what a client asked for."""
    return ValidationException(detail=f"{field}: {message}", extra=[{"key": field, "message": message}],
                               status_code=422)


async def json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The request's JSON object whatever its Content-Type: Studio posts JSON as text/plain
    (a "simple" request that needs no CORS preflight)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise unprocessable("body", f"not valid JSON ({exc})") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise unprocessable("body", "must be a JSON object")
    return body


def reject_unknown(body: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise unprocessable(unknown[0], "not supported by this server")


def require_assistant(assistant_id: str) -> str:
    """The one system assistant, by its uuid5 id or by the bare graph id."""
    if assistant_id not in (ASSISTANT_ID, GRAPH_ID):
        raise NotFoundError(detail=f"assistant {assistant_id} not found")
    return ASSISTANT_ID


def checkpoint_of(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("checkpoint_id"):
        return None
    return {"thread_id": configurable.get("thread_id"), "checkpoint_ns": configurable.get("checkpoint_ns") or "",
            "checkpoint_id": configurable["checkpoint_id"]}


def interrupt_dict(interrupt: Any) -> dict[str, Any]:
    return {"id": getattr(interrupt, "id", None), "value": jsonable(getattr(interrupt, "value", None))}


def state_dict(snapshot: StateSnapshot) -> dict[str, Any]:
    """A StateSnapshot shaped as langgraph-api's ThreadState."""
    checkpoint = checkpoint_of(snapshot.config)
    parent = checkpoint_of(snapshot.parent_config)
    return {
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [
            {"id": task.id, "name": task.name, "path": jsonable(task.path), "error": None if task.error is None else repr(task.error),
             "interrupts": [interrupt_dict(i) for i in task.interrupts], "checkpoint": None, "state": None,
             "result": jsonable(task.result)}
            for task in snapshot.tasks
        ],
        "metadata": jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [interrupt_dict(i) for i in snapshot.interrupts],
        # Older clients read these.
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def thread_dict(thread: Thread, snapshot: StateSnapshot | None) -> dict[str, Any]:
    has_state = snapshot is not None and snapshot.metadata is not None
    interrupts: dict[str, list[dict[str, Any]]] = {}
    if has_state and snapshot is not None:
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = [interrupt_dict(i) for i in task.interrupts]
    return {
        "thread_id": thread.thread_id,
        "created_at": thread.created_at.isoformat(),
        "updated_at": thread.updated_at.isoformat(),
        "metadata": thread.meta or {},
        "status": thread.status,
        "values": jsonable(snapshot.values) if has_state and snapshot is not None else None,
        "interrupts": interrupts,
    }


def run_dict(run: Task) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id or ASSISTANT_ID,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "status": RUN_STATUS[TaskStatus(run.status)],
        "metadata": run.run_metadata or ({"task_id": run.id} if run.kind == "task" else {}),
        "multitask_strategy": run.multitask_strategy or "reject",
        "kwargs": {
            "input": run.input, "command": run.command, "stream_mode": run.stream_modes,
            "config": run.config, "context": run.context,
            "interrupt_before": run.interrupt_before, "interrupt_after": run.interrupt_after,
        },
        "cancel_reason": "cancelled" if run.status == TaskStatus.CANCELLED.value else None,
    }
