"""What a run's webhook says, and where it goes.

langgraph-api POSTs the run (its ids, status, times, metadata and kwargs) with
``run_started_at``, ``run_ended_at``, ``webhook_sent_at`` and the thread's ``values``; this server
sends the same fields plus ``task_id``, ``post_id`` (the post the run wrote, if any) and ``kind``
("run" for the LangGraph API, "task" for /api/tasks), and ``error`` when it failed. The values
are bounded (WEBHOOK_MAX_VALUES_BYTES): past the bound their largest top-level keys are left out
and named in ``values_omitted``. The body is frozen when the run ends (it goes into the outbox
with the end, storage/webhooks.py); only ``webhook_sent_at`` is added per attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.engine.api_runs import ASSISTANT_ID, RUN_STATUS, jsonable
from graph.builder import ContentGraph
from storage.models import Task, TaskStatus
from storage.webhooks import PlannedDelivery

# The X-Draftloop-Event header of a run's end.
RUN_ENDED = "run.ended"


def run_webhook_url(requested: str | None, *, default: str | None = None) -> str | None:
    """The webhook a new run calls: the one its request gave, else ``default``.

    ``default`` is the webhook of the assistant the run runs with (app/engine/assistant_context.py
    ``webhook_of``): the HTTP routes check what this answers before the run is queued
    (app/http/webhook_checks.py ``check_run_webhook``), a cron's tick takes it as it is (the
    deliverer checks every URL again before each attempt), and the run's row stores it.
    """
    return requested if requested is not None else default


@dataclass(frozen=True, slots=True)
class WebhookValues:
    """The thread's values a webhook carries, and the top-level keys left out to keep them
    within the bound."""

    values: dict[str, Any] | None = None
    omitted: list[str] = field(default_factory=list)


def _json_size(value: Any) -> int:
    # As the deliverer serialises the body (json.dumps, ASCII): characters are bytes.
    return len(json.dumps(value))


def bounded_values(values: dict[str, Any] | None, max_bytes: int) -> WebhookValues:
    """``values`` whole when their JSON takes at most ``max_bytes``; else without their largest
    top-level keys, dropped one by one until the rest fits. Whole keys rather than cut text: a
    receiver gets well-formed values it can read as they are, and fetches the rest with
    threads.get_state."""
    if values is None or _json_size(values) <= max_bytes:
        return WebhookValues(values)
    kept = dict(values)
    # Largest first, ties by name, so the same values always lose the same keys.
    for key in sorted(kept, key=lambda name: (-_json_size({name: kept[name]}), name)):
        del kept[key]
        if _json_size(kept) <= max_bytes:
            break
    return WebhookValues(kept, sorted(set(values) - set(kept)))


@dataclass(frozen=True)
class ThreadValues:
    """Reads a thread's values for its run's webhook, at most ``max_bytes`` of them."""

    graph: ContentGraph
    max_bytes: int

    async def of(self, task: Task) -> WebhookValues:
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": task.thread_id}})
        # A thread no run has written to yet (a run cancelled while queued) has no values.
        if snapshot.metadata is None or not isinstance(snapshot.values, dict):
            return WebhookValues()
        return bounded_values(jsonable(snapshot.values), self.max_bytes)


def webhook_body(task: Task, status: TaskStatus, ended_at: datetime, *, post_id: str | None,
                 values: WebhookValues | None = None, error: str | None = None,
                 error_type: str = "RunError") -> dict[str, Any]:
    """The JSON a run's webhook POSTs, but ``webhook_sent_at``."""
    ended = ended_at.isoformat()
    values = values or WebhookValues()
    body: dict[str, Any] = {
        "run_id": task.id,
        "thread_id": task.thread_id,
        # A task of /api/tasks keeps the assistant it was made with in its params.
        "assistant_id": task.assistant_id or (task.params or {}).get("assistant_id") or ASSISTANT_ID,
        "created_at": task.created_at.isoformat(),
        "updated_at": ended,
        "status": RUN_STATUS[status],
        "metadata": task.run_metadata or ({"task_id": task.id} if task.kind == "task" else {}),
        "multitask_strategy": task.multitask_strategy or "reject",
        "kwargs": {"input": task.input, "command": task.command, "stream_mode": task.stream_modes,
                   "config": task.config, "context": task.context} if task.kind == "run" else None,
        "run_started_at": None if task.started_at is None else task.started_at.isoformat(),
        "run_ended_at": ended,
        "values": values.values,
        "kind": task.kind,
        "task_id": task.id,
        # The task API's own status name (completed, failed, cancelled, awaiting_approval).
        "task_status": status.value,
        "post_id": post_id,
    }
    if values.omitted:
        body["values_omitted"] = values.omitted
    if error is not None:
        body["error"] = {"error": error_type, "message": error}
    return body


def planned_delivery(task: Task, status: TaskStatus, ended_at: datetime, *, post_id: str | None = None,
                     values: WebhookValues | None = None, error: str | None = None,
                     error_type: str = "RunError") -> PlannedDelivery | None:
    """The outbox row a run's end writes; None when the run asked for no webhook."""
    if not task.webhook:
        return None
    return PlannedDelivery(task.webhook, webhook_body(task, status, ended_at, post_id=post_id, values=values,
                                                      error=error, error_type=error_type))
