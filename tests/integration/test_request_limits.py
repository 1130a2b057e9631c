"""Requests too long for the model's context are refused when they are made, on the task API and
the LangGraph API, with a 422 naming the field and the limit; nothing is queued or run.

The model's context is set small (MODEL_CONTEXT_TOKENS=3072: at most 3,072 characters), the
model itself is the loopback fake Ollama, on SQLite and Postgres.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers, ensure_user
from tests.asgi import serve_in_loop
from tests.integration.test_task_api import FAST, point_env_at_fakes, wait_for_status

CONTEXT_TOKENS = 3072
MAX_CHARS = 3072  # (3072 - 2048 reserved) * 3 characters per token
TOO_LONG = "Write a blog post about tea. " + "x" * (MAX_CHARS - 29 + 1)
WHY = (f"is {MAX_CHARS + 1:,} characters; at most {MAX_CHARS:,} fit the model's context "
       f"(MODEL_CONTEXT_TOKENS={CONTEXT_TOKENS} tokens)")


@pytest.fixture
async def api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    monkeypatch.setenv("MODEL_CONTEXT_TOKENS", str(CONTEXT_TOKENS))
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="limits-test", **FAST))
    await ensure_user(migrated_database_url)
    async with serve_in_loop(app) as client:
        client.headers.update(admin_headers())
        yield client


async def test_returns_422_naming_request_and_the_limit_when_it_cannot_fit_the_model_context(
        api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    assert len(TOO_LONG) == MAX_CHARS + 1
    response = await api.post("/api/tasks", json={"request": TOO_LONG})

    assert response.status_code == 422, response.text
    assert response.json() == {"status": 422, "error": "unprocessable", "detail": f"request: {WHY}",
                               "fields": [{"field": "request", "message": WHY}]}
    assert (await api.get("/api/tasks")).json()["items"] == []
    assert graph_fakes.ollama.chat_requests == []


async def test_a_request_of_exactly_the_limit_is_queued_and_runs(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/tasks", json={"request": TOO_LONG[:MAX_CHARS], "research": False})
    assert response.status_code == 202, response.text
    await wait_for_status(api, response.json()["id"], "completed")


async def test_a_run_whose_human_message_cannot_fit_is_a_422_naming_the_message(
        api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    thread_id = (await api.post("/threads", json={})).json()["thread_id"]
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": TOO_LONG}]}]
    response = await api.post(f"/threads/{thread_id}/runs", json={"assistant_id": "draftloop",
                                                                 "input": {"messages": messages}})

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": "input.messages.2.content", "message": WHY}]
    assert (await api.get(f"/threads/{thread_id}/runs")).json() == []
    assert graph_fakes.ollama.chat_requests == []


async def test_a_stateless_run_that_cannot_fit_leaves_no_temporary_thread(api: httpx.AsyncClient) -> None:
    response = await api.post("/runs/wait", json={"assistant_id": "draftloop",
                                                  "input": {"messages": [{"type": "human", "content": TOO_LONG}]}})

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": "input.messages.0.content", "message": WHY}]
    assert (await api.post("/threads/search", json={})).json() == []
