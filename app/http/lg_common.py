"""Shared pieces of the LangGraph Server API controllers: 422s that name the field, and the
response shapes langgraph-sdk reads (threads, thread state, runs). The request bodies are in
lg_schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.types import StateSnapshot
from litestar import Request, Response
from litestar.exceptions import ClientException, SerializationException, ValidationException

from app.engine.api_runs import ASSISTANT_ID, RUN_STATUS, jsonable
from app.http.auth import auth_outcome
from app.http.errors import http_exception_handler, not_json_message, validation_response
from app.http.input_guard import UnsafeInput
from app.http.lg_schemas import CheckpointRef
from storage.models import Task, TaskStatus, Thread


def unprocessable(field: str, message: str) -> ValidationException:
    """A 422 naming the field: the API never ignores what a client asked for."""
    return ValidationException(detail=f"{field}: {message}", extra=[{"key": field, "message": message}],
                               status_code=422)


def validation_errors_as_422(request: Request[Any, Any, Any], exc: ClientException) -> Response[dict[str, Any]]:
    """Exception handler of the LangGraph routes. Elsewhere a body that is no JSON is a 400;
    these routes answer every validation error with 422, as langgraph-api (FastAPI) does and as
    their own refusals (``unprocessable``) do. The input guard's 400 is the same on every route
    and stays."""
    if isinstance(exc, UnsafeInput):
        return http_exception_handler(request, exc)
    if isinstance(exc.__cause__, SerializationException):
        return validation_response(request, unprocessable("body", not_json_message(exc.__cause__)), 422)
    if isinstance(exc, ValidationException) and exc.status_code == 400:
        return validation_response(request, exc, 422)
    return http_exception_handler(request, exc)


LANGGRAPH_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {ClientException: validation_errors_as_422}


def creator(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The signed-in user, for the metadata of a thread a run makes or first runs on:
    langgraph-api keeps no such key. It records and grants nothing: metadata is the client's to
    change."""
    principal = auth_outcome(request.scope).principal
    return {"user_id": principal.user_id} if principal is not None else {}


def checkpoint_id_of(checkpoint: CheckpointRef | None, field: str = "checkpoint") -> str | None:
    if checkpoint is None:
        return None
    if checkpoint.checkpoint_ns:
        raise unprocessable(f"{field}.checkpoint_ns", "this graph has no subgraphs")
    return checkpoint.checkpoint_id


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
        # langgraph-api keeps these apart; here every state change updates the thread's row.
        "state_updated_at": thread.updated_at.isoformat(),
        "metadata": thread.meta or {},
        "config": {},
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
