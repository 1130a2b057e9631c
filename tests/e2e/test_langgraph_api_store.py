"""The store routes of `draftloop serve` (/store/items, /store/items/search, /store/namespaces)
through the real langgraph-sdk client on SQLite and Postgres, with langgraph-api's shapes and
status codes, and the graph's memory of a finished run read back through them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

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


def space() -> list[str]:
    """A namespace only this test writes under: the module's tests share one database."""
    return ["e2e", uuid.uuid4().hex]


async def test_put_get_search_list_and_delete_an_item_round_trip(client: LangGraphClient) -> None:  # noqa: F811
    ns = space()
    await client.store.put_item([*ns, "docs"], "a", {"title": "First", "n": 1})
    await client.store.put_item([*ns, "docs"], "b", {"title": "Second", "n": 2})
    await client.store.put_item([*ns, "notes"], "c", {"title": "Note", "n": 3})

    item = await client.store.get_item([*ns, "docs"], "a")
    assert item is not None and item["namespace"] == [*ns, "docs"] and item["key"] == "a"
    assert item["value"] == {"title": "First", "n": 1}
    assert item["created_at"] and item["updated_at"]
    await client.store.put_item([*ns, "docs"], "a", {"title": "First, edited", "n": 1})
    assert (await client.store.get_item([*ns, "docs"], "a"))["value"]["title"] == "First, edited"  # type: ignore[index]

    found = await client.store.search_items(ns)
    assert sorted(i["key"] for i in found["items"]) == ["a", "b", "c"]
    assert [i["key"] for i in (await client.store.search_items(ns, filter={"n": {"$gte": 2}}, limit=10))["items"]
            ] in (["b", "c"], ["c", "b"])
    assert [i["key"] for i in (await client.store.search_items([*ns, "docs"], filter={"title": "Second"}))["items"]
            ] == ["b"]
    assert len((await client.store.search_items(ns, limit=2))["items"]) == 2
    assert len((await client.store.search_items(ns, limit=2, offset=2))["items"]) == 1

    listed = await client.store.list_namespaces(prefix=ns)
    assert sorted(listed["namespaces"]) == [[*ns, "docs"], [*ns, "notes"]]
    assert (await client.store.list_namespaces(prefix=ns, max_depth=2))["namespaces"] == [ns]
    assert (await client.store.list_namespaces(prefix=ns, suffix=["notes"]))["namespaces"] == [[*ns, "notes"]]

    await client.store.delete_item([*ns, "docs"], "a")
    assert await client.store.get_item([*ns, "docs"], "a") is None
    await client.store.delete_item([*ns, "docs"], "a")  # deleting what is gone is no error, as in langgraph-api


async def test_bad_store_requests_are_4xx_naming_the_field(service: Service) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        dotted = await http.put("/store/items", json={"namespace": ["a.b"], "key": "k", "value": {}})
        no_value = await http.put("/store/items", json={"namespace": ["a"], "key": "k", "value": "text"})
        empty = await http.put("/store/items", json={"namespace": [], "key": "k", "value": {}})
        no_key = await http.get("/store/items", params={"namespace": "a"})
        blank_label = await http.get("/store/items", params={"namespace": "a..b", "key": "k"})
        operator = await http.post("/store/items/search", json={"filter": {"n": {"$like": 1}}})
        page = await http.post("/store/items/search", json={"limit": 0})
        depth = await http.post("/store/namespaces", json={"max_depth": 0})
        unknown = await http.post("/store/namespaces", json={"prefix": ["a"], "colour": "blue"})
        nameless = await http.request("DELETE", "/store/items", json={"key": "k"})
    assert dotted.status_code == 422 and "namespace" in dotted.text and "period" in dotted.text
    assert no_value.status_code == 422 and "value" in no_value.text
    assert empty.status_code == 422 and "namespace" in empty.text
    assert no_key.status_code == 400 and "key" in no_key.text
    assert blank_label.status_code == 422 and "namespace" in blank_label.text
    assert operator.status_code == 422 and "$like" in operator.text
    assert page.status_code == 422 and "limit" in page.text
    assert depth.status_code == 422 and "max_depth" in depth.text
    assert unknown.status_code == 422 and "colour" in unknown.text
    assert nameless.status_code == 422 and "namespace" in nameless.text


async def test_a_finished_run_is_remembered_for_the_signed_in_user_whatever_the_client_says(
    client: LangGraphClient  # noqa: F811
) -> None:
    thread = await client.threads.create()
    # A client naming another user gets its own memory all the same.
    claimed: dict[str, Any] = {"user_id": f"someone-else-{uuid.uuid4().hex}"}
    result = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, metadata=claimed,
                                    config={"configurable": {"user_id": claimed["user_id"]}},
                                    input={"messages": [{"role": "user", "content": REQUEST}]})
    assert result["result"]["passed"] is True
    user = (await client.threads.get(thread["thread_id"]))["metadata"]["user_id"]
    assert user != claimed["user_id"]
    assert (await client.store.search_items(["draftloop", claimed["user_id"]]))["items"] == []
    remembered = (await client.store.search_items(["draftloop", user, "topics"], limit=100))["items"]
    assert thread["thread_id"] in [item["key"] for item in remembered]
    [piece] = [item for item in remembered if item["key"] == thread["thread_id"]]
    assert piece["value"]["title"] == result["result"]["title"]
    assert ["draftloop", user, "topics"] in (await client.store.list_namespaces(prefix=["draftloop", user]))["namespaces"]
