"""Every storage write that has both a one-statement Postgres path and a session path stores the
same rows either way: queue_new_task, end_run, append_events and save_outcome, each run once per
path on Postgres (the only database with both)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.content_html import render_body
from graph.post import draft_post_of
from storage.leases import LeaseRepository, end_run
from storage.models import Task, TaskEvent, TaskStatus, Thread, ThreadStatus
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL
from storage.outcomes import save_outcome
from storage.task_events import append_events
from storage.tasks import TaskRepository, queue_new_task
from storage.write_paths import WritePaths
from tests.integration.test_run_outcome import _content, _outcome, _queued, _stored

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                     indirect=True)

WORKER = "worker-a"


@pytest.fixture(params=["one-statement", "session"])
def paths(request: pytest.FixtureRequest, write_paths: WritePaths) -> WritePaths:
    assert write_paths.one_statement is not None
    return write_paths if request.param == "one-statement" else write_paths.session_only()


async def _events(sessions: async_sessionmaker[AsyncSession], task_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    async with sessions() as session:
        rows = await session.scalars(select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id))
        return [(row.id, row.type, row.data) for row in rows]


async def _thread_status(sessions: async_sessionmaker[AsyncSession], thread_id: str) -> str:
    async with sessions() as session:
        thread = await session.get(Thread, thread_id)
        assert thread is not None
        return thread.status


async def _queue(paths: WritePaths) -> Task:
    queued = await queue_new_task(paths, request="write a post on async Python", params={"topic": "async Python"},
                                  thread_metadata={"graph_id": "draftloop"}, event_type="status",
                                  event_data={"status": "queued"}, notify_channel=QUEUE_CHANNEL)
    return queued.task


async def _taken(paths: WritePaths) -> Task:
    """A queued task (queued the same way for both paths) that WORKER now runs."""
    task = await _queue(paths.session_only())
    async with paths.sessions.begin() as session:
        assert await LeaseRepository(session).take(task.id, WORKER, 60.0)
    return task


async def test_queueing_stores_the_task_its_busy_thread_and_its_first_event(paths: WritePaths) -> None:
    queued = await queue_new_task(paths, request="write a post on async Python", params={"topic": "async Python"},
                                  thread_metadata={"graph_id": "draftloop"}, event_type="status",
                                  event_data={"status": "queued"}, notify_channel=QUEUE_CHANNEL)

    async with paths.sessions() as session:
        task = await TaskRepository(session).require(queued.task.id)
        thread = await session.get(Thread, task.thread_id)
    assert (task.kind, task.status, task.request, task.params, task.warnings) == (
        "task", "queued", "write a post on async Python", {"topic": "async Python"}, [])
    assert (task.input_tokens, task.output_tokens, task.cost_usd, task.run_count, task.resume_count) == (0, 0, 0, 0, 0)
    assert (task.started_at, task.finished_at, task.lease_owner) == (None, None, None)
    assert task.created_at == queued.task.created_at
    assert thread is not None
    assert (thread.status, thread.meta) == ("busy", {"graph_id": "draftloop", "task_id": task.id})
    assert await _events(paths.sessions, task.id) == [(queued.event_id, "status", {"status": "queued"})]


@pytest.mark.parametrize("status,error,thread_status", [
    (TaskStatus.COMPLETED, None, ThreadStatus.IDLE),
    (TaskStatus.FAILED, "model unavailable", ThreadStatus.ERROR),
    (TaskStatus.AWAITING_APPROVAL, None, ThreadStatus.INTERRUPTED),
    (TaskStatus.QUEUED, None, ThreadStatus.BUSY),
])
async def test_ending_a_run_stores_its_status_events_and_thread_status(
    paths: WritePaths, status: TaskStatus, error: str | None, thread_status: ThreadStatus,
) -> None:
    task = await _taken(paths)
    planned = [("status", {"status": status.value}), ("end", {"payload": None})]

    ended = await end_run(paths, task_id=task.id, thread_id=task.thread_id, worker_id=WORKER, status=status,
                          error=error, events=planned, channel=TASK_CHANNEL)

    async with paths.sessions() as session:
        row = await TaskRepository(session).require(task.id)
    assert ended.ended and ended.thread_status == thread_status
    assert (row.status, row.error, row.lease_owner, row.lease_expires_at, row.pending_command) == (
        status.value, error, None, None, None)
    assert (row.finished_at is not None) == status.is_terminal
    stored = await _events(paths.sessions, task.id)
    assert [(event_type, data) for _, event_type, data in stored[1:]] == planned
    assert [event_id for event_id, _, _ in stored[1:]] == ended.event_ids
    assert await _thread_status(paths.sessions, task.thread_id) == thread_status.value


async def test_ending_a_run_leaves_the_thread_busy_while_another_run_of_it_waits(paths: WritePaths) -> None:
    task = await _taken(paths)
    async with paths.sessions.begin() as session:
        await TaskRepository(session).create(thread_id=task.thread_id, run={})

    ended = await end_run(paths, task_id=task.id, thread_id=task.thread_id, worker_id=WORKER,
                          status=TaskStatus.COMPLETED, error=None, events=[], channel=TASK_CHANNEL)

    assert ended.ended and ended.thread_status == ThreadStatus.BUSY and ended.event_ids == []
    assert await _thread_status(paths.sessions, task.thread_id) == "busy"


async def test_ending_a_run_the_worker_no_longer_holds_writes_nothing(paths: WritePaths) -> None:
    task = await _taken(paths)
    async with paths.sessions.begin() as session:
        assert await TaskRepository(session).cancel(task.id)
    before = await _events(paths.sessions, task.id)

    ended = await end_run(paths, task_id=task.id, thread_id=task.thread_id, worker_id=WORKER,
                          status=TaskStatus.COMPLETED, error=None, events=[("status", {"status": "completed"})],
                          channel=TASK_CHANNEL)

    assert (ended.ended, ended.event_ids, ended.thread_status) == (False, [], None)
    assert await _events(paths.sessions, task.id) == before
    async with paths.sessions() as session:
        assert (await TaskRepository(session).require(task.id)).status == "cancelled"


async def test_appending_events_stores_a_batch_in_order_for_each_task(paths: WritePaths) -> None:
    first, second = await _queue(paths.session_only()), await _queue(paths.session_only())
    batch = [(first.id, "token", {"text": "a"}), (second.id, "token", {"text": "b"}),
             (first.id, "node_finished", {"node": "draft", "text": "\x00nul"})]

    await append_events(paths, batch, channel=TASK_CHANNEL)

    first_events, second_events = await _events(paths.sessions, first.id), await _events(paths.sessions, second.id)
    # NUL is cut as storage/storable.py cuts it on either path.
    assert [(t, d) for _, t, d in first_events[1:]] == [("token", {"text": "a"}),
                                                        ("node_finished", {"node": "draft", "text": "nul"})]
    assert [(t, d) for _, t, d in second_events[1:]] == [("token", {"text": "b"})]
    ids = sorted([first_events[1][0], second_events[1][0], first_events[2][0]])
    assert ids == [first_events[1][0], second_events[1][0], first_events[2][0]]


async def test_saving_a_first_outcome_stores_the_task_attempts_usage_and_post(paths: WritePaths) -> None:
    task_id = await _queued(paths.sessions, "thread-outcome")
    outcome = _outcome(task_id, "thread-outcome")

    assert await save_outcome(paths, **outcome, draft=draft_post_of(outcome["result"])) == task_id

    stored = await _stored(paths.sessions, task_id)
    # The status is the run's to record when it ends (storage.leases.end_run).
    assert (stored["task"]["status"], stored["task"]["input_tokens"], stored["task"]["output_tokens"]) == (
        "running", 900, 1220)
    assert stored["started"] and not stored["finished"]
    assert [row["number"] for row in stored["attempts"]] == [1, 2]
    assert [row["node"] for row in stored["usage"]] == ["route_intent", "draft"]
    assert stored["slug"] == "async-python" and stored["post"]["status"] == "draft"
    assert stored["post"]["html"] == render_body("Body text.").html


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.COMPLETED])
@pytest.mark.parametrize("result", [
    _content(),
    _content(approval={"approved": True, "publish": True}),
    _content(featured_image=None, sources=[], seo={"slug": "Not A Slug!"}),
    {"kind": "answer", "answer": "42"},
    None,
], ids=["draft", "published", "no-image-bad-slug", "answer", "no-result"])
async def test_a_first_outcome_stores_the_same_rows_on_either_path(
    write_paths: WritePaths, status: TaskStatus, result: dict[str, Any] | None,
) -> None:
    sessions = write_paths.sessions
    # Running: finalize's first run; completed: finalize ran again after the run had ended.
    fast_id = await _queued(sessions, "fast", status)
    slow_id = await _queued(sessions, "slow", status)

    for paths, task_id, thread_id in ((write_paths, fast_id, "fast"), (write_paths.session_only(), slow_id, "slow")):
        outcome = _outcome(task_id, thread_id, result=result)
        await save_outcome(paths, **outcome, draft=draft_post_of(result or {}))

    fast, slow = await _stored(sessions, fast_id), await _stored(sessions, slow_id)
    # Both drew a number of the same base: the second post is numbered.
    fast_slug, slow_slug = fast.pop("slug"), slow.pop("slug")
    assert fast == slow
    assert (fast_slug is None) == (result is None or result.get("kind") != "content")
    if fast_slug is not None:
        assert {fast_slug, slow_slug} == {fast_slug, f"{fast_slug}-2"} and fast_slug in ("async-python", "post")
