"""The end of a run: the single owner of the status a run ends with.

The driver (app/engine/driver.py) says how the graph stopped, the dispatcher says when a run
failed or was given up; ``status_of`` turns that into the task's status, and ``RunEnd`` writes
it with its ``status`` event (for an API run also its ``error`` and ``end`` events) and the
thread's status in one step (storage/leases.py ``end_run``). Nothing else decides that a run
completed: finalize stores the outcome and leaves the status alone.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.engine.api_runs import API_ERROR, END
from app.engine.events import ERROR, STATUS, Event, EventBus
from app.engine.stats import RunStats
from app.engine.webhooks import ThreadValues, planned_delivery
from storage.leases import end_run
from storage.models import Task, TaskStatus, ThreadStatus, utcnow
from storage.notifications import TASK_CHANNEL
from storage.posts import PostRepository
from storage.webhooks import PlannedDelivery
from storage.write_paths import WritePaths

log = logging.getLogger("draftloop.executor")


class Ending(enum.Enum):
    """How a run stopped."""

    FINISHED = "finished"  # the graph ran to its end
    PAUSED = "paused"  # at an interrupt() or an interrupt_before/after breakpoint
    FAILED = "failed"  # a node raised, or the run kept stopping before it could end
    DRAINED = "drained"  # at a checkpoint boundary, because this process is stopping: not an end


_STATUS: dict[Ending, TaskStatus] = {
    Ending.FINISHED: TaskStatus.COMPLETED,
    Ending.PAUSED: TaskStatus.AWAITING_APPROVAL,
    Ending.FAILED: TaskStatus.FAILED,
}


def status_of(ending: Ending) -> TaskStatus:
    """The status a run that stopped this way ends with. A drained run has not ended: its lease
    is released and it resumes from its checkpoint."""
    if ending not in _STATUS:
        raise ValueError(f"a {ending.value} run has not ended")
    return _STATUS[ending]


class RunEnd:
    """Records the end of this worker's runs."""

    def __init__(self, writes: WritePaths, bus: EventBus, worker_id: str, stats: RunStats,
                 values: ThreadValues) -> None:
        self.writes = writes
        self.values = values
        self.bus = bus
        self.worker_id = worker_id
        self.stats = stats
        # Told when a run's end queued a webhook delivery: this process's deliverer sends it now.
        self.webhook_queued: Callable[[], None] | None = None

    async def _webhook(self, task: Task, status: TaskStatus, now: Any, error: str | None,
                       error_type: str) -> PlannedDelivery | None:
        """The run's webhook delivery, with the thread's values and the id of the post it wrote;
        None without a webhook."""
        if not task.webhook:
            return None
        post_id = None
        if status == TaskStatus.COMPLETED:
            async with self.writes.sessions() as session:
                post_id = await PostRepository(session).id_for_task(task)
        return planned_delivery(task, status, now, post_id=post_id, values=await self.values.of(task), error=error,
                                error_type=error_type)

    async def record(self, task: Task, ending: Ending, *, error: str | None = None,
                     error_type: str = "RunError") -> bool:
        """Write the end of ``task``'s run; True when its thread was left with no other run
        queued or running (nothing of it became claimable)."""
        status = status_of(ending)
        is_run = task.kind == "run"
        planned: list[tuple[str, dict[str, Any]]] = []
        if error is not None:
            planned.append((API_ERROR if is_run else ERROR,
                            {"payload": {"error": error_type, "message": error}} if is_run else {"message": error}))
        planned.append((STATUS, {"status": status.value} if error is None else {"status": status.value, "error": error}))
        if is_run:
            planned.append((END, {"payload": None}))
        # The run's queued progress events come first: followers stop at the terminal status.
        await self.bus.flush()
        now = utcnow()
        webhook = await self._webhook(task, status, now, error, error_type)
        ended = await end_run(self.writes, task_id=task.id, thread_id=task.thread_id, worker_id=self.worker_id,
                              status=status, error=error, events=planned, channel=TASK_CHANNEL, webhook=webhook,
                              now=now)
        if not ended.ended:
            # Cancelled or taken over while finishing: the newer state stands.
            log.info("task %s changed hands before its run could record %s", task.id, status.value)
            return False
        self.bus.announce([Event(id=event_id, task_id=task.id, type=event_type, data=data, created_at=ended.created_at)
                           for event_id, (event_type, data) in zip(ended.event_ids, planned, strict=True)])
        if webhook is not None and self.webhook_queued is not None:
            self.webhook_queued()
        if status == TaskStatus.COMPLETED:
            self.stats.completed_total += 1
        elif status == TaskStatus.FAILED:
            self.stats.failed_total += 1
        elif status == TaskStatus.AWAITING_APPROVAL:
            self.stats.awaiting_approval_total += 1
        return ended.thread_status != ThreadStatus.BUSY

    async def fail(self, task: Task, message: str, error_type: str = "RunError") -> bool:
        """Record a failed run; False (and a log line) when the database would not take it."""
        try:
            return await self.record(task, Ending.FAILED, error=message, error_type=error_type)
        except (SQLAlchemyError, OSError) as exc:
            # The lease runs out and another worker retries the task from its checkpoint.
            log.error("could not record the failure of task %s: %s", task.id, exc)
            return False
