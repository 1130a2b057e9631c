"""The webhook outbox in the database (SQLite and Postgres, and on Postgres both write paths of
end_run): a delivery goes in with the run's end or not at all, one deliverer holds it at a time,
and each attempt says what comes next."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.leases import LeaseRepository, end_run
from storage.models import DeliveryStatus, TaskStatus, utcnow
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL
from storage.tasks import TaskRepository, queue_new_task
from storage.webhooks import DeliveryRepository, PlannedDelivery
from storage.write_paths import WritePaths

WORKER = "worker-a"
HOOK = PlannedDelivery("https://hooks.example.com/run", {"run_id": "r", "status": "success"})


@pytest.fixture(params=["one-statement", "session"])
def paths(request: pytest.FixtureRequest, write_paths: WritePaths) -> WritePaths:
    if request.param == "one-statement" and write_paths.one_statement is None:
        pytest.skip("SQLite has only the session path")
    return write_paths if request.param == "one-statement" else write_paths.session_only()


async def _taken(paths: WritePaths, webhook: str | None = "https://hooks.example.com/run") -> str:
    queued = await queue_new_task(paths.session_only(), request="a post", params={}, thread_metadata={},
                                  event_type="status", event_data={"status": "queued"}, notify_channel=QUEUE_CHANNEL,
                                  webhook=webhook)
    async with paths.sessions.begin() as session:
        assert await LeaseRepository(session).take(queued.task.id, WORKER, 60.0)
    return queued.task.id


async def _end(paths: WritePaths, task_id: str, worker: str = WORKER) -> bool:
    ended = await end_run(paths, task_id=task_id, thread_id=task_id, worker_id=worker, status=TaskStatus.COMPLETED,
                          error=None, events=[("status", {"status": "completed"})], channel=TASK_CHANNEL, webhook=HOOK)
    return ended.ended


async def _deliveries(sessions: async_sessionmaker[AsyncSession], task_id: str) -> list[tuple[str, str, dict[str, str]]]:
    async with sessions() as session:
        return [(d.url, d.status, d.body) for d in await DeliveryRepository(session).of_task(task_id)]


async def test_a_run_end_writes_its_webhook_delivery_with_it(paths: WritePaths) -> None:
    task_id = await _taken(paths)
    async with paths.sessions() as session:
        assert (await TaskRepository(session).require(task_id)).webhook == "https://hooks.example.com/run"
    assert await _end(paths, task_id)
    assert await _deliveries(paths.sessions, task_id) == [(HOOK.url, "pending", HOOK.body)]


async def test_an_end_by_a_worker_that_lost_the_task_writes_no_delivery(paths: WritePaths) -> None:
    task_id = await _taken(paths)
    assert not await _end(paths, task_id, worker="worker-b")
    assert await _deliveries(paths.sessions, task_id) == []


async def test_a_claimed_delivery_is_sent_by_its_holder_alone_until_its_lease_runs_out(paths: WritePaths) -> None:
    task_id = await _taken(paths)
    assert await _end(paths, task_id)
    now = utcnow()
    async with paths.sessions.begin() as session:
        [held] = await DeliveryRepository(session).claim("sender-a", 10, 30.0, now=now)
    async with paths.sessions.begin() as session:
        assert await DeliveryRepository(session).claim("sender-b", 10, 30.0, now=now) == []
    async with paths.sessions.begin() as session:
        [taken_over] = await DeliveryRepository(session).claim("sender-b", 10, 30.0, now=now + timedelta(seconds=31))
    assert taken_over.id == held.id
    async with paths.sessions.begin() as session:
        # The first holder's late answer is not recorded over the new holder's.
        assert not await DeliveryRepository(session).record_attempt(
            held.id, "sender-a", started_at=now, duration_ms=5, status_code=200, error=None,
            outcome=DeliveryStatus.DELIVERED, retry_at=None)


async def test_a_failed_attempt_schedules_the_next_and_a_later_success_delivers(paths: WritePaths) -> None:
    task_id = await _taken(paths)
    assert await _end(paths, task_id)
    now = utcnow()
    retry_at = now + timedelta(seconds=60)
    async with paths.sessions.begin() as session:
        [delivery] = await DeliveryRepository(session).claim("sender-a", 10, 30.0, now=now)
        assert await DeliveryRepository(session).record_attempt(
            delivery.id, "sender-a", started_at=now, duration_ms=7, status_code=500, error="answered 500",
            outcome=DeliveryStatus.PENDING, retry_at=retry_at)
    async with paths.sessions.begin() as session:
        assert await DeliveryRepository(session).claim("sender-a", 10, 30.0, now=now + timedelta(seconds=1)) == []
        [again] = await DeliveryRepository(session).claim("sender-a", 10, 30.0, now=retry_at + timedelta(seconds=1))
        assert await DeliveryRepository(session).record_attempt(
            again.id, "sender-a", started_at=now, duration_ms=3, status_code=200, error=None,
            outcome=DeliveryStatus.DELIVERED, retry_at=None)
    async with paths.sessions() as session:
        page = await DeliveryRepository(session).list(task_id=task_id)
    [listed] = page.items
    assert (listed.status, listed.attempt_count, listed.delivered_at is not None) == ("delivered", 2, True)
    assert [(a.number, a.status_code, a.error) for a in listed.attempts] == [(1, 500, "answered 500"), (2, 200, None)]
