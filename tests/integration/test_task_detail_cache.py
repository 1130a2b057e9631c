"""GET /api/tasks/{id} served from memory (app.task_cache) never hides a change: one made by
another process arrives as a notification, one made through this process is forgotten before
its response. The cache's TTL is set far beyond the tests, so only that invalidation can make
them pass. SQLite has no notifications: there every GET reads the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from litestar import Litestar

from app.events import STATUS, EventBus
from app.http.app import create_app
from app.settings import ServiceSettings
from storage.engine import create_engine, session_factory
from storage.repositories import TaskRepository
from tests.asgi import serve_in_loop
from tests.auth import TEST_SECRET, admin_headers, ensure_user

REQUEST = {"request": "A 300-word blog post on async Python"}


@dataclass
class Api:
    app: Litestar
    client: httpx.AsyncClient
    database_url: str


@pytest.fixture
async def api(migrated_database_url: str) -> AsyncIterator[Api]:
    await ensure_user(migrated_database_url)
    # role api: nothing runs here, so a task changes only when a test changes it.
    app = create_app(ServiceSettings(database_url=migrated_database_url, role="api", secret_key=TEST_SECRET,
                                     task_cache_seconds=60))
    async with serve_in_loop(app) as client:
        client.headers.update(admin_headers())
        yield Api(app, client, migrated_database_url)


async def _queued_task(api: Api) -> str:
    response = await api.client.post("/api/tasks", json=REQUEST)
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def _status(api: Api, task_id: str) -> str:
    response = await api.client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def _wait_until_listening(api: Api, backend: str) -> None:
    """On Postgres the cache serves only once the notification connection is up."""
    if backend != "postgres":
        return
    deadline = time.monotonic() + 10
    while not api.app.state["task_cache"].enabled:
        assert time.monotonic() < deadline, "the notification listener never connected"
        await asyncio.sleep(0.02)


async def test_a_change_written_by_another_process_shows_on_the_next_get(api: Api, backend: str) -> None:
    await _wait_until_listening(api, backend)
    task_id = await _queued_task(api)
    assert [await _status(api, task_id) for _ in range(3)] == ["queued"] * 3
    cache = api.app.state["task_cache"]
    assert cache.hits == (2 if backend == "postgres" else 0)

    # Another process (a worker) cancels it: its own engine and event bus, as in a worker.
    engine = create_engine(api.database_url)
    try:
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            assert await TaskRepository(session).cancel(task_id)
            await EventBus(sessions).record(session, task_id, STATUS, {"status": "cancelled"})
    finally:
        await engine.dispose()

    if backend == "sqlite":
        assert await _status(api, task_id) == "cancelled"
        return
    deadline = time.monotonic() + 5
    while (status := await _status(api, task_id)) != "cancelled":
        assert time.monotonic() < deadline, f"still {status!r}: the notification did not drop the cached body"
        await asyncio.sleep(0.02)


async def test_a_cancel_through_the_api_shows_on_the_get_right_after_it(api: Api, backend: str) -> None:
    await _wait_until_listening(api, backend)
    task_id = await _queued_task(api)
    assert [await _status(api, task_id) for _ in range(2)] == ["queued"] * 2

    response = await api.client.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200, response.text

    assert await _status(api, task_id) == "cancelled"


async def test_an_unknown_task_is_a_404_every_time(api: Api, backend: str) -> None:
    await _wait_until_listening(api, backend)
    missing = "00000000-0000-4000-8000-000000000000"
    for _ in range(2):
        response = await api.client.get(f"/api/tasks/{missing}")
        assert response.status_code == 404 and missing in response.json()["detail"]
