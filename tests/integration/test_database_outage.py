"""The service in the test's loop (httpx.ASGITransport) on Postgres behind a loopback proxy
(tests/db_proxy.py) that the test takes away: every database-backed route answers 503 with
Retry-After while the database is unreachable, /ready says which check failed, and once it is
back the same routes answer as usual, the first request included (no stale pooled connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.http.app import create_app
from app.http.errors import DATABASE_UNAVAILABLE
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_SECRET, admin_headers, ensure_user
from storage.engine import create_autocommit_engine, create_engine
from tests.asgi import serve_in_loop
from tests.db_proxy import DatabaseProxy
from tests.integration.test_task_api import POST, point_env_at_fakes

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

FAST = dict(concurrency=2, lease_seconds=3.0, heartbeat_seconds=0.2, poll_seconds=0.05,
            sse_heartbeat_seconds=0.2, shutdown_grace_seconds=0.5, secret_key=TEST_SECRET,
            # Every request asks the database who its token belongs to.
            auth_cache_seconds=0.0,
            # The API process of `serve --workers N`: no run loop of its own whose polls would
            # notice a dead connection before a request does.
            role="api")
OUTAGE_SECONDS = 1.0


def database_routes(task_id: str, thread_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """A request on each resource that reads or writes the database or the checkpointer."""
    return [
        ("POST", "/api/tasks", POST),
        ("GET", "/api/tasks", None),
        ("GET", f"/api/tasks/{task_id}", None),
        ("GET", f"/api/tasks/{task_id}/attempts", None),
        ("POST", f"/api/tasks/{task_id}/cancel", {}),
        ("GET", "/api/posts", None),
        ("GET", "/api/settings", None),
        ("GET", "/api/audit", None),
        ("GET", f"/api/tasks/{task_id}/events", None),
        ("POST", "/threads", {}),
        ("GET", f"/threads/{thread_id}/state", None),
        ("POST", f"/threads/{thread_id}/history", {}),
        ("POST", "/threads/search", {}),
    ]


@pytest.fixture
async def proxied_api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                      tmp_path: Any) -> AsyncIterator[tuple[httpx.AsyncClient, DatabaseProxy]]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url)
    async with DatabaseProxy(migrated_database_url) as proxy:
        app = create_app(ServiceSettings(database_url=proxy.url, worker_id="outage-worker", **FAST))
        async with serve_in_loop(app) as client:
            client.headers.update(admin_headers())
            yield client, proxy
            # Shut-down hands tasks back through the database: let it reach one.
            await proxy.restore()


async def send(client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
    return await client.request(method, path, json=body) if body is not None else await client.request(method, path)


async def test_every_database_route_answers_503_with_retry_after_while_postgres_is_unreachable(
    proxied_api: tuple[httpx.AsyncClient, DatabaseProxy]
) -> None:
    client, proxy = proxied_api
    created = await client.post("/api/tasks", json=POST)
    assert created.status_code == 202, created.text
    thread = await client.post("/threads", json={})
    assert thread.status_code == 200, thread.text
    routes = database_routes(created.json()["id"], thread.json()["thread_id"])

    await proxy.take_down()
    answers = {f"{method} {path}": await send(client, method, path, body) for method, path, body in routes}

    wrong = {route: (r.status_code, r.text[:200]) for route, r in answers.items() if r.status_code != 503}
    assert not wrong
    for response in answers.values():
        assert int(response.headers["Retry-After"]) >= 1
        body = response.json()
        assert (body["status"], body["error"]) == (503, "unavailable")
        # For users: what happened and what to do, no driver's words.
        assert body["detail"] == DATABASE_UNAVAILABLE
    # Probes send no token (with one, the token check would answer first).
    del client.headers["Authorization"]
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["ok"] is False


async def test_a_request_with_an_api_key_answers_503_while_postgres_is_unreachable(
    proxied_api: tuple[httpx.AsyncClient, DatabaseProxy]
) -> None:
    client, proxy = proxied_api
    created = await client.post("/api/keys", json={"name": "outage"})
    assert created.status_code == 201, created.text
    # The token would win over the key: send the key alone.
    del client.headers["Authorization"]
    await proxy.take_down()
    response = await client.get("/api/tasks", headers={"X-Api-Key": created.json()["key"]})
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == DATABASE_UNAVAILABLE


async def test_the_first_requests_after_postgres_returns_succeed(
    proxied_api: tuple[httpx.AsyncClient, DatabaseProxy]
) -> None:
    client, proxy = proxied_api
    # Fill the pools with connections that the outage will cut.
    for _ in range(3):
        assert (await client.get("/api/tasks")).status_code == 200
    thread = await client.post("/threads", json={})
    assert thread.status_code == 200, thread.text

    # Gone and back before any request notices: the pooled connections are dead, unknown to the pools.
    await proxy.take_down()
    await asyncio.sleep(OUTAGE_SECONDS)
    await proxy.restore()

    created = await client.post("/api/tasks", json=POST)
    assert created.status_code == 202, created.text
    routes = database_routes(created.json()["id"], thread.json()["thread_id"])
    answers = {f"{method} {path}": await send(client, method, path, body) for method, path, body in routes}
    failed = {route: (r.status_code, r.text[:200]) for route, r in answers.items() if r.status_code >= 400}
    assert not failed


@pytest.mark.parametrize("autocommit", [False, True], ids=["engine", "autocommit_engine"])
async def test_a_pool_replaces_connections_that_an_outage_closed_before_handing_them_out(
    migrated_database_url: str, autocommit: bool
) -> None:
    async with DatabaseProxy(migrated_database_url) as proxy:
        engine = create_autocommit_engine(proxy.url) if autocommit else create_engine(proxy.url)
        assert engine is not None
        try:
            await fill_pool(engine, 3)
            await proxy.take_down()
            await asyncio.sleep(OUTAGE_SECONDS)
            await proxy.restore()

            # Every pooled connection is dead; each checkout must get a live one.
            assert await fill_pool(engine, 3) == [1, 1, 1]
        finally:
            await engine.dispose()


async def fill_pool(engine: AsyncEngine, count: int) -> list[int]:
    """Run SELECT 1 on ``count`` connections held at once, so that the pool keeps that many."""
    async def one() -> int:
        async with engine.connect() as connection:
            value = int(await connection.scalar(text("SELECT 1")))
            await asyncio.sleep(0.05)
            return value

    return list(await asyncio.gather(*(one() for _ in range(count))))
