"""A task API post runs as the user who asked for it: the graph's long-term memory
(graph/memory.py) is theirs, the same one their LangGraph API runs use, and not another user's.
The service runs in the test's loop on SQLite and Postgres with the scripted writer over
loopback, which keeps every draft prompt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import bearer, ensure_user
from graph.memory import topics_namespace
from tests.asgi import serve_in_loop
from tests.integration.test_graph_memory import FIRST, SECOND, draft_prompts
from tests.integration.test_task_api import FAST, point_env_at_fakes, wait_for_status

ANN = "00000000-0000-4000-8000-0000000000b1"
BOB = "00000000-0000-4000-8000-0000000000b2"
ALREADY_WRITTEN = "Already written on this topic"


@pytest.fixture
async def api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="test-worker", **FAST))
    for user_id, name in ((ANN, "ann"), (BOB, "bob")):
        await ensure_user(migrated_database_url, name=name, role="editor", user_id=user_id)
    async with serve_in_loop(app) as client:
        client.headers.update(bearer(ANN, "editor"))  # each post names its user itself
        yield client


async def post_task(api: httpx.AsyncClient, user_id: str, request: str) -> dict[str, Any]:
    response = await api.post("/api/tasks", json={"request": request}, headers=bearer(user_id, "editor"))
    assert response.status_code == 202, response.text
    return await wait_for_status(api, response.json()["id"], "completed")


async def remembered(api: httpx.AsyncClient, owner: str) -> dict[str, str]:
    """The owner's past pieces, thread id -> title, through the store API (which any signed-in
    user may read)."""
    response = await api.post("/store/items/search", json={"namespace_prefix": list(topics_namespace(owner)), "limit": 100})
    assert response.status_code == 200, response.text
    return {item["key"]: item["value"]["title"] for item in response.json()["items"]}


async def test_two_users_task_api_posts_on_one_topic_keep_separate_memories(api: httpx.AsyncClient,
                                                                           graph_fakes: GraphFakes) -> None:
    ann_first = await post_task(api, ANN, FIRST)
    bob_second = await post_task(api, BOB, SECOND)
    assert ALREADY_WRITTEN not in draft_prompts(graph_fakes)[-1]  # Ann's piece is not Bob's
    ann_second = await post_task(api, ANN, SECOND)
    prompt = draft_prompts(graph_fakes)[-1]
    assert ALREADY_WRITTEN in prompt and f'"{ann_first["result"]["title"]}"' in prompt

    assert await remembered(api, ANN) == {ann_first["thread_id"]: ann_first["result"]["title"],
                                          ann_second["thread_id"]: ann_second["result"]["title"]}
    assert await remembered(api, BOB) == {bob_second["thread_id"]: bob_second["result"]["title"]}
    assert await remembered(api, "default") == {}


async def test_a_users_task_api_post_and_langgraph_api_run_share_one_memory(api: httpx.AsyncClient,
                                                                           graph_fakes: GraphFakes) -> None:
    task = await post_task(api, ANN, FIRST)
    headers = bearer(ANN, "editor")
    thread = (await api.post("/threads", json={}, headers=headers)).json()
    response = await api.post(f"/threads/{thread['thread_id']}/runs/wait", headers=headers, json={
        "assistant_id": "draftloop", "input": {"messages": [{"role": "user", "content": SECOND}]}})
    assert response.status_code == 200, response.text
    prompt = draft_prompts(graph_fakes)[-1]
    assert ALREADY_WRITTEN in prompt and f'"{task["result"]["title"]}"' in prompt
    assert set(await remembered(api, ANN)) == {task["thread_id"], thread["thread_id"]}
    # The task keeps who asked for it, in the key a LangGraph API run of theirs carries.
    runs = (await api.get(f"/threads/{task['thread_id']}/runs", headers=headers)).json()
    assert runs[0]["kwargs"]["config"]["configurable"]["langgraph_auth_user_id"] == ANN
