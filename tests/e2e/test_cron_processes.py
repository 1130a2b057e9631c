"""Scheduled runs across server processes on one Postgres: each tick of a cron is queued by
exactly one of them, the schedule survives a `kill -9` of one, and ticks missed while no
process ran fire once when one comes back, not once per missed tick."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from storage.engine import create_engine
from storage.models import Task
from tests.e2e.test_service_process import (  # noqa: F401 - fixtures
    database_url,
    http,
    launcher,
    postgres_database,
    postgres_test_database,
)
from tests.service_process import ServiceLauncher

pytestmark = [pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)]),
              pytest.mark.timeout(240)]

ASSISTANT_ID = "10fe4994-a5f9-58ca-8ce0-9df32262dd84"
TICK_SECONDS = 2
# Every two seconds (cron's sixth field is the second); each run stops before its first node.
CRON = {"assistant_id": ASSISTANT_ID, "schedule": "* * * * * */2", "interrupt_before": ["route_intent"],
        "input": {"messages": [{"role": "user", "content": "a post"}]}}
# Polls five times a tick, so a run is queued well within its tick.
FAST_CRONS = {"CRON_POLL_SECONDS": "0.2"}


async def run_times(database_url: str, thread_id: str) -> list[datetime]:  # noqa: F811 - the imported fixture
    """When each run on the thread was queued, read from the database (whether or not a server runs)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Task.created_at).where(Task.thread_id == thread_id))
            return sorted(row[0] for row in rows)
    finally:
        await engine.dispose()


def gaps(times: list[datetime]) -> list[float]:
    return [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]


async def test_two_processes_queue_each_tick_once_survive_a_kill_and_catch_up_once_after_downtime(
    launcher: ServiceLauncher, http: httpx.AsyncClient, database_url: str,  # noqa: F811 - the imported fixtures
) -> None:
    first = await launcher.start("cron-a", **FAST_CRONS)
    second = await launcher.start("cron-b", **FAST_CRONS)
    thread = (await http.post(f"{first.url}/threads", json={})).json()
    created = await http.post(f"{first.url}/threads/{thread['thread_id']}/runs/crons", json=CRON)
    assert created.status_code == 200, created.text

    await asyncio.sleep(4 * TICK_SECONDS)
    await first.kill()
    killed_at = len(await run_times(database_url, thread["thread_id"]))
    await asyncio.sleep(4 * TICK_SECONDS)
    await second.kill()
    times = await run_times(database_url, thread["thread_id"])
    # One run a tick while both ran and after one was killed: a second process queueing the
    # same tick would leave two runs a fraction of a second apart.
    assert min(gaps(times)) > TICK_SECONDS / 2, f"a tick was queued twice: {times}\n{launcher.describe()}"
    assert 6 <= len(times) <= 9, times
    assert len(times) - killed_at >= 3, "the surviving process stopped queueing ticks"

    # Four ticks fall while no process runs; then one starts and its first pass finds them due.
    await asyncio.sleep(4 * TICK_SECONDS)
    third = await launcher.start("cron-c", **FAST_CRONS)
    await asyncio.sleep(TICK_SECONDS / 2)
    after = (await run_times(database_url, thread["thread_id"]))[len(times):]
    assert after, "no run after the downtime"
    # Fired once per missed tick, the first pass would queue four runs within milliseconds.
    burst = [t for t in after if (t - after[0]).total_seconds() < TICK_SECONDS / 4]
    assert len(burst) <= 2, f"missed ticks fired once each: {after}"
    cron = (await http.get(f"{third.url}/runs/crons/{created.json()['cron_id']}")).json()
    assert datetime.fromisoformat(cron["next_run_date"]) > after[0]
