"""The service in the test's loop (httpx.ASGITransport) on Postgres behind a loopback proxy
(tests/db_proxy.py) that the test takes away: every database-backed route answers 503 with
Retry-After while the database is unreachable, and /ready says which check failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.http.app import create_app
from app.http.errors import DATABASE_UNAVAILABLE
from app.settings import ServiceSettings
from tests.asgi import serve_in_loop
from tests.auth import TEST_SECRET, admin_headers, ensure_user
from tests.db_proxy import DatabaseProxy
from tests.fakes.writer import GraphFakes
from tests.integration.test_task_api import POST, point_env_at_fakes

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

FAST = dict(concurrency=2, lease_seconds=3.0, heartbeat_seconds=0.2, poll_seconds=0.05,
            sse_heartbeat_seconds=0.2, shutdown_grace_seconds=0.5, secret_key=TEST_SECRET,
            # Every request asks the database who its token belongs to.
            auth_cache_seconds=0.0,
            # The API process of `serve --workers N`: no run loop of its own whose polls would
            # notice a dead connection before a request does.
            role="api")


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
        ("POST", "/threads", {}),
        ("GET", f"/threads/{thread_id}/state", None),
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
