"""Threads as chat UIs use them, through the real langgraph-sdk client against `draftloop serve`
on SQLite and Postgres: a run stamps its thread's metadata (graph_id, assistant_id, user_id) so
`threads.search({"metadata": {"graph_id": ...}})` lists it; search filters by status, ids and
values, sorts and pages with langgraph-api's pagination headers; and messages sent as content
blocks or serialised message objects read as the same text as a plain string."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module's server per backend and its fixtures
    ASSISTANT_ID,
    REQUEST,
    Service,
    client,
    graph_fakes,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

GREEN_TEA = "Write a 300-word blog post about Green tea"


def tag() -> dict[str, str]:
    """Metadata only this test's threads carry: the module's threads share one database."""
    return {"suite": uuid.uuid4().hex}


def blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def serialised(text: str) -> dict[str, Any]:
    return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"],
            "kwargs": {"content": blocks(text), "type": "human"}}


async def test_a_run_stamps_graph_assistant_and_user_into_metadata_and_search_by_graph_id_finds_it(
    client: LangGraphClient  # noqa: F811
) -> None:
    mine = tag()
    thread = await client.threads.create(metadata=mine)
    assert await client.threads.search(metadata={**mine, "graph_id": "draftloop"}) == []
    await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input={"messages": [{"role": "user", "content": REQUEST}]})
    metadata = (await client.threads.get(thread["thread_id"]))["metadata"]
    assert metadata["suite"] == mine["suite"]  # what the thread was created with stays
    assert metadata["graph_id"] == "draftloop" and metadata["assistant_id"] == ASSISTANT_ID
    assert metadata["user_id"]
    found = await client.threads.search(metadata={**mine, "graph_id": "draftloop"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert found[0]["values"]["result"]["passed"] is True


async def test_a_thread_a_run_creates_starts_with_the_run_metadata_and_the_graph(client: LangGraphClient) -> None:  # noqa: F811
    mine = tag()
    thread_id = str(uuid.uuid4())
    run = await client.runs.create(thread_id, ASSISTANT_ID, input={"messages": [{"role": "user", "content": REQUEST}]},
                                   if_not_exists="create", metadata=mine)
    await client.runs.join(thread_id, run["run_id"])
    metadata = (await client.threads.get(thread_id))["metadata"]
    assert {**mine, "graph_id": "draftloop", "assistant_id": ASSISTANT_ID}.items() <= metadata.items()


async def test_search_filters_by_status_ids_and_values_and_nested_metadata(client: LangGraphClient) -> None:  # noqa: F811
    mine = tag()
    done = await client.threads.create(metadata={**mine, "owner": {"team": "blue", "id": "u1"}})
    waiting = await client.threads.create(metadata={**mine, "owner": {"team": "red"}})
    bare = await client.threads.create(metadata=mine)
    await client.runs.wait(done["thread_id"], ASSISTANT_ID, input={"messages": [{"role": "user", "content": REQUEST}]})
    await client.runs.wait(waiting["thread_id"], ASSISTANT_ID,
                           input={"messages": [{"role": "user", "content": REQUEST}]},
                           context={"require_approval": True})

    async def ids(**query: Any) -> list[str]:
        return [t["thread_id"] for t in await client.threads.search(metadata={**mine, **query.pop("metadata", {})},
                                                                     **query)]

    assert await ids(status="interrupted") == [waiting["thread_id"]]
    assert set(await ids(status="idle")) == {done["thread_id"], bare["thread_id"]}
    assert await ids(metadata={"owner": {"team": "blue"}}) == [done["thread_id"]]
    assert await ids(ids=[bare["thread_id"], waiting["thread_id"]], sort_by="created_at", sort_order="asc") == [
        waiting["thread_id"], bare["thread_id"]]
    assert await ids(values={"result": {"passed": True}}) == [done["thread_id"]]
    assert await ids(values={"request": {"require_approval": True}}) == [waiting["thread_id"]]
    assert await ids(values={"intent": {"kind": "answer"}}) == []
    assert await client.threads.count(metadata=mine) == 3
    assert await client.threads.count(metadata=mine, status="interrupted") == 1
    assert await client.threads.count(metadata=mine, values={"result": {"passed": True}}) == 1


async def test_search_sorts_and_pages_with_langgraph_api_pagination_headers(client: LangGraphClient,  # noqa: F811
                                                                             service: Service) -> None:  # noqa: F811
    mine = tag()
    made = [(await client.threads.create(metadata=mine))["thread_id"] for _ in range(3)]
    oldest_first = await client.threads.search(metadata=mine, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in oldest_first] == made
    by_id = await client.threads.search(metadata=mine, sort_by="thread_id", sort_order="desc")
    assert [t["thread_id"] for t in by_id] == sorted(made, reverse=True)
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        body = {"metadata": mine, "sort_by": "created_at", "sort_order": "asc", "limit": 2}
        first = await http.post("/threads/search", json=body)
        last = await http.post("/threads/search", json={**body, "offset": 2})
        selected = await http.post("/threads/search", json={**body, "select": ["thread_id", "status"]})
    assert [t["thread_id"] for t in first.json()] == made[:2]
    assert first.headers["X-Pagination-Next"] == "2" and first.headers["X-Pagination-Total"] == "3"
    assert [t["thread_id"] for t in last.json()] == made[2:]
    assert "X-Pagination-Next" not in last.headers and last.headers["X-Pagination-Total"] == "3"
    assert selected.json() == [{"thread_id": made[0], "status": "idle"}, {"thread_id": made[1], "status": "idle"}]


@pytest.mark.parametrize("form", ["blocks", "serialised"])
async def test_a_message_sent_as_content_blocks_gets_the_same_title_as_a_string(client: LangGraphClient,  # noqa: F811
                                                                                 form: str) -> None:
    as_string = await client.runs.wait(None, ASSISTANT_ID, input={"messages": [{"role": "user", "content": GREEN_TEA}]})
    message = {"role": "user", "content": blocks(GREEN_TEA)} if form == "blocks" else serialised(GREEN_TEA)
    as_blocks = await client.runs.wait(None, ASSISTANT_ID, input={"messages": [message]})
    title = as_blocks["result"]["title"]
    assert title == as_string["result"]["title"] and "Green tea" in title and "'}]" not in title
    assert as_blocks["request"]["text"] == GREEN_TEA


async def test_a_revision_sent_as_content_blocks_routes_as_a_revision(client: LangGraphClient,  # noqa: F811
                                                                       graph_fakes: GraphFakes) -> None:  # noqa: F811
    thread = await client.threads.create()
    first = await client.runs.wait(thread["thread_id"], ASSISTANT_ID,
                                   input={"messages": [{"role": "user", "content": blocks(REQUEST)}]})
    second = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input={"messages": [
        {"role": "user", "content": [*blocks("Make it shorter"), {"type": "image_url", "image_url": {"url": "x"}}]}]})
    assert second["intent"]["kind"] == "revise"
    assert first["result"]["markdown"] in graph_fakes.writer.prompts[-1]
    assert any("image_url block was ignored" in w for w in second["warnings"])
