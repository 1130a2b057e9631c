"""The task and thread status rules (storage/status.py) that both write paths follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from storage.models import TERMINAL_STATUSES, TaskStatus, ThreadStatus
from storage.status import (
    ACTIVE_VALUES,
    ALLOWED_TRANSITIONS,
    REFUSES_OUTCOME_VALUES,
    TERMINAL_VALUES,
    WAITING_VALUES,
    InvalidStatusTransition,
    OutcomeRefused,
    check_outcome,
    check_transition,
    status_timestamps,
    thread_status_after_run,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)


def _task(started_at: datetime | None = None, finished_at: datetime | None = None) -> SimpleNamespace:
    return SimpleNamespace(started_at=started_at, finished_at=finished_at)


@pytest.mark.parametrize("current", list(TaskStatus))
def test_staying_in_the_same_status_is_always_allowed(current: TaskStatus) -> None:
    assert check_transition(current.value, current.value) == current


@pytest.mark.parametrize("current,target", [
    (TaskStatus.QUEUED, TaskStatus.RUNNING),
    (TaskStatus.RUNNING, TaskStatus.QUEUED),
    (TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL),
    (TaskStatus.AWAITING_APPROVAL, TaskStatus.QUEUED),
    (TaskStatus.RUNNING, TaskStatus.COMPLETED),
    (TaskStatus.FAILED, TaskStatus.QUEUED),
])
def test_allowed_transitions_return_the_target(current: TaskStatus, target: TaskStatus) -> None:
    assert check_transition(current.value, target.value) == target


@pytest.mark.parametrize("terminal", [TaskStatus.COMPLETED, TaskStatus.CANCELLED])
@pytest.mark.parametrize("target", [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.FAILED])
def test_completed_and_cancelled_tasks_are_final(terminal: TaskStatus, target: TaskStatus) -> None:
    with pytest.raises(InvalidStatusTransition) as raised:
        check_transition(terminal.value, target.value)
    assert (raised.value.current, raised.value.target) == (terminal, target)


def test_a_failed_task_may_only_be_queued_again() -> None:
    assert ALLOWED_TRANSITIONS[TaskStatus.FAILED] == {TaskStatus.QUEUED}
    with pytest.raises(InvalidStatusTransition):
        check_transition(TaskStatus.FAILED.value, TaskStatus.RUNNING.value)


def test_a_queued_task_cannot_skip_to_completed() -> None:
    with pytest.raises(InvalidStatusTransition):
        check_transition(TaskStatus.QUEUED.value, TaskStatus.COMPLETED.value)


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        check_transition("paused", TaskStatus.RUNNING.value)


@pytest.mark.parametrize("current", [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL,
                                     TaskStatus.COMPLETED])
def test_an_outcome_is_stored_on_a_task_that_did_not_end_another_way(current: TaskStatus) -> None:
    check_outcome(current.value)


@pytest.mark.parametrize("current", [TaskStatus.CANCELLED, TaskStatus.FAILED])
def test_an_outcome_never_lands_on_a_task_that_ended_another_way(current: TaskStatus) -> None:
    with pytest.raises(OutcomeRefused) as raised:
        check_outcome(current.value)
    assert raised.value.status == current


def test_starting_stamps_started_at_once_and_keeps_the_lease() -> None:
    values = status_timestamps(_task(), TaskStatus.RUNNING, NOW)
    assert values == {"status": "running", "updated_at": NOW, "started_at": NOW, "finished_at": None}
    again = status_timestamps(_task(started_at=EARLIER), TaskStatus.RUNNING, NOW)
    assert "started_at" not in again


def test_queueing_neither_starts_the_task_nor_keeps_a_lease() -> None:
    values = status_timestamps(_task(), TaskStatus.QUEUED, NOW)
    assert "started_at" not in values
    assert (values["lease_owner"], values["lease_expires_at"], values["finished_at"]) == (None, None, None)


@pytest.mark.parametrize("target", sorted(TERMINAL_STATUSES))
def test_ending_stamps_finished_at_and_frees_the_lease(target: TaskStatus) -> None:
    values = status_timestamps(_task(started_at=EARLIER), target, NOW)
    assert (values["finished_at"], values["lease_owner"], values["lease_expires_at"]) == (NOW, None, None)
    # A task that already had an end time keeps it.
    assert status_timestamps(_task(EARLIER, EARLIER), target, NOW)["finished_at"] == EARLIER


def test_awaiting_approval_is_unfinished_and_frees_the_worker() -> None:
    values = status_timestamps(_task(started_at=EARLIER), TaskStatus.AWAITING_APPROVAL, NOW)
    assert (values["finished_at"], values["lease_owner"]) == (None, None)


@pytest.mark.parametrize("status,expected", [
    (TaskStatus.COMPLETED, ThreadStatus.IDLE),
    (TaskStatus.CANCELLED, ThreadStatus.IDLE),
    (TaskStatus.FAILED, ThreadStatus.ERROR),
    (TaskStatus.AWAITING_APPROVAL, ThreadStatus.INTERRUPTED),
    (TaskStatus.QUEUED, ThreadStatus.BUSY),
    (TaskStatus.RUNNING, ThreadStatus.BUSY),
])
def test_a_thread_takes_its_runs_status_when_no_other_run_is_active(status: TaskStatus,
                                                                     expected: ThreadStatus) -> None:
    assert thread_status_after_run(status, other_runs_active=False) == expected


@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_thread_stays_busy_while_another_run_is_active(status: TaskStatus) -> None:
    assert thread_status_after_run(status, other_runs_active=True) == ThreadStatus.BUSY


def test_the_values_sql_binds_match_the_status_sets() -> None:
    assert set(TERMINAL_VALUES) == {"completed", "failed", "cancelled"}
    assert set(ACTIVE_VALUES) == {"queued", "running"}
    assert set(WAITING_VALUES) == {"queued", "awaiting_approval"}
    assert set(REFUSES_OUTCOME_VALUES) == {"cancelled", "failed"}
