"""Task and thread status rules, in one place.

Both write paths follow these rules: the session path (storage/tasks.py, leases.py, threads.py,
outcomes.py) applies them in Python, and the one-statement Postgres paths bind the values they
need from here instead of spelling statuses as string literals in their SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from storage.models import TERMINAL_STATUSES, TaskStatus, ThreadStatus

# Terminal states are final except FAILED -> QUEUED (an explicit retry). RUNNING -> QUEUED is
# the executor handing a task back (lease lost, shutdown) for another worker to pick up.
# AWAITING_APPROVAL -> QUEUED is a human's decision: the task waits for any worker to resume it.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.QUEUED, TaskStatus.AWAITING_APPROVAL, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.AWAITING_APPROVAL: frozenset(
        {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELLED: frozenset(),
}

# The statuses in which a run occupies its thread: a later run of the thread waits for it.
ACTIVE_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
# Waiting for a worker to take it (the CLI's own runs take these too).
WAITING_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.AWAITING_APPROVAL})

# A task that ended without its run's outcome: cancelled, or failed (check_outcome).
REFUSES_OUTCOME = frozenset({TaskStatus.CANCELLED, TaskStatus.FAILED})

# As column values, sorted so that statements built from them are the same every time.
TERMINAL_VALUES = tuple(sorted(status.value for status in TERMINAL_STATUSES))
ACTIVE_VALUES = tuple(sorted(status.value for status in ACTIVE_STATUSES))
WAITING_VALUES = tuple(sorted(status.value for status in WAITING_STATUSES))
REFUSES_OUTCOME_VALUES = tuple(sorted(status.value for status in REFUSES_OUTCOME))

# A thread's status once one of its runs reached a task status (while no other run of it is
# queued or running: then it stays busy, see thread_status_after_run).
THREAD_STATUS_AFTER_RUN: dict[TaskStatus, ThreadStatus] = {
    TaskStatus.QUEUED: ThreadStatus.BUSY,
    TaskStatus.RUNNING: ThreadStatus.BUSY,
    TaskStatus.AWAITING_APPROVAL: ThreadStatus.INTERRUPTED,
    TaskStatus.COMPLETED: ThreadStatus.IDLE,
    TaskStatus.FAILED: ThreadStatus.ERROR,
    TaskStatus.CANCELLED: ThreadStatus.IDLE,
}


class InvalidStatusTransition(ValueError):
    def __init__(self, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"task cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


class OutcomeRefused(ValueError):
    def __init__(self, status: TaskStatus) -> None:
        super().__init__(f"task is {status.value}: a run's outcome is not stored on it")
        self.status = status


class _Stamped(Protocol):
    """What status_timestamps reads of a task (a Task or a row of its columns)."""

    @property
    def started_at(self) -> datetime | None: ...

    @property
    def finished_at(self) -> datetime | None: ...


def check_transition(current: str, target: str) -> TaskStatus:
    """The target as a TaskStatus; raises InvalidStatusTransition unless allowed (same status is)."""
    current_status, target_status = TaskStatus(current), TaskStatus(target)
    if target_status != current_status and target_status not in ALLOWED_TRANSITIONS[current_status]:
        raise InvalidStatusTransition(current_status, target_status)
    return target_status


def check_outcome(current: str) -> None:
    """Raise OutcomeRefused unless a run's outcome may be stored on a task in ``current``.

    An outcome is content (result, attempts, usage, post), never a status: the run's owner
    records how the run ended (storage.leases.end_run). A task that ended another way keeps
    what it has; one that completed may take its outcome again (finalize re-run after a crash).
    """
    status = TaskStatus(current)
    if status in REFUSES_OUTCOME:
        raise OutcomeRefused(status)


def sets_started(target: TaskStatus) -> bool:
    """Entering ``target`` stamps started_at (when not stamped yet): anything but queued."""
    return target != TaskStatus.QUEUED


def keeps_lease(target: TaskStatus) -> bool:
    """Only a running task is being worked on; any other state frees it from its worker."""
    return target == TaskStatus.RUNNING


def status_timestamps(task: _Stamped, target: TaskStatus, now: datetime) -> dict[str, Any]:
    """Column values that go with entering ``target``: timestamps, and the lease released."""
    values: dict[str, Any] = {"status": target.value, "updated_at": now}
    if sets_started(target) and task.started_at is None:
        values["started_at"] = now
    values["finished_at"] = (task.finished_at or now) if target in TERMINAL_STATUSES else None
    if not keeps_lease(target):
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    return values


def thread_status_after_run(run_status: TaskStatus, other_runs_active: bool) -> ThreadStatus:
    """A thread's status once one of its runs reached ``run_status``: busy while other runs of
    it are queued or running."""
    return ThreadStatus.BUSY if other_runs_active else THREAD_STATUS_AFTER_RUN[run_status]
