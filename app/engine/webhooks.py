"""What a run's webhook says, and where it goes.

langgraph-api POSTs the run (its ids, status, times, metadata and kwargs) with
``run_started_at``, ``run_ended_at`` and ``webhook_sent_at``; this server sends the same fields
plus ``task_id``, ``post_id`` (the post the run wrote, if any) and ``kind`` ("run" for the
LangGraph API, "task" for /api/tasks), and ``error`` when it failed. The thread's values are not
included: fetch them with the ids. The body is frozen when the run ends (it goes into the outbox
with the end, storage/webhooks.py); only ``webhook_sent_at`` is added per attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.engine.api_runs import ASSISTANT_ID, RUN_STATUS
from storage.models import Task, TaskStatus
from storage.webhooks import PlannedDelivery

# The X-Draftloop-Event header of a run's end.
RUN_ENDED = "run.ended"


def run_webhook_url(requested: str | None, *, default: str | None = None) -> str | None:
    """The webhook a new run calls: the one its request gave, else ``default``.

    The seam for the webhooks that do not come with the request: an assistant's default
    webhook and a cron's (issue 21's assistants and crons pass theirs as ``default``). Whatever
    it answers is checked like a requested one (app/http/webhook_checks.py) before the run is
    queued, and stored in the run's row.
    """
    return requested if requested is not None else default


def webhook_body(task: Task, status: TaskStatus, ended_at: datetime, *, post_id: str | None,
                 error: str | None = None, error_type: str = "RunError") -> dict[str, Any]:
    """The JSON a run's webhook POSTs, but ``webhook_sent_at``."""
    ended = ended_at.isoformat()
    body: dict[str, Any] = {
        "run_id": task.id,
        "thread_id": task.thread_id,
        "assistant_id": task.assistant_id or ASSISTANT_ID,
        "created_at": task.created_at.isoformat(),
        "updated_at": ended,
        "status": RUN_STATUS[status],
        "metadata": task.run_metadata or ({"task_id": task.id} if task.kind == "task" else {}),
        "multitask_strategy": task.multitask_strategy or "reject",
        "kwargs": {"input": task.input, "command": task.command, "stream_mode": task.stream_modes,
                   "config": task.config, "context": task.context} if task.kind == "run" else None,
        "run_started_at": None if task.started_at is None else task.started_at.isoformat(),
        "run_ended_at": ended,
        "kind": task.kind,
        "task_id": task.id,
        # The task API's own status name (completed, failed, cancelled, awaiting_approval).
        "task_status": status.value,
        "post_id": post_id,
    }
    if error is not None:
        body["error"] = {"error": error_type, "message": error}
    return body


def planned_delivery(task: Task, status: TaskStatus, ended_at: datetime, *, post_id: str | None = None,
                     error: str | None = None, error_type: str = "RunError") -> PlannedDelivery | None:
    """The outbox row a run's end writes; None when the run asked for no webhook."""
    if not task.webhook:
        return None
    return PlannedDelivery(task.webhook, webhook_body(task, status, ended_at, post_id=post_id, error=error,
                                                      error_type=error_type))
