"""The executor over real SQLite and Postgres: queue, leases, events, cancel, approval, crash
recovery, graceful stop and (on Postgres) two workers sharing one queue.

The graph runs for real against the loopback fakes (Ollama, Serper, Pexels); the ScriptedWriter
records every model call, which is how "no finished node ran again" is checked.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from app.engine.commands import DecisionConflict
from app.engine.dispatcher import Dispatcher
from app.engine.events import Event, EventBus
from app.engine.messages import gave_up_message
from app.graph_runtime import GraphRuntime, outcome_saver
from app.markdown_renderer import MarkdownRenderer
from app.service_settings import ServiceSettings
from devtools.fakes.ollama import OllamaReply
from devtools.fakes.writer import GraphFakes, ScriptedWriter
from graph.builder import build_graph
from graph.context import DraftloopContext, OutcomeSaver
from storage.checkpoints import open_checkpointer
from storage.engine import create_autocommit_engine, create_engine, session_factory
from storage.leases import LeaseRepository
from storage.models import Attempt, Task, TaskStatus, utcnow
from storage.tasks import TaskNotFound, TaskRepository
from storage.write_paths import WritePaths

REQUEST = "Write a 300-word blog post about async Python for backend developers"
PARAMS = {"research": True, "images": True, "require_approval": False}
# The research step's model calls: the query plan, then the gaps in what it found.
RESEARCH_CALLS = ("plan", "gaps")
FAST = dict(concurrency=4, lease_seconds=2.0, heartbeat_seconds=0.2, poll_seconds=0.05, shutdown_grace_seconds=0.5)


@dataclass
class Worker:
    runtime: GraphRuntime
    bus: EventBus
    executor: Dispatcher


@dataclass
class Harness:
    """Opens workers (a runtime with its own engine and checkpointer, a bus, an executor) over
    one database, the way separate service processes would."""

    database_url: str
    fakes: GraphFakes
    stack: AsyncExitStack

    async def worker(self, worker_id: str = "worker-a", *, start: bool = True,
                     wrap_saver: Callable[[OutcomeSaver], OutcomeSaver] | None = None, **settings: Any) -> Worker:
        runtime = await self.stack.enter_async_context(_runtime(self.database_url, self.fakes, wrap_saver))
        options = {**FAST, **settings}
        bus = EventBus(runtime.sessions, poll_seconds=options["poll_seconds"], autocommit_engine=runtime.autocommit_engine)
        executor = Dispatcher(runtime, ServiceSettings(worker_id=worker_id, **options), bus)
        # LIFO: the executor stops first, then the bus writes what its runs left queued.
        self.stack.push_async_callback(bus.aclose)
        self.stack.push_async_callback(executor.stop)
        worker = Worker(runtime, bus, executor)
        if start:
            await executor.start()
        return worker


@asynccontextmanager
async def _runtime(database_url: str, fakes: GraphFakes,
                   wrap_saver: Callable[[OutcomeSaver], OutcomeSaver] | None = None) -> AsyncIterator[GraphRuntime]:
    engine = create_engine(database_url)
    # As app/graph_runtime.py opens it: on Postgres the outcome's slug numbers, the event writer
    # and the end of a run go through the autocommit engine.
    autocommit_engine = create_autocommit_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with open_checkpointer(database_url) as saver, MarkdownRenderer() as renderer:
            save = outcome_saver(WritePaths(sessions, autocommit_engine), renderer)
            deps = fakes.dependencies(save_outcome=wrap_saver(save) if wrap_saver else save)
            try:
                yield GraphRuntime(build_graph(saver), deps, engine, sessions, database_url, renderer,
                                   autocommit_engine=autocommit_engine)
            finally:
                await deps.models.aclose()
    finally:
        if autocommit_engine is not None:
            await autocommit_engine.dispose()
        await engine.dispose()


@pytest.fixture
async def harness(migrated_database_url: str, graph_fakes: GraphFakes) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(migrated_database_url, graph_fakes, stack)


def slow_calls(fakes: GraphFakes, **latency: float) -> None:
    """Delay the fake model's answers by kind of call: intent, draft, score."""
    writer = fakes.writer

    def respond(body: dict[str, Any]) -> OllamaReply:
        reply = writer(body)
        reply.latency = latency.get(writer.calls[-1], reply.latency)
        return reply

    fakes.ollama.responder = respond


async def queue_task(worker: Worker, request: str = REQUEST, **params: Any) -> str:
    task = await worker.executor.commands.enqueue(request, {**PARAMS, **params})
    assert task.status == "queued" and task.thread_id != task.id
    return task.id


async def load(worker: Worker, task_id: str) -> Task:
    async with worker.runtime.sessions() as session:
        return await TaskRepository(session).require(task_id)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_for_status(worker: Worker, task_id: str, *statuses: str, timeout: float = 15.0) -> Task:
    async def reached() -> bool:
        return (await load(worker, task_id)).status in statuses

    await eventually(reached, timeout, f"task {task_id} to become {statuses}")
    return await load(worker, task_id)


async def wait_for_event(worker: Worker, task_id: str, event_type: str, timeout: float = 15.0, **data: Any) -> Event:
    found: list[Event] = []

    async def seen() -> bool:
        found[:] = [e for e in await worker.bus.history(task_id)
                    if e.type == event_type and all(e.data.get(k) == v for k, v in data.items())]
        return bool(found)

    await eventually(seen, timeout, f"{event_type} {data} on {task_id}")
    return found[0]


def milestones(events: list[Event]) -> list[tuple[str, str]]:
    """The event log without tokens and research queries (those finish in any order), as
    (type, node or status) pairs."""
    return [(e.type, str(e.data.get("node") or e.data.get("status") or e.data.get("number") or ""))
            for e in events if e.type not in ("token", "research_query")]


async def attempt_count(worker: Worker, task_id: str) -> int:
    async with worker.runtime.sessions() as session:
        return len(list(await session.scalars(select(Attempt).where(Attempt.task_id == task_id))))


async def test_queued_task_runs_to_completed_publishing_events_in_order(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "completed")
    events = await worker.bus.history(task_id)

    assert milestones(events) == [
        ("status", "queued"), ("status", "running"),
        ("node_started", "route_intent"), ("node_finished", "route_intent"),
        ("node_started", "research"), ("node_finished", "research"),
        ("node_started", "draft"), ("node_finished", "draft"),
        ("node_started", "critique"), ("attempt_scored", "1"), ("node_finished", "critique"),
        ("node_started", "finalize"), ("node_finished", "finalize"),
        ("status", "completed"),
    ]
    scored = next(e for e in events if e.type == "attempt_scored")
    assert scored.data["passed"] is True and scored.data["score"] >= 70 and scored.data["dimensions"]
    assert all(e.data["summary"] for e in events if e.type == "node_finished")
    tokens = [e for e in events if e.type == "token"]
    streamed = "".join(e.data["text"] for e in tokens)
    # What streamed is the draft; the result adds the Sources list of what it cited.
    assert task.result["markdown"].startswith(streamed.strip()) and "## Sources" in task.result["markdown"]
    # Batched: a ~300-word draft streams ~300 tokens, published as a handful of rows.
    assert 1 <= len(tokens) <= len(streamed.split()) // 25
    assert [e.id for e in events] == sorted({e.id for e in events})
    assert task.result["passed"] is True and task.finished_at is not None and task.error is None
    assert task.lease_owner is None and task.lease_expires_at is None and task.run_count == 1
    assert await attempt_count(worker, task_id) == 1


async def test_research_publishes_each_search_then_a_summary_naming_the_queries(harness: Harness) -> None:
    harness.fakes.writer.plan = ["python asyncio event loop", "asyncio backend performance", "async python pitfalls"]
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_status(worker, task_id, "completed")
    events = await worker.bus.history(task_id)
    types = [(e.type, e.data.get("node")) for e in events]
    started, finished = types.index(("node_started", "research")), types.index(("node_finished", "research"))
    queries = [e.data for e in events if e.type == "research_query"]
    assert all(started < i < finished for i, e in enumerate(events) if e.type == "research_query")
    # Three web searches, the first two also as news, and the cover photo search.
    assert Counter((q["kind"], q["query"]) for q in queries) == Counter(
        [("web", q) for q in harness.fakes.writer.plan] + [("news", q) for q in harness.fakes.writer.plan[:2]]
        + [("images", "async Python")])
    assert all(q["round"] == 1 and q["results"] > 0 and q["error"] is None for q in queries)
    summary = events[finished].data["summary"]
    assert summary.startswith("5 sources (0 pages read) from 5 searches: ")
    assert all(f"'{q}'" in summary for q in harness.fakes.writer.plan)


async def test_follow_after_completion_replays_history_and_resumes_after_an_id(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_status(worker, task_id, "completed")
    history = await worker.bus.history(task_id)

    replay = [e async for e in worker.bus.follow(task_id, heartbeat=5)]
    middle = history[len(history) // 2].id
    resumed = [e async for e in worker.bus.follow(task_id, after_id=middle, heartbeat=5)]

    assert [e.id for e in replay if e] == [e.id for e in history]
    assert [e.id for e in resumed if e] == [e.id for e in history if e.id > middle]


async def test_live_follower_sees_every_event_once_and_stops_at_the_terminal_status(harness: Harness) -> None:
    slow_calls(harness.fakes, score=0.3)
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_event(worker, task_id, "node_started", node="draft")
    first = (await worker.bus.history(task_id))[1]

    seen: list[Event | None] = []
    async for event in worker.bus.follow(task_id, after_id=first.id, heartbeat=0.1):
        seen.append(event)

    assert None in seen  # heartbeats while the judge thinks
    events = [e for e in seen if e is not None]
    assert [e.id for e in events] == [e.id for e in await worker.bus.history(task_id, first.id)]
    assert events[-1].type == "status" and events[-1].data["status"] == "completed"


async def test_concurrency_setting_bounds_the_runs_in_flight(harness: Harness) -> None:
    slow_calls(harness.fakes, intent=0.1, draft=0.1, score=0.1)
    worker = await harness.worker(concurrency=2)
    task_ids = [await queue_task(worker, f"{REQUEST} number {n}") for n in range(5)]
    peak_local, peak_db = 0, 0

    async def all_completed() -> bool:
        nonlocal peak_local, peak_db
        async with worker.runtime.sessions() as session:
            counts = dict.fromkeys(TaskStatus, 0) | {
                TaskStatus(status): count
                for status, count in await session.execute(select(Task.status, func.count()).group_by(Task.status))}
        peak_local = max(peak_local, worker.executor.running_count)
        peak_db = max(peak_db, counts[TaskStatus.RUNNING])
        return counts[TaskStatus.COMPLETED] == len(task_ids)

    await eventually(all_completed, what="all tasks to complete")

    assert peak_local == 2 and peak_db <= 2
    assert worker.executor.claimed_total == 5


def count_claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each claim query returned, in order."""
    claims: list[int] = []
    original = LeaseRepository.claim

    async def counting(self: LeaseRepository, *args: Any, **kwargs: Any) -> list[Task]:
        claimed = await original(self, *args, **kwargs)
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(LeaseRepository, "claim", counting)
    return claims


async def test_runs_ending_on_a_drained_queue_do_not_query_for_more_work(harness: Harness,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    claims = count_claims(monkeypatch)
    slow_calls(harness.fakes, draft=0.6)
    # No periodic poll within the test: every claim is one the dispatcher chose to make.
    worker = await harness.worker(concurrency=4, poll_seconds=60)
    task_ids = [await queue_task(worker, f"{REQUEST} number {n}") for n in range(3)]
    await eventually(lambda: _all_claimed(worker, 3), what="all three to be claimed")
    # A wake-up that lands while a claim is in flight may cost one more (empty) claim; let
    # that settle before the runs end.
    await asyncio.sleep(0.2)
    before = list(claims)

    for task_id in task_ids:
        await wait_for_status(worker, task_id, "completed")
    await asyncio.sleep(0.2)

    assert sum(before) == 3
    assert claims == before  # three runs ended with nothing queued: no query after any of them


async def test_a_worker_with_every_slot_taken_waits_for_a_free_slot_instead_of_spinning(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=1.0)
    worker = await harness.worker(concurrency=1, poll_seconds=0.05)
    first = await queue_task(worker, f"{REQUEST} first")
    second = await queue_task(worker, f"{REQUEST} second")
    await eventually(lambda: _all_claimed(worker, 1), what="the first to be claimed")
    passes = 0
    original = worker.executor.run_settings.concurrency

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await original()

    worker.executor.run_settings.concurrency = counted  # type: ignore[method-assign]
    # The dispatcher asks for the concurrency once per pass: about one per due poll while the
    # one slot is taken, where a busy loop makes thousands.
    await asyncio.sleep(0.5)
    passes_while_full = passes

    await wait_for_status(worker, first, "completed")
    await wait_for_status(worker, second, "completed")
    assert passes_while_full < 50
    assert worker.executor.claimed_total == 2


async def _all_claimed(worker: Worker, count: int) -> bool:
    return worker.executor.claimed_total == count


async def test_a_follow_up_queued_on_a_busy_thread_starts_when_its_predecessor_ends_not_at_the_next_poll(
    harness: Harness,
) -> None:
    slow_calls(harness.fakes, draft=0.3)
    worker = await harness.worker(concurrency=4, poll_seconds=60)
    first = await worker.executor.commands.enqueue(REQUEST, PARAMS)
    await wait_for_status(worker, first.id, "running")
    # Claimable only once the first run ends: runs of one thread go one at a time.
    second = await worker.executor.commands.enqueue("Make it shorter", PARAMS, thread_id=first.thread_id)

    await wait_for_status(worker, first.id, "completed")
    done = await wait_for_status(worker, second.id, "completed", timeout=20)

    assert done.started_at is not None and done.started_at >= (await load(worker, first.id)).finished_at
    # It ran the graph on its own request instead of finding the thread's last run finished.
    assert done.result is not None and done.request == "Make it shorter"


async def test_cancel_stops_a_local_run_within_a_second_and_keeps_its_checkpoint(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=30)
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_event(worker, task_id, "node_started", node="draft")

    started = time.monotonic()
    assert await worker.executor.commands.cancel(task_id) is True
    await eventually(lambda: _is_idle(worker), timeout=1, what="the run to stop")
    elapsed = time.monotonic() - started

    task = await load(worker, task_id)
    assert elapsed < 1
    assert task.status == "cancelled" and task.finished_at is not None and task.lease_owner is None
    snapshot = await worker.runtime.graph.aget_state({"configurable": {"thread_id": task.thread_id}})
    assert snapshot.next == ("draft",) and snapshot.values["research"]["sources"]
    events = await worker.bus.history(task_id)
    assert events[-1].type == "status" and events[-1].data == {"status": "cancelled"}
    assert await worker.executor.commands.cancel(task_id) is False


async def test_cancel_from_another_process_stops_the_run_within_a_second(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=30)
    runner = await harness.worker("runner")
    api_side = await harness.worker("api-side", start=False)
    task_id = await queue_task(runner)
    await wait_for_event(runner, task_id, "node_started", node="draft")

    started = time.monotonic()
    assert await api_side.executor.commands.cancel(task_id) is True
    await eventually(lambda: _is_idle(runner), timeout=1, what="the remote run to stop")

    assert time.monotonic() - started < 1
    assert (await load(runner, task_id)).status == "cancelled"
    assert runner.executor.stats.cancelled_total == 1


async def test_cancel_of_a_missing_task_raises_not_found(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    with pytest.raises(TaskNotFound):
        await worker.executor.commands.cancel(str(uuid.uuid4()))


async def test_approval_waits_then_approve_completes(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker, require_approval=True)

    await wait_for_status(worker, task_id, "awaiting_approval")
    interrupt = await wait_for_event(worker, task_id, "interrupt")
    assert interrupt.data["value"]["markdown"].startswith("# ")
    await worker.executor.commands.submit_decision(task_id, approved=True, feedback="")
    task = await wait_for_status(worker, task_id, "completed")

    assert task.result["approval"] == {"approved": True, "feedback": "", "attempt": 1}
    assert task.pending_command is None
    statuses = [e.data["status"] for e in await worker.bus.history(task_id) if e.type == "status"]
    assert statuses == ["queued", "running", "awaiting_approval", "queued", "running", "completed"]
    assert harness.fakes.writer.calls == ["intent", *RESEARCH_CALLS, "draft", "score"]


async def test_rejection_drafts_again_with_the_feedback_then_waits_again(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker, require_approval=True)
    await wait_for_status(worker, task_id, "awaiting_approval")

    await worker.executor.commands.submit_decision(task_id, approved=False, feedback="Mention uvloop")
    await wait_for_event(worker, task_id, "status", status="running")
    await eventually(lambda: _status_events_are(worker, task_id, 2, "awaiting_approval"), what="a second wait")

    writer = harness.fakes.writer
    assert writer.calls == ["intent", *RESEARCH_CALLS, "draft", "score", "draft", "score"]
    assert "Mention uvloop" in writer.prompts[-1]
    await worker.executor.commands.submit_decision(task_id, approved=True)
    task = await wait_for_status(worker, task_id, "completed")
    assert task.result["attempts"] == 2 and await attempt_count(worker, task_id) == 2


async def test_decision_already_taken_in_before_a_crash_is_not_applied_again(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker, require_approval=True)
    task = await wait_for_status(worker, task_id, "awaiting_approval")
    await worker.executor.stop()
    await worker.executor.commands.submit_decision(task_id, approved=False, feedback="Mention uvloop")
    # A worker resumed with that decision, drafted again up to the next approval, then died
    # before it could record anything: the row still holds the (now stale) decision.
    runtime = worker.runtime
    context = DraftloopContext(deps=runtime.deps)
    await runtime.graph.ainvoke(Command(resume={"approved": False, "feedback": "Mention uvloop"}),
                                {"configurable": {"thread_id": task.thread_id}}, context=context, durability="sync")
    assert harness.fakes.writer.calls.count("draft") == 2

    await worker.executor.start()
    await eventually(lambda: _status_events_are(worker, task_id, 2, "awaiting_approval"), what="the wait to resume")

    assert harness.fakes.writer.calls.count("draft") == 2  # the rejection was not applied twice
    assert (await load(worker, task_id)).pending_command is None


async def test_decision_on_a_task_not_awaiting_approval_is_a_conflict(harness: Harness) -> None:
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_status(worker, task_id, "completed")

    with pytest.raises(DecisionConflict) as raised:
        await worker.executor.commands.submit_decision(task_id, approved=True)
    assert raised.value.status == TaskStatus.COMPLETED and "awaiting_approval" in str(raised.value)
    with pytest.raises(TaskNotFound):
        await worker.executor.commands.submit_decision(str(uuid.uuid4()), approved=True)


async def test_failed_run_records_a_clear_error_without_a_traceback(harness: Harness) -> None:
    harness.fakes.ollama.models = ["some-other-model:latest"]
    worker = await harness.worker()
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "failed")

    assert task.error and task.error.startswith("route_intent failed: ") and "ollama pull" in task.error
    assert "Traceback" not in task.error and "\n" not in task.error
    events = await worker.bus.history(task_id)
    assert [e.type for e in events[-2:]] == ["error", "status"]
    assert events[-1].data == {"status": "failed", "error": task.error}
    assert task.lease_owner is None and task.finished_at is not None


async def test_crashed_run_with_expired_lease_resumes_from_its_checkpoint(harness: Harness) -> None:
    slow_calls(harness.fakes, score=30)
    observer = await harness.worker("observer", start=False)
    task_id = await queue_task(observer)
    task = await load(observer, task_id)
    # A worker that dies mid-critique: the graph checkpointed up to draft, the row says running.
    await _crash_mid_graph(observer, task, harness.fakes.writer, until_call="score")
    await _set_lease(observer, task_id, owner="dead-worker", expires_in=60)
    slow_calls(harness.fakes)

    survivor = await harness.worker("survivor")
    await asyncio.sleep(0.3)
    assert (await load(survivor, task_id)).lease_owner == "dead-worker"  # a live lease is respected
    await _set_lease(survivor, task_id, owner="dead-worker", expires_in=-1)
    task = await wait_for_status(survivor, task_id, "completed")

    calls = Counter(harness.fakes.writer.calls)
    assert calls["intent"] == calls["plan"] == calls["gaps"] == calls["draft"] == 1  # finished nodes did not run again
    assert calls["score"] == 2  # the interrupted judge call, then the resumed one
    started = [e.data["node"] for e in await survivor.bus.history(task_id) if e.type == "node_started"]
    assert started == ["critique", "finalize"]
    assert await attempt_count(survivor, task_id) == 1
    assert task.run_count == 2 and task.resume_count == 1 and task.result["attempts"] == 1
    assert survivor.executor.stats.resumed_total == 1


async def test_run_that_loses_the_database_is_resumed_after_its_lease_not_failed(harness: Harness) -> None:
    outages = [OperationalError("UPDATE tasks", {}, ConnectionResetError("connection lost"))]

    def flaky(save: OutcomeSaver) -> OutcomeSaver:
        async def save_once_broken(outcome: dict[str, Any]) -> None:
            if outages:
                raise outages.pop()
            await save(outcome)

        return save_once_broken

    # Short enough to resume soon, long enough that a late heartbeat on a busy box keeps it.
    worker = await harness.worker(wrap_saver=flaky, lease_seconds=1.5, heartbeat_seconds=0.1)
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "completed")

    assert task.run_count == 2 and task.error is None
    statuses = [e.data["status"] for e in await worker.bus.history(task_id) if e.type == "status"]
    assert statuses == ["queued", "running", "running", "completed"]
    assert Counter(harness.fakes.writer.calls) == {"intent": 1, "plan": 1, "gaps": 1, "draft": 1, "score": 1}


async def test_a_run_that_keeps_losing_the_database_is_failed_after_max_resumes(harness: Harness) -> None:
    def always_broken(save: OutcomeSaver) -> OutcomeSaver:
        async def save_broken(outcome: dict[str, Any]) -> None:
            raise OperationalError("UPDATE tasks", {}, ConnectionResetError("connection lost"))

        return save_broken

    worker = await harness.worker(wrap_saver=always_broken, lease_seconds=1.0, heartbeat_seconds=0.1, max_resumes=1)
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "failed", timeout=30)

    # The first run, one resume, then the claim that gives up instead of running it again.
    assert (task.run_count, task.resume_count) == (3, 2)
    assert task.error == gave_up_message(2, 1)
    assert "MAX_RESUMES" in task.error and "UPDATE" not in task.error
    # Only finalize ran again: the resume continued from the checkpoint.
    assert Counter(harness.fakes.writer.calls) == {"intent": 1, "plan": 1, "gaps": 1, "draft": 1, "score": 1}


async def test_runs_a_restarted_worker_finds_under_its_own_id_count_as_resumed(harness: Harness) -> None:
    observer = await harness.worker("observer", start=False)
    task_id = await queue_task(observer)
    # What a worker killed mid-run leaves behind: the row running under its id, lease still valid.
    await _set_lease(observer, task_id, owner="restarted", expires_in=60)

    restarted = await harness.worker("restarted")
    task = await wait_for_status(restarted, task_id, "completed")

    assert (task.run_count, task.resume_count) == (2, 1)


@pytest.mark.parametrize("fault", ["reset", "http_500"])
async def test_a_model_failing_every_call_fails_the_task_after_the_node_retries_instead_of_resuming_it(
    harness: Harness, fault: Literal["reset", "http_500"]
) -> None:
    writer = harness.fakes.writer

    def failing_drafts(body: dict[str, Any]) -> OllamaReply:
        reply = writer(body)
        return OllamaReply(fault=fault) if writer.calls[-1] == "draft" else reply

    harness.fakes.ollama.responder = failing_drafts
    worker = await harness.worker()
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "failed")

    expected = {
        "reset": "draft failed: the connection to Ollama broke off mid-answer after 3 tries; "
                 "check that Ollama is running and reachable",
        "http_500": "draft failed: Ollama answered HTTP 500 after 3 tries; check Ollama's log for why it failed",
    }
    assert task.error == expected[fault]
    assert harness.fakes.ollama.base_url not in task.error
    # The graph's retry policy, once: not a resume after every lease, each making three more calls.
    assert writer.calls.count("draft") == 3
    assert (task.run_count, task.resume_count) == (1, 0)


async def test_model_output_with_nul_and_lone_surrogates_is_stored_clean_and_the_run_completes(
    harness: Harness
) -> None:
    writer = harness.fakes.writer

    def with_unstorable_text(body: dict[str, Any]) -> OllamaReply:
        reply = writer(body)
        if writer.calls[-1] == "draft" and isinstance(reply.content, str):
            title, _, rest = reply.content.partition("\n")
            reply.content = title + "\x00\n" + rest.replace(".", ".\ud800", 1)
        if writer.calls[-1] == "score" and isinstance(reply.content, dict):
            reply.content = {**reply.content, "issues": ["The intro\x00 repeats the title word for word\udc00."]}
        return reply

    harness.fakes.ollama.responder = with_unstorable_text
    worker = await harness.worker()
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "completed", "failed")

    assert task.status == "completed", task.error
    stored = json.dumps([task.result, task.warnings])
    assert "\\u0000" not in stored and "\\ud800" not in stored and "\\udc00" not in stored
    assert task.result["title"] and "\ufffd" in task.result["markdown"]
    async with worker.runtime.sessions() as session:
        attempts = list(await session.scalars(select(Attempt).where(Attempt.task_id == task_id)))
    assert attempts and all("\x00" not in a.markdown and "\x00" not in a.title for a in attempts)
    assert "The intro repeats the title word for word\ufffd." in attempts[0].issues
    tokens = "".join(e.data["text"] for e in await worker.bus.history(task_id) if e.type == "token")
    assert tokens and "\x00" not in tokens


async def test_search_results_with_nul_are_stored_clean_whatever_the_model_did(harness: Harness) -> None:
    # Not model output: only the storage boundary stands between this text and the database.
    web = harness.fakes.serper.web
    web[0] = {**web[0], "title": "Async IO\x00 in Python", "snippet": "A firm grasp\ud800 of async IO."}
    worker = await harness.worker()
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "completed", "failed")

    assert task.status == "completed", task.error
    first = task.result["sources"][0]
    assert (first["title"], first["snippet"]) == ("Async IO in Python", "A firm grasp\ufffd of async IO.")


async def test_a_statement_the_database_refuses_fails_the_task_without_showing_the_sql(harness: Harness) -> None:
    def refused(save: OutcomeSaver) -> OutcomeSaver:
        async def save_refused(outcome: dict[str, Any]) -> None:
            async with harness_engine.connect() as connection:
                await connection.execute(text("INSERT INTO slug_counters (base, last) VALUES (:secret, NULL)"),
                                         {"secret": "not-a-number"})

        return save_refused

    harness_engine = create_engine(harness.database_url)
    harness.stack.push_async_callback(harness_engine.dispose)
    worker = await harness.worker(wrap_saver=refused)
    task_id = await queue_task(worker)

    task = await wait_for_status(worker, task_id, "failed")

    assert task.error is not None and task.error.startswith("finalize failed: the database refused to store its work (")
    assert "INSERT" not in task.error and "not-a-number" not in task.error
    assert task.resume_count == 0


async def test_graceful_stop_releases_leases_and_another_worker_finishes(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=30)
    first = await harness.worker("first", concurrency=2, shutdown_grace_seconds=0.2)
    task_ids = [await queue_task(first, f"{REQUEST} number {n}") for n in range(3)]
    await eventually(lambda: _drafting(first, 2), what="two runs drafting")

    await first.executor.stop()

    for task_id in task_ids:
        task = await load(first, task_id)
        assert task.status == "queued" and task.lease_owner is None and task.lease_expires_at is None
    assert first.executor.running_count == 0 and first.executor.stats.released_total == 2
    slow_calls(harness.fakes)
    second = await harness.worker("second")
    for task_id in task_ids:
        await wait_for_status(second, task_id, "completed")
    assert Counter(harness.fakes.writer.calls)["intent"] == 3  # route_intent never re-ran


async def test_graceful_stop_lets_the_running_node_finish_and_pauses_at_the_next_boundary(harness: Harness) -> None:
    slow_calls(harness.fakes, score=0.4)
    first = await harness.worker("first", shutdown_grace_seconds=10)
    task_id = await queue_task(first)
    await wait_for_event(first, task_id, "node_started", node="critique")

    started = time.monotonic()
    await first.executor.stop()

    assert time.monotonic() - started < 5  # paused after critique, not after the whole run
    task = await load(first, task_id)
    assert task.status == "queued" and task.lease_owner is None
    slow_calls(harness.fakes)
    second = await harness.worker("second")
    await wait_for_status(second, task_id, "completed")
    assert Counter(harness.fakes.writer.calls) == {"intent": 1, "plan": 1, "gaps": 1, "draft": 1, "score": 1}


# Several processes share one queue only on Postgres (SQLite is for a single process).
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_two_workers_on_one_postgres_run_each_task_exactly_once(harness: Harness) -> None:
    slow_calls(harness.fakes, intent=0.02, draft=0.02, score=0.02)
    one = await harness.worker("worker-1", start=False)
    two = await harness.worker("worker-2", start=False)
    task_ids = [await queue_task(one, f"{REQUEST} number {n}") for n in range(20)]

    await asyncio.gather(one.executor.start(), two.executor.start())
    for task_id in task_ids:
        await wait_for_status(one, task_id, "completed", timeout=30)

    async with one.runtime.sessions() as session:
        tasks = list(await session.scalars(select(Task).where(Task.id.in_(task_ids))))
    assert all(task.run_count == 1 for task in tasks)
    intents = Counter(_last_message(body) for body in harness.fakes.ollama.chat_requests
                      if (body.get("format") or {}).get("title") == "IntentChoice")
    assert len(intents) == 20 and set(intents.values()) == {1}
    assert one.executor.claimed_total + two.executor.claimed_total == 20
    assert one.executor.claimed_total > 0 and two.executor.claimed_total > 0


async def test_heartbeats_keep_a_run_longer_than_its_lease_away_from_other_workers(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=2.0)
    owner = await harness.worker("owner", lease_seconds=0.8, heartbeat_seconds=0.1)
    task_id = await queue_task(owner)
    await wait_for_event(owner, task_id, "node_started", node="draft")
    other = await harness.worker("other", lease_seconds=0.8, heartbeat_seconds=0.1)

    task = await wait_for_status(owner, task_id, "completed")

    assert task.run_count == 1 and other.executor.claimed_total == 0
    assert Counter(harness.fakes.writer.calls) == {"intent": 1, "plan": 1, "gaps": 1, "draft": 1, "score": 1}


async def test_run_whose_lease_was_taken_over_stops_here_without_touching_the_row(harness: Harness) -> None:
    slow_calls(harness.fakes, draft=30)
    worker = await harness.worker()
    task_id = await queue_task(worker)
    await wait_for_event(worker, task_id, "node_started", node="draft")

    await _set_lease(worker, task_id, owner="another-worker", expires_in=60, run_count=2)
    await eventually(lambda: _is_idle(worker), timeout=1, what="the run to stop")

    task = await load(worker, task_id)
    assert task.status == "running" and task.lease_owner == "another-worker"
    assert worker.executor.stats.lease_lost_total == 1
    statuses = [e.data["status"] for e in await worker.bus.history(task_id) if e.type == "status"]
    assert statuses == ["queued", "running"]


async def test_the_outcome_a_run_saves_leaves_the_status_to_the_end_of_the_run(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    task_id = await queue_task(worker)
    task = await load(worker, task_id)
    save = outcome_saver(WritePaths(worker.runtime.sessions), worker.runtime.renderer)

    await _set_lease(worker, task_id, owner="worker-a", expires_in=60)
    await save({"thread_id": task.thread_id, "task_id": task_id, "request": REQUEST, "params": {}, "intent": {},
                "result": {"title": "t"}, "attempts": [], "usage": [], "warnings": [], "model": "m", "provider": "p"})

    saved = await load(worker, task_id)
    assert saved.status == "running" and saved.result == {"title": "t"} and saved.lease_owner == "worker-a"


# -- helpers ------------------------------------------------------------------------------------


async def _is_idle(worker: Worker) -> bool:
    return worker.executor.running_count == 0


async def _drafting(worker: Worker, count: int) -> bool:
    """``count`` runs are in flight here and each has started its draft."""
    if worker.executor.running_count != count:
        return False
    started = 0
    for task_id in worker.executor.running_task_ids:
        started += sum(1 for e in await worker.bus.history(task_id) if e.type == "node_started" and e.data["node"] == "draft")
    return started >= count


async def _status_events_are(worker: Worker, task_id: str, count: int, status: str) -> bool:
    statuses = [e.data["status"] for e in await worker.bus.history(task_id) if e.type == "status"]
    return statuses.count(status) >= count and (await load(worker, task_id)).status == status


async def _crash_mid_graph(worker: Worker, task: Task, writer: ScriptedWriter, until_call: str) -> None:
    """Run the task's graph as a worker would and kill it abruptly once the model receives
    ``until_call``: no clean-up of any kind runs, as with kill -9."""
    runtime = worker.runtime
    context = DraftloopContext(deps=runtime.deps)
    config = {"configurable": {"thread_id": task.thread_id}}
    graph_input = {"messages": [HumanMessage(task.request)], "request": dict(task.params)}

    async def drive() -> None:
        async for _ in runtime.graph.astream(graph_input, config, context=context, durability="sync"):
            pass

    async def model_called() -> bool:
        return until_call in writer.calls

    run = asyncio.create_task(drive())
    await eventually(model_called, what=f"the {until_call} call")
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def _set_lease(worker: Worker, task_id: str, *, owner: str, expires_in: float, run_count: int = 1) -> None:
    """Make the row look claimed by ``owner`` with a lease ending ``expires_in`` seconds from now."""
    async with worker.runtime.sessions.begin() as session:
        await session.execute(update(Task).where(Task.id == task_id).values(
            status="running", lease_owner=owner, lease_expires_at=utcnow() + timedelta(seconds=expires_in),
            run_count=run_count))


def _last_message(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else ""
