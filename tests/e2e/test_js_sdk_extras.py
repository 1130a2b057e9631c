"""The rest of the LangGraph Server API (issue 21) driven by the real JS SDK (tests/js_sdk.py):
assistants with versions, the store, crons and their ticks, thread copy, count, prune, history
and the thread's own stream, background stateless runs, batches, cancelling many runs, deleting
one, and a run's webhook. One `draftloop serve` per backend (SQLite, Postgres) serves the module:
test_webhooks.py's, which signs webhooks, so a run's webhook is seen arriving at its receiver.
The Python SDK's tests of the same routes are test_langgraph_assistants.py,
test_langgraph_api_store.py, test_langgraph_api_crons.py, test_langgraph_api_extras.py and
test_webhooks.py."""

# The fixtures imported below are pytest arguments of the tests: ruff reads them as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.fakes.webhooks import WebhookReceiver
from devtools.fakes.writer import GraphFakes
from tests.e2e.test_js_sdk import GRAPH_ID, js, node  # noqa: F401 - the module's Node process and client
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the shared fakes and their fixtures
    ASSISTANT_ID,
    REQUEST,
    RUN_TIMEOUT,
    graph_fakes,
    human,
    postgres_test_database,
    shared_backend,
    shared_fakes,
    shared_postgres,
)
from tests.e2e.test_langgraph_api_crons import EVERY_TWO_SECONDS, eventually
from tests.e2e.test_webhooks import DELIVERY_TIMEOUT, QUIET_SECONDS, receiver, service  # noqa: F401
from tests.js_sdk import JsClient, JsSdkError

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

# Each cron tick's run stops before its first node: the ticks are what is tested, not the graph.
PAUSED = {"interruptBefore": ["route_intent"]}


async def status_of(call: Awaitable[Any]) -> int | None:
    """The HTTP status the SDK threw for ``call``."""
    with pytest.raises(JsSdkError) as caught:
        await call
    return caught.value.status


async def until_status(js: JsClient, thread_id: str, run_id: str, wanted: str) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        while (await js.call("runs.get", thread_id, run_id))["status"] != wanted:
            await asyncio.sleep(0.05)


def checkpoint_ids(history: list[dict[str, Any]]) -> list[str]:
    return [state["checkpoint"]["checkpoint_id"] for state in history]


# assistants ---------------------------------------------------------------------------------------


async def test_assistants_create_update_versions_set_latest_and_a_run_takes_the_latest_defaults(js: JsClient) -> None:
    made = await js.call("assistants.create", {"graphId": GRAPH_ID, "name": "newsletters", "metadata": {"team": "growth"},
                                               "context": {"max_revisions": 0, "content_type": "newsletter"}})
    assistant_id = made["assistant_id"]
    assert made["version"] == 1 and made["graph_id"] == GRAPH_ID and made["name"] == "newsletters"
    assert made["context"] == {"max_revisions": 0, "content_type": "newsletter"}

    updated = await js.call("assistants.update", assistant_id, {"context": {"max_revisions": 1, "content_type": "email"},
                                                                "metadata": {"stage": "two"}})
    assert updated["version"] == 2 and updated["context"]["content_type"] == "email"
    assert updated["metadata"] == {"team": "growth", "stage": "two"}  # merged, as langgraph-api does
    assert (await js.call("assistants.get", assistant_id))["version"] == 2
    versions = await js.call("assistants.getVersions", assistant_id)
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["context"]["content_type"] == "newsletter"

    back = await js.call("assistants.setLatest", assistant_id, 1)
    assert back["version"] == 1 and back["context"]["content_type"] == "newsletter"
    fetched = await js.call("assistants.get", assistant_id)
    assert (fetched["version"], fetched["context"]["max_revisions"]) == (1, 0)
    assert await status_of(js.call("assistants.setLatest", assistant_id, 7)) == 404
    thread = await js.call("threads.create")
    values = await js.call("runs.wait", thread["thread_id"], assistant_id, {"input": human(REQUEST)})
    assert values["request"]["content_type"] == "newsletter" and values["result"]["passed"] is True
    # The run put the assistant in its thread's metadata: deleteThreads deletes that thread too.
    assert (await js.call("threads.get", thread["thread_id"]))["metadata"]["assistant_id"] == assistant_id
    await js.call("assistants.delete", assistant_id, {"deleteThreads": True})
    assert await status_of(js.call("threads.get", thread["thread_id"])) == 404
    # Its checkpoints went too: a thread made again under the same id starts empty.
    await js.call("threads.create", {"threadId": thread["thread_id"]})
    assert await js.call("threads.getHistory", thread["thread_id"]) == []


async def test_assistants_search_count_and_delete_and_the_built_in_assistant_cannot_be_deleted(js: JsClient) -> None:
    suite = {"suite": uuid.uuid4().hex}
    first = await js.call("assistants.create", {"graphId": GRAPH_ID, "name": "Beta posts", "metadata": suite})
    second = await js.call("assistants.create", {"graphId": GRAPH_ID, "name": "alpha posts", "metadata": suite})
    found = await js.call("assistants.search", {"metadata": suite, "sortBy": "name", "sortOrder": "asc"})
    assert [a["assistant_id"] for a in found] == [second["assistant_id"], first["assistant_id"]]
    assert [a["name"] for a in await js.call("assistants.search", {"metadata": suite, "name": "BETA"})] == ["Beta posts"]
    page = await js.call("assistants.search", {"metadata": suite, "limit": 1, "sortBy": "name", "sortOrder": "asc",
                                               "select": ["assistant_id", "name"], "includePagination": True})
    assert page == {"assistants": [{"assistant_id": second["assistant_id"], "name": "alpha posts"}], "next": "1"}
    assert await js.call("assistants.count", {"metadata": suite}) == 2
    assert await js.call("assistants.count", {"graphId": GRAPH_ID}) >= 2
    assert await status_of(js.call("assistants.count", {"graphId": "no-such-graph"})) == 404  # as langgraph-api

    # Without deleteThreads (the SDK sends delete_threads=false) the assistant's threads stay.
    kept = await js.call("threads.create", {"metadata": {"assistant_id": first["assistant_id"]}})
    assert await js.call("assistants.delete", first["assistant_id"]) is None
    assert await status_of(js.call("assistants.get", first["assistant_id"])) == 404
    assert (await js.call("threads.get", kept["thread_id"]))["metadata"]["assistant_id"] == first["assistant_id"]
    assert await js.call("assistants.count", {"metadata": suite}) == 1
    refused = await status_of(js.call("assistants.delete", ASSISTANT_ID))
    assert refused == 409
    with pytest.raises(JsSdkError, match="built-in"):
        await js.call("assistants.delete", GRAPH_ID)
    assert (await js.call("assistants.get", GRAPH_ID))["assistant_id"] == ASSISTANT_ID


# store --------------------------------------------------------------------------------------------


async def test_store_put_get_search_list_namespaces_and_delete_an_item(js: JsClient) -> None:
    ns = ["js", uuid.uuid4().hex]
    assert await js.call("store.putItem", [*ns, "docs"], "a", {"title": "First", "n": 1}) is None
    await js.call("store.putItem", [*ns, "docs"], "b", {"title": "Second", "n": 2})
    await js.call("store.putItem", [*ns, "notes"], "c", {"title": "Note", "n": 3})
    await js.call("store.putItem", [*ns, "docs"], "a", {"title": "First, edited", "n": 1})

    item = await js.call("store.getItem", [*ns, "docs"], "a")
    assert (item["namespace"], item["key"], item["value"]) == ([*ns, "docs"], "a", {"title": "First, edited", "n": 1})
    # The SDK adds camelCase copies of the timestamps it read.
    assert item["createdAt"] == item["created_at"] and item["updatedAt"] == item["updated_at"] and item["updated_at"]

    found = await js.call("store.searchItems", ns)
    assert sorted(i["key"] for i in found["items"]) == ["a", "b", "c"]
    assert all(i["createdAt"] for i in found["items"])
    over_one = await js.call("store.searchItems", ns, {"filter": {"n": {"$gte": 2}}})
    assert sorted(i["key"] for i in over_one["items"]) == ["b", "c"]
    titled = await js.call("store.searchItems", [*ns, "docs"], {"filter": {"title": "Second"}})
    assert [i["value"]["n"] for i in titled["items"]] == [2]
    assert len((await js.call("store.searchItems", ns, {"limit": 2, "offset": 2}))["items"]) == 1

    listed = await js.call("store.listNamespaces", {"prefix": ns})
    assert sorted(listed["namespaces"]) == [[*ns, "docs"], [*ns, "notes"]]
    assert (await js.call("store.listNamespaces", {"prefix": ns, "maxDepth": 2}))["namespaces"] == [ns]
    assert (await js.call("store.listNamespaces", {"prefix": ns, "suffix": ["notes"]}))["namespaces"] == [[*ns, "notes"]]

    await js.call("store.deleteItem", [*ns, "docs"], "a")
    assert await js.call("store.getItem", [*ns, "docs"], "a") is None
    assert [i["key"] for i in (await js.call("store.searchItems", [*ns, "docs"]))["items"]] == ["b"]


# crons --------------------------------------------------------------------------------------------


async def test_crons_create_search_count_update_and_delete(js: JsClient) -> None:
    tag = {"suite": uuid.uuid4().hex}
    end = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    cron = await js.call("crons.create", ASSISTANT_ID, {"schedule": "0 9 * * 1", "input": human(REQUEST),
                                                        "metadata": tag, "timezone": "Europe/Paris", "endTime": end})
    assert cron["thread_id"] is None and cron["on_run_completed"] == "delete" and cron["enabled"] is True
    assert (cron["assistant_id"], cron["schedule"], cron["timezone"]) == (ASSISTANT_ID, "0 9 * * 1", "Europe/Paris")
    next_run = datetime.fromisoformat(str(cron["next_run_date"]))
    # Monday 09:00 in Paris is 08:00 or 07:00 UTC, depending on the season.
    assert next_run.weekday() == 0 and next_run.hour in (7, 8) and next_run > datetime.now(UTC)
    thread = await js.call("threads.create")
    bound = await js.call("crons.createForThread", thread["thread_id"], ASSISTANT_ID,
                          {"schedule": "*/5 * * * *", "metadata": tag, "enabled": False})
    assert bound["thread_id"] == thread["thread_id"] and bound["enabled"] is False

    found = await js.call("crons.search", {"metadata": tag, "sortBy": "created_at", "sortOrder": "asc"})
    assert [c["cron_id"] for c in found] == [cron["cron_id"], bound["cron_id"]]
    assert [c["cron_id"] for c in await js.call("crons.search", {"threadId": thread["thread_id"]})] == [bound["cron_id"]]
    assert [c["cron_id"] for c in await js.call("crons.search", {"metadata": tag, "enabled": False})] == [
        bound["cron_id"]]
    assert await js.call("crons.count", {"metadata": tag}) == 2
    assert await js.call("crons.count", {"threadId": thread["thread_id"]}) == 1

    updated = await js.call("crons.update", cron["cron_id"], {"schedule": "30 6 * * *", "timezone": "UTC",
                                                              "enabled": False, "endTime": None})
    assert (updated["schedule"], updated["enabled"], updated["end_time"]) == ("30 6 * * *", False, None)
    next_run = datetime.fromisoformat(str(updated["next_run_date"]))
    assert (next_run.hour, next_run.minute) == (6, 30)
    assert updated["payload"]["input"] == human(REQUEST)

    assert await js.call("crons.delete", cron["cron_id"]) is None
    assert await status_of(js.call("crons.delete", cron["cron_id"])) == 404
    assert [c["cron_id"] for c in await js.call("crons.search", {"metadata": tag})] == [bound["cron_id"]]
    await js.call("crons.delete", bound["cron_id"])
    assert await js.call("crons.count", {"metadata": tag}) == 0


async def test_crons_every_two_seconds_queue_runs_on_their_thread_and_on_new_threads(js: JsClient) -> None:
    thread = await js.call("threads.create")
    team = {"team": uuid.uuid4().hex}
    bound = await js.call("crons.createForThread", thread["thread_id"], ASSISTANT_ID,
                          {"schedule": EVERY_TWO_SECONDS, "input": human(REQUEST), **PAUSED})
    stateless = await js.call("crons.create", ASSISTANT_ID, {"schedule": EVERY_TWO_SECONDS, "input": human(REQUEST),
                                                             "onRunCompleted": "keep", "metadata": team, **PAUSED})

    async def ticked() -> bool:
        runs = await js.call("runs.list", thread["thread_id"])
        made = await js.call("threads.search", {"metadata": {"cron_id": stateless["cron_id"]}})
        return len(runs) >= 1 and len(made) >= 1

    try:
        await eventually(ticked, "a tick of each cron")
    finally:
        await js.call("crons.delete", bound["cron_id"])
        await js.call("crons.delete", stateless["cron_id"])
    run = (await js.call("runs.list", thread["thread_id"]))[-1]
    assert run["assistant_id"] == ASSISTANT_ID and run["kwargs"]["input"] == human(REQUEST)
    [made, *_] = await js.call("threads.search", {"metadata": {"cron_id": stateless["cron_id"]}})
    assert made["metadata"]["team"] == team["team"]
    [tick] = await js.call("runs.list", made["thread_id"])
    assert tick["kwargs"]["input"] == human(REQUEST)
    # Deleted, a cron queues no more runs.
    after = len(await js.call("runs.list", thread["thread_id"], {"limit": 100}))
    await asyncio.sleep(2.5)
    assert len(await js.call("runs.list", thread["thread_id"], {"limit": 100})) == after


# threads ------------------------------------------------------------------------------------------


async def test_threads_copy_keeps_the_history_and_count_and_prune_see_the_copies(js: JsClient) -> None:
    mine = {"owner": uuid.uuid4().hex}
    thread = await js.call("threads.create", {"metadata": mine})
    await js.call("runs.wait", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    history = await js.call("threads.getHistory", thread["thread_id"], {"limit": 100})
    assert len(history) > 2 and history[0]["values"]["result"]["passed"] is True
    older = await js.call("threads.getHistory", thread["thread_id"],
                          {"limit": 2, "before": history[0]["checkpoint"]})
    assert checkpoint_ids(older) == checkpoint_ids(history)[1:3]

    copy = await js.call("threads.copy", thread["thread_id"])
    assert copy["thread_id"] != thread["thread_id"] and copy["metadata"]["owner"] == mine["owner"]
    copied = await js.call("threads.getHistory", copy["thread_id"], {"limit": 100})
    assert checkpoint_ids(copied) == checkpoint_ids(history)
    assert copied[0]["checkpoint"]["thread_id"] == copy["thread_id"]
    assert copied[0]["values"]["result"] == history[0]["values"]["result"]
    assert await status_of(js.call("threads.copy", str(uuid.uuid4()))) == 409

    bare = await js.call("threads.create", {"metadata": mine})
    assert await js.call("threads.count", {"metadata": mine}) == 3
    assert await js.call("threads.count", {"metadata": mine, "values": {"result": {"passed": True}}}) == 2
    pruned = await js.call("threads.prune", [copy["thread_id"], bare["thread_id"], str(uuid.uuid4())])
    assert pruned == {"pruned_count": 2}
    assert await status_of(js.call("threads.get", copy["thread_id"])) == 404
    assert await js.call("threads.count", {"metadata": mine}) == 1
    assert checkpoint_ids(await js.call("threads.getHistory", thread["thread_id"], {"limit": 100})) == checkpoint_ids(
        history)


async def test_a_thread_s_join_stream_follows_its_run_to_the_run_done_event(js: JsClient, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 0.5  # the run is still going when the stream joins
    thread = await js.call("threads.create")
    run = await js.call("runs.create", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST), "streamMode": "values"})
    done = {"event": "metadata", "data": {"status": "run_done", "run_id": run["run_id"]}}
    parts = await js.call("threads.joinStream", thread["thread_id"], until=done)
    assert parts[-1]["data"] == {"status": "run_done", "run_id": run["run_id"]}
    values = [part["data"] for part in parts if part["event"] == "values"]
    assert values and values[-1]["result"]["passed"] is True
    ids = [int(part["id"]) for part in parts]
    assert ids == sorted(ids)
    lifecycle = await js.call("threads.joinStream", thread["thread_id"],
                              {"lastEventId": parts[0]["id"], "streamMode": "lifecycle"}, until=done)
    assert {part["event"] for part in lifecycle} == {"metadata"} and lifecycle[-1]["data"] == done["data"]


# runs ---------------------------------------------------------------------------------------------


async def test_a_stateless_background_run_keeps_its_thread_when_asked_and_a_camel_case_batch_starts_each_run(
        js: JsClient) -> None:
    kept = await js.call("runs.create", None, GRAPH_ID, {"input": human(REQUEST), "onCompletion": "keep"})
    assert kept["status"] == "pending" and kept["thread_id"]
    joined = await js.call("runs.join", kept["thread_id"], kept["run_id"])
    assert joined["result"]["passed"] is True
    assert (await js.call("threads.get", kept["thread_id"]))["metadata"]["temporary"] is True

    tag = {"batch": uuid.uuid4().hex}
    # In the SDK's camelCase, as its types ask (it sends them on as written, and assistant_id too).
    runs = await js.call("runs.createBatch", [
        {"assistantId": ASSISTANT_ID, "input": human(REQUEST), "metadata": tag, "onCompletion": "keep"},
        {"assistantId": ASSISTANT_ID, "input": human("Write a post about tea"), "metadata": tag,
         "onCompletion": "keep", "streamMode": "values"},
        {"assistantId": ASSISTANT_ID, "input": human("Write a post about coffee"), "metadata": tag},
    ])
    assert len(runs) == 3 and len({run["thread_id"] for run in runs}) == 3
    assert {run["metadata"]["batch"] for run in runs} == {tag["batch"]}
    # The third run's thread goes when it ends, so only the kept ones are joined.
    for run in runs[:2]:
        assert (await js.call("runs.join", run["thread_id"], run["run_id"]))["result"]["passed"] is True

    async def only_kept_left() -> bool:
        return len(await js.call("threads.search", {"metadata": tag})) == 2

    await eventually(only_kept_left, "the batch's third thread deleted on completion")
    kept_ids = {t["thread_id"] for t in await js.call("threads.search", {"metadata": tag})}
    assert kept_ids == {runs[0]["thread_id"], runs[1]["thread_id"]}
    refused = js.call("runs.createBatch", [
        {"assistantId": ASSISTANT_ID, "input": human(REQUEST), "metadata": {"batch": "refused"}},
        {"assistantId": ASSISTANT_ID, "input": human(REQUEST), "interruptBefore": ["nowhere"]},
    ])
    with pytest.raises(JsSdkError, match="interrupt_before") as bad_node:
        await refused
    assert bad_node.value.status == 422
    twice = js.call("runs.createBatch", [{"assistantId": ASSISTANT_ID, "onCompletion": "keep", "on_completion": "delete"}])
    with pytest.raises(JsSdkError, match="on_completion: sent twice") as clash:
        await twice
    assert clash.value.status == 422
    assert await js.call("threads.search", {"metadata": {"batch": "refused"}}) == []


async def test_cancel_many_by_ids_then_by_status_and_delete_an_ended_run(js: JsClient, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30.0
    one = await js.call("threads.create")
    two = await js.call("threads.create")
    first = await js.call("runs.create", one["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    second = await js.call("runs.create", two["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    await until_status(js, one["thread_id"], first["run_id"], "running")
    await js.call("runs.cancelMany", {"threadId": one["thread_id"], "runIds": [first["run_id"]]})
    await until_status(js, one["thread_id"], first["run_id"], "interrupted")
    assert (await js.call("runs.get", two["thread_id"], second["run_id"]))["status"] in ("pending", "running")

    await until_status(js, two["thread_id"], second["run_id"], "running")
    assert await status_of(js.call("runs.delete", two["thread_id"], second["run_id"])) == 409
    await js.call("runs.cancelMany", {"status": "running"})
    await until_status(js, two["thread_id"], second["run_id"], "interrupted")
    assert await status_of(js.call("runs.cancelMany", {"threadId": one["thread_id"],
                                                       "runIds": [str(uuid.uuid4())]})) == 404

    await js.call("runs.delete", two["thread_id"], second["run_id"])
    assert await status_of(js.call("runs.get", two["thread_id"], second["run_id"])) == 404
    assert await js.call("runs.list", two["thread_id"]) == []
    assert [run["run_id"] for run in await js.call("runs.list", one["thread_id"])] == [first["run_id"]]


async def test_a_run_created_with_a_webhook_posts_it_signed_when_the_run_ends(
        js: JsClient, receiver: WebhookReceiver) -> None:
    path = str(uuid.uuid4())
    thread = await js.call("threads.create")
    run = await js.call("runs.create", thread["thread_id"], GRAPH_ID, {
        "input": human(REQUEST), "webhook": receiver.url(path), "metadata": {"source": "js"}})
    await js.call("runs.join", thread["thread_id"], run["run_id"])
    [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 1 and posted.signature_valid
    body = posted.json()
    assert (body["run_id"], body["thread_id"], body["assistant_id"]) == (run["run_id"], thread["thread_id"],
                                                                         ASSISTANT_ID)
    assert (body["status"], body["kind"], body["metadata"]) == ("success", "run", {"source": "js"})

