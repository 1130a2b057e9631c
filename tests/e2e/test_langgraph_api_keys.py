"""API keys with the real langgraph-sdk client: ``get_client(api_key=...)`` sends the key as
X-Api-Key, as chat UIs built on the JS SDK do, against a real `draftloop serve` on SQLite and
Postgres; /info tells the client up front that it needs one."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langgraph_sdk import get_client

from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide server and its fixtures
    ASSISTANT_ID,
    RUN_TIMEOUT,
    Service,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


async def test_the_sdk_with_api_key_runs_a_thread_and_is_refused_once_the_key_is_revoked(
        service: Service, graph_fakes: GraphFakes) -> None:  # noqa: F811 - the imported fixtures
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as admin:
        info = (await admin.get("/info")).json()
        created = await admin.post("/api/keys", json={"name": "sdk", "role": "editor"})
        assert created.status_code == 201, created.text
    assert info["flags"]["auth_required"] is True and info["auth"]["api_key_header"] == "X-Api-Key"
    key, key_id = created.json()["key"], created.json()["id"]

    sdk = get_client(url=service.url, api_key=key)
    try:
        assert [a["assistant_id"] for a in await sdk.assistants.search(graph_id="draftloop")] == [ASSISTANT_ID]
        thread = await sdk.threads.create()
        async with asyncio.timeout(RUN_TIMEOUT):
            result = await sdk.runs.wait(thread["thread_id"], "draftloop", input=human("What is uv?"))
        assert isinstance(result, dict) and result["messages"], result
        assert (await sdk.threads.get(thread["thread_id"]))["status"] == "idle"

        async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as admin:
            assert (await admin.delete(f"/api/keys/{key_id}")).status_code == 200
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await sdk.threads.get(thread["thread_id"])
        assert refused.value.response.status_code == 401
        assert refused.value.response.json()["detail"] == "API key revoked"
    finally:
        await sdk.aclose()
