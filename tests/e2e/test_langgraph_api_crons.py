"""Scheduled runs (crons) through the real langgraph-sdk client against the module's server on
SQLite and Postgres: create, read, search, count, update and delete them, refusals that name the
field, and ticks that queue runs on a thread or on new threads (the server's scheduler looks
every second; schedules here tick every two seconds, cron's sixth field)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module's server per backend and its fixtures
    ASSISTANT_ID,
    REQUEST,
    Service,
    client,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

EVERY_TWO_SECONDS = "* * * * * */2"
# Each tick's run stops before its first node: the ticks are what is tested, not the graph.
PAUSED = {"interrupt_before": ["route_intent"]}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_info_says_crons_are_served(service: Service) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=service.url) as http:
        assert (await http.get("/info")).json()["flags"]["crons"] is True


async def test_a_cron_is_created_read_searched_counted_updated_and_deleted(client: LangGraphClient) -> None:  # noqa: F811
    tag = {"suite": uuid.uuid4().hex}
    end = datetime.now(UTC) + timedelta(days=30)
    cron = await client.crons.create(ASSISTANT_ID, schedule="0 9 * * 1", input=human(REQUEST), metadata=tag,
                                     timezone="Europe/Paris", end_time=end)
    assert cron["thread_id"] is None and cron["on_run_completed"] == "delete" and cron["enabled"] is True
    assert cron["assistant_id"] == ASSISTANT_ID and cron["timezone"] == "Europe/Paris"
    assert cron["payload"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    # Monday 09:00 in Paris is 08:00 or 07:00 UTC, depending on the season.
    next_run = datetime.fromisoformat(str(cron["next_run_date"]))
    assert next_run.weekday() == 0 and next_run.hour in (7, 8) and next_run > datetime.now(UTC)
    second = await client.crons.create(ASSISTANT_ID, schedule="*/5 * * * *", metadata=tag, enabled=False)

    found = await client.crons.search(metadata=tag, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in found] == [cron["cron_id"], second["cron_id"]]
    assert [c["cron_id"] for c in await client.crons.search(metadata=tag, enabled=False)] == [second["cron_id"]]
    assert await client.crons.search(metadata=tag, select=["cron_id", "schedule"], limit=1, sort_order="asc") == [
        {"cron_id": cron["cron_id"], "schedule": "0 9 * * 1"}]
    assert await client.crons.count(metadata=tag) == 2

    updated = await client.crons.update(cron["cron_id"], schedule="30 6 * * *", timezone="UTC", enabled=False,
                                        end_time=None)
    assert updated["schedule"] == "30 6 * * *" and updated["enabled"] is False and updated["end_time"] is None
    next_run = datetime.fromisoformat(str(updated["next_run_date"]))
    assert (next_run.hour, next_run.minute) == (6, 30)
    assert updated["payload"]["input"] == human(REQUEST)

    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(metadata=tag) == 1
    await client.crons.delete(second["cron_id"])


async def test_creating_updating_and_deleting_a_cron_is_in_the_audit_trail(
    client: LangGraphClient, service: Service  # noqa: F811
) -> None:
    cron = await client.crons.create(ASSISTANT_ID, schedule="0 9 * * *")
    await client.crons.update(cron["cron_id"], enabled=False)
    await client.crons.delete(cron["cron_id"])

    async def trail() -> list[str]:
        async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
            response = await http.get("/api/audit", params={"resource_id": cron["cron_id"]})
        assert response.status_code == 200, response.text
        return sorted(entry["action"] for entry in response.json()["items"])

    async def recorded() -> bool:
        return len(await trail()) == 3

    await eventually(recorded, "three audit entries")
    assert await trail() == ["cron.create", "cron.delete", "cron.update"]


async def test_bad_cron_requests_are_422s_or_404s_naming_what_is_wrong(
    client: LangGraphClient, service: Service  # noqa: F811
) -> None:
    with pytest.raises(UnprocessableEntityError, match="schedule"):
        await client.crons.create(ASSISTANT_ID, schedule="every monday")
    with pytest.raises(UnprocessableEntityError, match="timezone"):
        await client.crons.create(ASSISTANT_ID, schedule="0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(UnprocessableEntityError, match="interrupt_before"):
        await client.crons.create(ASSISTANT_ID, schedule="0 9 * * *", interrupt_before=["nowhere"])
    # This server has no WEBHOOK_SECRET: any webhook is refused (tests/e2e/test_webhooks.py has
    # one that signs, and the URL rules).
    with pytest.raises(UnprocessableEntityError, match="WEBHOOK_SECRET"):
        await client.crons.create(ASSISTANT_ID, schedule="0 9 * * *", webhook="https://hooks.example/cron")
    with pytest.raises(NotFoundError):
        await client.crons.create("no-such-assistant", schedule="0 9 * * *")
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(str(uuid.uuid4()), ASSISTANT_ID, schedule="0 9 * * *")
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        missing = await http.get(f"/runs/crons/{uuid.uuid4()}")
        empty_patch = await http.patch(f"/runs/crons/{uuid.uuid4()}", json={})
        bad_end = await http.post("/runs/crons", json={"assistant_id": ASSISTANT_ID, "schedule": "0 9 * * *",
                                                        "end_time": "next tuesday"})
    assert missing.status_code == 404
    assert empty_patch.status_code in (404, 422)
    assert bad_end.status_code == 422 and "end_time" in bad_end.text


async def test_a_thread_cron_queues_a_run_on_its_thread_each_tick_until_deleted(
    client: LangGraphClient  # noqa: F811
) -> None:
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(thread["thread_id"], ASSISTANT_ID, schedule=EVERY_TWO_SECONDS,
                                                input=human(REQUEST), **PAUSED)
    assert cron["thread_id"] == thread["thread_id"] and cron["on_run_completed"] is None

    async def two_runs() -> bool:
        return len(await client.runs.list(thread["thread_id"])) >= 2

    await eventually(two_runs, "two ticks' runs on the thread")
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread["thread_id"])] == [cron["cron_id"]]
    await client.crons.delete(cron["cron_id"])
    after_delete = len(await client.runs.list(thread["thread_id"], limit=100))
    await asyncio.sleep(3)
    assert len(await client.runs.list(thread["thread_id"], limit=100)) == after_delete


async def test_a_stateless_cron_runs_each_tick_on_a_new_thread_named_after_it(
    client: LangGraphClient  # noqa: F811
) -> None:
    cron = await client.crons.create(ASSISTANT_ID, schedule=EVERY_TWO_SECONDS, input=human(REQUEST),
                                     on_run_completed="keep", metadata={"team": "blue"}, **PAUSED)

    async def threads() -> list[dict[str, Any]]:
        return list(await client.threads.search(metadata={"cron_id": cron["cron_id"]}))

    async def two_threads() -> bool:
        return len(await threads()) >= 2

    try:
        await eventually(two_threads, "two ticks' threads")
    finally:
        await client.crons.delete(cron["cron_id"])
    made = await threads()
    assert all(t["metadata"]["team"] == "blue" for t in made)
    runs = await client.runs.list(made[0]["thread_id"])
    assert len(runs) == 1 and runs[0]["kwargs"]["input"] == human(REQUEST)
