"""The rest of langgraph-api's thread and run routes, through the real langgraph-sdk client
against `draftloop serve` on SQLite and Postgres: copying a thread (its history comes along, and
the copy then goes its own way), pruning threads, the GET form of history, a thread's own
stream, background stateless runs (one or a batch), cancelling many runs (or rolling them back)
and deleting one."""

# The fixtures imported below are pytest arguments of the tests: ruff reads them as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module's server per backend and its fixtures
    ASSISTANT_ID,
    REQUEST,
    RUN_TIMEOUT,
    Service,
    client,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


def checkpoint_ids(history: list[dict[str, Any]]) -> list[str]:
    return [state["checkpoint"]["checkpoint_id"] for state in history]


async def status_code_of(call: Any) -> int:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await call
    return caught.value.response.status_code


async def until_run_done(parts: AsyncIterator[StreamPart], run_id: str) -> list[StreamPart]:
    """A thread's stream never ends by itself: read it up to the run's end."""
    seen: list[StreamPart] = []
    async with asyncio.timeout(RUN_TIMEOUT):
        async for part in parts:
            seen.append(part)
            if part.event == "metadata" and part.data.get("status") == "run_done" and part.data["run_id"] == run_id:
                return seen
    raise AssertionError(f"the stream ended before run {run_id} did: {[p.event for p in seen]}")


async def until_status(client: LangGraphClient, thread_id: str, run_id: str, wanted: str) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        while (await client.runs.get(thread_id, run_id))["status"] != wanted:
            await asyncio.sleep(0.05)


# copy, prune, history ---------------------------------------------------------------------------


async def test_a_copy_keeps_the_history_and_a_run_on_the_copy_leaves_the_original_alone(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"owner": "copy-test"})
    await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    before = await client.threads.get_history(thread["thread_id"], limit=100)
    copy: dict[str, Any] = await client.threads.copy(thread["thread_id"])  # type: ignore[func-returns-value]
    assert copy["thread_id"] != thread["thread_id"]
    assert copy["metadata"]["owner"] == "copy-test" and copy["status"] == "idle"
    copied = await client.threads.get_history(copy["thread_id"], limit=100)
    assert checkpoint_ids(copied) == checkpoint_ids(before)
    assert [s["values"] for s in copied] == [s["values"] for s in before]
    assert copied[0]["checkpoint"]["thread_id"] == copy["thread_id"]

    await client.runs.wait(copy["thread_id"], ASSISTANT_ID, input=human("Write a short post about green tea"))
    assert len(await client.threads.get_history(copy["thread_id"], limit=100)) > len(before)
    assert checkpoint_ids(await client.threads.get_history(thread["thread_id"], limit=100)) == checkpoint_ids(before)
    original = (await client.threads.get_state(thread["thread_id"]))["values"]
    assert original == before[0]["values"]


async def test_copying_a_thread_that_does_not_exist_is_a_409_as_langgraph_api(client: LangGraphClient) -> None:
    assert await status_code_of(client.threads.copy(str(uuid.uuid4()))) == 409


async def test_prune_deletes_the_threads_named_with_their_runs_and_nothing_else(client: LangGraphClient) -> None:
    ran = await client.threads.create()
    run = await client.runs.create(ran["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    await client.runs.join(ran["thread_id"], run["run_id"])
    bare = await client.threads.create()
    kept = await client.threads.create()
    result = await client.threads.prune([ran["thread_id"], bare["thread_id"], str(uuid.uuid4())])
    assert result == {"pruned_count": 2}
    for gone in (ran, bare):
        assert await status_code_of(client.threads.get(gone["thread_id"])) == 404
    assert await status_code_of(client.runs.get(ran["thread_id"], run["run_id"])) == 404
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]
    # The checkpoints went too: a thread made again under the same id starts empty.
    await client.threads.create(thread_id=ran["thread_id"])
    assert await client.threads.get_history(ran["thread_id"]) == []
    assert await client.threads.prune([]) == {"pruned_count": 0}


async def test_prune_keep_latest_keeps_the_state_drops_the_older_checkpoints_and_the_thread_runs_on(
    client: LangGraphClient,
) -> None:
    thread, other = await client.threads.create(), await client.threads.create()
    run = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    await client.runs.join(thread["thread_id"], run["run_id"])
    await client.runs.wait(other["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    before = await client.threads.get_state(thread["thread_id"])
    assert len(await client.threads.get_history(thread["thread_id"], limit=100)) > 1
    others = checkpoint_ids(await client.threads.get_history(other["thread_id"], limit=100))

    pruned = await client.threads.prune([thread["thread_id"], str(uuid.uuid4())], strategy="keep_latest")
    assert pruned == {"pruned_count": 1}
    after = await client.threads.get_state(thread["thread_id"])
    assert after["values"] == before["values"] and after["checkpoint"] == before["checkpoint"]
    assert after["next"] == before["next"] == []
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    assert checkpoint_ids(history) == [before["checkpoint"]["checkpoint_id"]]
    assert history[0]["parent_checkpoint"] is None
    # Only checkpoints went: the thread, its runs and the other thread's history stay.
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    assert [r["run_id"] for r in await client.runs.list(thread["thread_id"])] == [run["run_id"]]
    assert checkpoint_ids(await client.threads.get_history(other["thread_id"], limit=100)) == others

    # A new turn builds on the kept checkpoint.
    turn = await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human("Write a post about tea"))
    assert turn["result"]["passed"] is True
    assert len(turn["messages"]) > len(before["values"]["messages"])
    grown = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(grown) > 1 and checkpoint_ids(grown)[-1] == before["checkpoint"]["checkpoint_id"]


async def test_get_history_answers_as_the_post_form_with_limit_and_before(client: LangGraphClient, service: Service) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    posted = await client.threads.get_history(thread["thread_id"], limit=3)
    path = f"/threads/{thread['thread_id']}/history"
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        default = (await http.get(path)).json()
        three = (await http.get(path, params={"limit": 3})).json()
        older = (await http.get(path, params={"limit": 2, "before": posted[0]["checkpoint"]["checkpoint_id"]})).json()
        bad = await http.get(path, params={"limit": 0})
        missing = await http.get(f"/threads/{uuid.uuid4()}/history")
    assert checkpoint_ids(default) == checkpoint_ids(posted)[:1]  # langgraph-api's GET default is one
    assert three == posted
    assert checkpoint_ids(older) == checkpoint_ids(posted)[1:3]
    assert bad.status_code == 422 and missing.status_code == 404


# the thread's stream ----------------------------------------------------------------------------


async def test_a_thread_stream_follows_each_run_of_the_thread_and_resumes_after_last_event_id(
    client: LangGraphClient, graph_fakes: GraphFakes
) -> None:
    graph_fakes.writer.draft_latency = 0.5  # the run is still going when the stream joins
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), stream_mode="values")
    # threads.join_stream is a coroutine that answers the stream (runs.join_stream is the stream).
    stream = await client.threads.join_stream(thread["thread_id"])
    seen = await until_run_done(stream, first["run_id"])
    assert seen[-1].data == {"status": "run_done", "run_id": first["run_id"]}
    assert "values" in [p.event for p in seen]
    # The same stream goes on to the thread's next run.
    second = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human("Write a post about tea"))
    more = await until_run_done(stream, second["run_id"])
    assert more[0].event == "metadata" and more[0].data["run_id"] == second["run_id"]
    await stream.aclose()  # type: ignore[attr-defined]

    ids = [p.id for p in seen + more]
    assert ids == sorted(ids, key=int)
    again = await client.threads.join_stream(thread["thread_id"], last_event_id=seen[0].id)
    resumed = await until_run_done(again, second["run_id"])
    await again.aclose()  # type: ignore[attr-defined]
    assert [p.id for p in resumed] == ids[1:]
    lifecycle_stream = await client.threads.join_stream(thread["thread_id"], last_event_id=seen[0].id,
                                                        stream_mode="lifecycle")
    lifecycle = await until_run_done(lifecycle_stream, second["run_id"])
    await lifecycle_stream.aclose()  # type: ignore[attr-defined]
    assert {p.event for p in lifecycle} == {"metadata"}
    assert [p.id for p in lifecycle] == [p.id for p in resumed if p.event == "metadata"]


# stateless background runs ----------------------------------------------------------------------


async def test_a_background_stateless_run_keeps_its_thread_only_when_asked(client: LangGraphClient) -> None:
    kept = await client.runs.create(None, ASSISTANT_ID, input=human(REQUEST), on_completion="keep")
    assert kept["status"] == "pending"
    values = await client.runs.join(kept["thread_id"], kept["run_id"])
    assert values["result"]["passed"] is True
    assert (await client.threads.get(kept["thread_id"]))["metadata"]["temporary"] is True

    dropped = await client.runs.create(None, ASSISTANT_ID, input=human(REQUEST))
    async with asyncio.timeout(RUN_TIMEOUT):
        while True:
            try:
                await client.threads.get(dropped["thread_id"])
            except httpx.HTTPStatusError as gone:
                assert gone.response.status_code == 404
                break
            await asyncio.sleep(0.1)


async def test_a_batch_starts_one_stateless_run_per_item_or_none_when_one_is_bad(client: LangGraphClient) -> None:
    tag = {"batch": uuid.uuid4().hex}
    runs = await client.runs.create_batch([
        {"assistant_id": ASSISTANT_ID, "input": human(REQUEST), "metadata": tag, "on_completion": "keep"},
        {"assistant_id": ASSISTANT_ID, "input": human("Write a post about tea"), "metadata": tag,
         "on_completion": "keep"},
    ])
    assert len(runs) == 2 and len({run["thread_id"] for run in runs}) == 2
    for run in runs:
        assert (await client.runs.join(run["thread_id"], run["run_id"]))["result"]["passed"] is True
    bad_tag = {"batch": uuid.uuid4().hex}
    refused = client.runs.create_batch([
        {"assistant_id": ASSISTANT_ID, "input": human(REQUEST), "metadata": bad_tag},
        {"assistant_id": ASSISTANT_ID, "input": human(REQUEST), "metadata": bad_tag, "interrupt_before": ["nowhere"]},
    ])
    assert await status_code_of(refused) == 422
    assert await client.threads.search(metadata=bad_tag) == []


# cancelling many, deleting one ------------------------------------------------------------------


async def test_cancel_many_by_ids_or_by_status_cancels_the_running_runs(client: LangGraphClient,
                                                                        graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30.0
    one = await client.threads.create()
    two = await client.threads.create()
    first = await client.runs.create(one["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    second = await client.runs.create(two["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    await until_status(client, one["thread_id"], first["run_id"], "running")
    await client.runs.cancel_many(thread_id=one["thread_id"], run_ids=[first["run_id"]])
    await until_status(client, one["thread_id"], first["run_id"], "interrupted")
    assert (await client.runs.get(two["thread_id"], second["run_id"]))["status"] in ("pending", "running")

    await until_status(client, two["thread_id"], second["run_id"], "running")
    await client.runs.cancel_many(status="running")
    await until_status(client, two["thread_id"], second["run_id"], "interrupted")
    assert (await client.threads.get(two["thread_id"]))["status"] == "idle"

    assert await status_code_of(client.runs.cancel_many(thread_id=one["thread_id"], run_ids=[str(uuid.uuid4())])) == 404
    mixed = client.runs.cancel_many(thread_id=one["thread_id"], run_ids=[first["run_id"]], status="all")
    assert await status_code_of(mixed) == 422


async def until_checkpoints_past(client: LangGraphClient, thread_id: str, count: int) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        while len(await client.threads.get_history(thread_id, limit=100)) <= count:
            await asyncio.sleep(0.05)


async def test_a_rolled_back_run_goes_with_its_checkpoints_and_leaves_the_thread_as_before(
    client: LangGraphClient, graph_fakes: GraphFakes
) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    await client.runs.join(thread["thread_id"], first["run_id"])
    before = await client.threads.get_state(thread["thread_id"])
    history = checkpoint_ids(await client.threads.get_history(thread["thread_id"], limit=100))

    graph_fakes.writer.draft_latency = 30.0
    running = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human("Write a post about tea"))
    queued = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human("Write a post about coffee"))
    await until_status(client, thread["thread_id"], running["run_id"], "running")
    await until_checkpoints_past(client, thread["thread_id"], len(history))
    # A pending run (POST /runs/cancel), then the running one that has written checkpoints.
    await client.runs.cancel_many(thread_id=thread["thread_id"], run_ids=[queued["run_id"]], action="rollback")
    assert await status_code_of(client.runs.get(thread["thread_id"], queued["run_id"])) == 404
    await client.runs.cancel(thread["thread_id"], running["run_id"], action="rollback")

    assert await status_code_of(client.runs.get(thread["thread_id"], running["run_id"])) == 404
    assert [r["run_id"] for r in await client.runs.list(thread["thread_id"])] == [first["run_id"]]
    assert await client.threads.get_state(thread["thread_id"]) == before
    assert checkpoint_ids(await client.threads.get_history(thread["thread_id"], limit=100)) == history
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    # Rolling back a run that is gone, or with an unknown action, is refused.
    assert await status_code_of(client.runs.cancel(thread["thread_id"], running["run_id"], action="rollback")) == 404
    bad = client.runs.cancel(thread["thread_id"], first["run_id"], action="undo")  # type: ignore[arg-type]
    assert await status_code_of(bad) == 422


async def test_a_run_can_be_deleted_once_it_has_ended_and_not_before(client: LangGraphClient,
                                                                     graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30.0
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST))
    await until_status(client, thread["thread_id"], run["run_id"], "running")
    assert await status_code_of(client.runs.delete(thread["thread_id"], run["run_id"])) == 409
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    await client.runs.delete(thread["thread_id"], run["run_id"])
    assert await status_code_of(client.runs.get(thread["thread_id"], run["run_id"])) == 404
    assert await client.runs.list(thread["thread_id"]) == []
    assert await status_code_of(client.runs.delete(thread["thread_id"], run["run_id"])) == 404
