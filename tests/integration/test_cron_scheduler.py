"""The cron scheduler over real SQLite and Postgres: a due tick is queued once however many
schedulers look at it, missed ticks after downtime fire once, a thread cron runs on its thread,
and a stateless cron's finished thread is deleted. Time is passed in, so no test waits for a
schedule; the dispatchers are not started, so the queued runs only need to exist."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from app.engine.scheduler import CronScheduler
from app.http.cron_schemas import CronCreate, ThreadCronCreate
from app.http.crons import cron_columns
from storage.assistants import AssistantRepository
from storage.crons import CronRepository
from storage.models import Assistant, AssistantVersion, Cron, Task, TaskStatus, Thread
from storage.threads import ThreadRepository
from tests.integration import test_executor
from tests.integration.test_executor import Harness, Worker

ASSISTANT_ID = "10fe4994-a5f9-58ca-8ce0-9df32262dd84"
# An assistant's columns (storage/assistants.py's VERSIONED) but its defaults.
ASSISTANT: dict[str, Any] = {"graph_id": "draftloop", "name": "LinkedIn writer", "meta": {}, "config": {}}
START = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)

# The executor tests' harness: workers (runtime, bus, dispatcher) over one database.
harness = test_executor.harness


def scheduler(worker: Worker) -> CronScheduler:
    return CronScheduler(worker.runtime, worker.executor.commands, poll_seconds=60)


async def add_cron(worker: Worker, schedule: str = "*/5 * * * *", thread_id: str | None = None,
                   **fields: Any) -> Cron:
    body = {"assistant_id": ASSISTANT_ID, "schedule": schedule,
            "input": {"messages": [{"role": "user", "content": "a post"}]}, **fields}
    request = ThreadCronCreate.model_validate(body) if thread_id else CronCreate.model_validate(body)
    columns = await cron_columns(request, thread_id, None, set(worker.runtime.graph.nodes))
    columns["next_run_date"] = START
    async with worker.runtime.sessions.begin() as session:
        return await CronRepository(session).create(**columns)


async def runs_of(worker: Worker, cron_id: str) -> list[Task]:
    async with worker.runtime.sessions() as session:
        rows = await session.scalars(select(Task).where(Task.kind == "run").order_by(Task.created_at))
        return [task for task in rows if (task.config or {}).get("configurable", {}).get("cron_id") == cron_id]


async def reload(worker: Worker, cron_id: str) -> Cron:
    async with worker.runtime.sessions() as session:
        cron = await CronRepository(session).get(cron_id)
    assert cron is not None
    return cron


async def test_ticks_missed_during_downtime_fire_once_and_the_next_is_after_now(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    cron = await add_cron(worker)
    # Three ticks (12:00, 12:05, 12:10) passed with no scheduler running.
    now = START + timedelta(minutes=12)
    assert await scheduler(worker).tick(now) == 1
    assert await scheduler(worker).tick(now) == 0
    runs = await runs_of(worker, cron.cron_id)
    assert len(runs) == 1 and runs[0].status == TaskStatus.QUEUED.value
    assert (await reload(worker, cron.cron_id)).next_run_date == START + timedelta(minutes=15)


async def test_two_schedulers_on_one_database_queue_a_due_tick_once(harness: Harness) -> None:
    first, second = await harness.worker("a", start=False), await harness.worker("b", start=False)
    crons = [await add_cron(first) for _ in range(5)]
    now = START + timedelta(seconds=1)
    await asyncio.gather(scheduler(first).tick(now), scheduler(second).tick(now))
    for cron in crons:
        assert len(await runs_of(first, cron.cron_id)) == 1
    # The next tick, five minutes on, is queued once again.
    later = START + timedelta(minutes=5, seconds=1)
    await asyncio.gather(scheduler(first).tick(later), scheduler(second).tick(later))
    assert [len(await runs_of(first, cron.cron_id)) for cron in crons] == [2] * 5


async def test_a_thread_cron_runs_on_its_thread_and_a_stateless_one_on_a_new_thread_each_tick(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    async with worker.runtime.sessions.begin() as session:
        thread = await ThreadRepository(session).create(metadata={"owner": "cron-test"})
    on_thread = await add_cron(worker, thread_id=thread.thread_id)
    stateless = await add_cron(worker, metadata={"team": "blue"})
    await scheduler(worker).tick(START)
    await scheduler(worker).tick(START + timedelta(minutes=5))
    assert {run.thread_id for run in await runs_of(worker, on_thread.cron_id)} == {thread.thread_id}
    new_threads = {run.thread_id for run in await runs_of(worker, stateless.cron_id)}
    assert len(new_threads) == 2 and thread.thread_id not in new_threads
    async with worker.runtime.sessions() as session:
        made = await ThreadRepository(session).get(new_threads.pop())
    assert made is not None and made.meta["cron_id"] == stateless.cron_id and made.meta["team"] == "blue"


async def test_a_cron_past_its_end_time_stops_and_a_disabled_one_never_fires(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    ending = await add_cron(worker, end_time=(START + timedelta(minutes=3)).isoformat())
    disabled = await add_cron(worker, enabled=False)
    await scheduler(worker).tick(START + timedelta(seconds=1))
    assert len(await runs_of(worker, ending.cron_id)) == 1
    assert (await reload(worker, ending.cron_id)).next_run_date is None
    assert await scheduler(worker).tick(START + timedelta(hours=1)) == 0
    assert await runs_of(worker, disabled.cron_id) == []


async def test_the_thread_of_a_finished_stateless_run_is_deleted_unless_the_cron_keeps_it(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    deleting = await add_cron(worker)
    keeping = await add_cron(worker, on_run_completed="keep")
    await scheduler(worker).tick(START)
    [deleted_run], [kept_run] = await runs_of(worker, deleting.cron_id), await runs_of(worker, keeping.cron_id)
    await scheduler(worker).sweep_finished_threads()
    async with worker.runtime.sessions() as session:
        # Still queued: the thread is busy and stays.
        assert await session.get(Thread, deleted_run.thread_id) is not None
    for run in (deleted_run, kept_run):
        async with worker.runtime.sessions.begin() as session:
            await ThreadRepository(session).after_run(run.thread_id, run.id, TaskStatus.COMPLETED)
    await scheduler(worker).sweep_finished_threads()
    async with worker.runtime.sessions() as session:
        assert await session.get(Thread, deleted_run.thread_id) is None
        assert await session.get(Thread, kept_run.thread_id) is not None
        assert await session.scalar(select(func.count()).select_from(Cron)) == 2


async def test_a_cron_whose_run_cannot_be_queued_skips_its_tick_and_the_others_still_fire(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    broken, healthy = await add_cron(worker), await add_cron(worker)
    async with worker.runtime.sessions.begin() as session:
        # A stored run no run row takes (a column that does not exist): queueing it raises.
        await CronRepository(session).update(broken.cron_id, run={**broken.run, "no_such_column": 1})
    await scheduler(worker).tick(START + timedelta(seconds=1))
    assert await runs_of(worker, broken.cron_id) == []
    assert len(await runs_of(worker, healthy.cron_id)) == 1
    assert (await reload(worker, broken.cron_id)).next_run_date == START + timedelta(minutes=5)


async def test_deleting_a_thread_deletes_the_crons_scheduled_on_it(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    async with worker.runtime.sessions.begin() as session:
        thread = await ThreadRepository(session).create()
    on_thread, elsewhere = await add_cron(worker, thread_id=thread.thread_id), await add_cron(worker)
    async with worker.runtime.sessions.begin() as session:
        await ThreadRepository(session).delete(thread.thread_id)
    async with worker.runtime.sessions() as session:
        assert await CronRepository(session).get(on_thread.cron_id) is None
        assert await CronRepository(session).get(elsewhere.cron_id) is not None


async def test_each_tick_runs_with_the_assistants_current_defaults_and_the_creators_memory(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    async with worker.runtime.sessions.begin() as session:
        assistants = AssistantRepository(session)
        writer = await assistants.create(str(uuid.uuid4()), {**ASSISTANT, "context": {"platform": "linkedin",
                                                                                      "tone": "casual"}})
    cron = await add_cron(worker, assistant_id=writer.assistant_id, context={"tone": "academic"})
    async with worker.runtime.sessions.begin() as session:
        cron = await CronRepository(session).get(cron.cron_id)
        assert cron is not None
        cron.user_id = "editor-1"
    await scheduler(worker).tick(START)
    async with worker.runtime.sessions.begin() as session:
        assistants = AssistantRepository(session)
        stored = await assistants.get(writer.assistant_id, for_update=True)
        assert stored is not None
        await assistants.add_version(stored, {**ASSISTANT, "context": {"platform": "x", "audience": "founders"}})
    await scheduler(worker).tick(START + timedelta(minutes=5))
    first, second = await runs_of(worker, cron.cron_id)
    # The cron's own context wins over the assistant's; the second tick sees the new version.
    assert first.context == {"platform": "linkedin", "tone": "academic"}
    assert second.context == {"platform": "x", "audience": "founders", "tone": "academic"}
    assert {run.assistant_id for run in (first, second)} == {writer.assistant_id}
    assert first.config["configurable"]["langgraph_auth_user_id"] == "editor-1"


async def test_a_cron_goes_with_its_assistant_and_one_whose_assistant_is_gone_goes_at_its_next_tick(
        harness: Harness) -> None:
    worker = await harness.worker(start=False)
    async with worker.runtime.sessions.begin() as session:
        deleted = await AssistantRepository(session).create(str(uuid.uuid4()), ASSISTANT)
        vanished = await AssistantRepository(session).create(str(uuid.uuid4()), ASSISTANT)
    with_deleted = await add_cron(worker, assistant_id=deleted.assistant_id)
    with_vanished = await add_cron(worker, assistant_id=vanished.assistant_id)
    async with worker.runtime.sessions.begin() as session:
        await AssistantRepository(session).delete(deleted.assistant_id)
        assert await CronRepository(session).get(with_deleted.cron_id) is None
        # A row gone some other way (by hand, or a delete racing the cron's creation).
        await session.execute(delete(AssistantVersion).where(AssistantVersion.assistant_id == vanished.assistant_id))
        await session.execute(delete(Assistant).where(Assistant.assistant_id == vanished.assistant_id))
    await scheduler(worker).tick(START)
    assert await runs_of(worker, with_vanished.cron_id) == []
    async with worker.runtime.sessions() as session:
        assert await CronRepository(session).get(with_vanished.cron_id) is None


async def test_a_ticks_run_calls_its_assistants_webhook_unless_the_cron_has_its_own(harness: Harness) -> None:
    worker = await harness.worker(start=False)
    async with worker.runtime.sessions.begin() as session:
        hooked = await AssistantRepository(session).create(
            str(uuid.uuid4()), {**ASSISTANT, "context": {"webhook": "https://hooks.example.com/assistant"}})
    plain = await add_cron(worker, assistant_id=hooked.assistant_id)
    own = await add_cron(worker, assistant_id=hooked.assistant_id, webhook="https://hooks.example.com/cron")
    await scheduler(worker).tick(START)
    [from_assistant] = await runs_of(worker, plain.cron_id)
    [from_cron] = await runs_of(worker, own.cron_id)
    assert from_assistant.webhook == "https://hooks.example.com/assistant"
    assert from_cron.webhook == "https://hooks.example.com/cron"
    # A default run setting it is not: the graph's context never sees it.
    assert "webhook" not in (from_assistant.context or {})
