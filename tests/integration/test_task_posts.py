"""Posts made by the graph, driven through the task API and the executor on SQLite and Postgres:
a completed content task leaves one draft post, an answer none, and approving with
``publish`` publishes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers, ensure_user
from tests.asgi import serve_in_loop
from tests.html_safety import assert_inert
from tests.integration.test_task_api import FAST, POST, point_env_at_fakes, wait_for_status


@dataclass
class Served:
    api: httpx.AsyncClient  # as the test admin
    anonymous: httpx.AsyncClient


@pytest.fixture
async def served(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> AsyncIterator[Served]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url)
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="task-posts-test", **FAST))
    async with serve_in_loop(app) as client:
        client.headers.update(admin_headers())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=client.base_url) as anonymous:
            yield Served(client, anonymous)


async def posts_of(api: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await api.get("/api/posts", params={"task_id": task_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_completed_content_task_leaves_exactly_one_draft_post(served: Served) -> None:
    api = served.api
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    task = await wait_for_status(api, task_id, "completed")
    [post] = await posts_of(api, task_id)
    result = task["result"]
    assert post["status"] == "draft" and post["published_at"] is None
    assert post["task_id"] == task_id and post["author_id"] is None
    assert post["title"] == result["title"] and post["slug"] == result["seo"]["slug"]
    # The title lives in its own field, not again at the top of the body.
    assert not post["markdown"].startswith("# ") and post["markdown"].strip() in result["markdown"]
    assert post["sources"] == result["sources"] and post["featured_image"] == result["featured_image"]
    assert post["seo"]["keywords"] == result["seo"]["keywords"]
    assert post["html"].startswith("<p>") and "<h2>" in post["html"]
    assert_inert(post["html"])
    everything = (await api.get("/api/posts")).json()["items"]
    assert [p["id"] for p in everything] == [post["id"]]
    # Anonymous readers do not see the draft.
    assert (await served.anonymous.get(f"/api/posts/{post['id']}")).status_code == 404
    assert (await served.anonymous.get("/api/posts")).json()["items"] == []


async def test_an_answer_leaves_no_post(served: Served, graph_fakes: GraphFakes) -> None:
    api = served.api
    graph_fakes.writer.intent = {"kind": "answer", "confidence": 90, "reason": "a question"}
    task_id = (await api.post("/api/tasks", json={"request": "What is the GIL in Python?"})).json()["id"]
    task = await wait_for_status(api, task_id, "completed")
    assert task["result"]["kind"] == "answer"
    assert await posts_of(api, task_id) == []
    assert (await api.get("/api/posts")).json()["items"] == []


async def test_approving_with_publish_publishes_the_tasks_post(served: Served) -> None:
    api = served.api
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    assert await posts_of(api, task_id) == []  # nothing before finalize
    response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True, "publish": True})
    assert response.status_code == 200, response.text
    task = await wait_for_status(api, task_id, "completed")
    assert task["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1, "publish": True}
    [post] = await posts_of(api, task_id)
    assert post["status"] == "published" and post["published_at"]
    public = await served.anonymous.get(f"/api/posts/by-slug/{post['slug']}")
    assert public.status_code == 200 and public.json()["id"] == post["id"]


async def test_approving_without_publish_leaves_the_post_a_draft(served: Served) -> None:
    api = served.api
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True})
    await wait_for_status(api, task_id, "completed")
    [post] = await posts_of(api, task_id)
    assert post["status"] == "draft"


async def test_publish_with_a_rejection_is_a_422_naming_publish(served: Served) -> None:
    api = served.api
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": False, "publish": True})
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": "publish",
                                          "message": "a rejected draft cannot be published; send approved: true"}]
    assert (await api.get(f"/api/tasks/{task_id}")).json()["status"] == "awaiting_approval"
