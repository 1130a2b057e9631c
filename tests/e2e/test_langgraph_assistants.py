"""Assistants with versions, as langgraph-sdk drives them: create, update (a new version each),
list versions, set the latest, search, count, delete; runs and the task API take the latest
version's defaults below their own. Real langgraph-sdk client, real server process, on SQLite
and Postgres, with the model, Serper and Pexels behind loopback fakes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide server and its fixtures
    ASSISTANT_ID,
    REQUEST,
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
from tests.integration.test_task_api import wait_for_status

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

# Judge scores no draft passes with: a run drafts max_revisions + 1 times, which the result counts.
FAILING = [40]


async def attempts_and_type(sdk: LangGraphClient, assistant_id: str, **run: Any) -> tuple[int, str]:
    """Drafts made and the content type the graph worked to, of a run on a new thread."""
    thread = await sdk.threads.create()
    values = await sdk.runs.wait(thread["thread_id"], assistant_id, input=human(REQUEST), **run)
    return values["result"]["attempts"], values["request"]["content_type"]


async def test_each_update_is_a_new_version_and_runs_use_the_latest_versions_defaults(
        client: LangGraphClient, graph_fakes: GraphFakes) -> None:  # noqa: F811 - the imported fixtures
    graph_fakes.writer.scores = list(FAILING)
    made = await client.assistants.create("draftloop", name="newsletters", metadata={"team": "growth"},
                                          context={"max_revisions": 0, "content_type": "newsletter"})
    assert made["version"] == 1 and made["graph_id"] == "draftloop"
    assert made["config"]["configurable"] == made["context"] == {"max_revisions": 0, "content_type": "newsletter"}
    assert await attempts_and_type(client, made["assistant_id"]) == (1, "newsletter")

    updated = await client.assistants.update(made["assistant_id"], context={"max_revisions": 1},
                                              metadata={"stage": "two"})
    assert updated["version"] == 2 and updated["context"] == {"max_revisions": 1}
    assert updated["metadata"] == {"team": "growth", "stage": "two"}  # merged, as langgraph-api does
    versions = await client.assistants.get_versions(made["assistant_id"])
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["context"]["content_type"] == "newsletter"
    assert (await attempts_and_type(client, made["assistant_id"]))[0] == 2

    back = await client.assistants.set_latest(made["assistant_id"], 1)
    assert back["version"] == 1 and back["context"]["max_revisions"] == 0
    assert (await client.assistants.get(made["assistant_id"]))["version"] == 1
    assert await attempts_and_type(client, made["assistant_id"]) == (1, "newsletter")
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(made["assistant_id"], 7)


async def test_a_runs_own_context_and_configurable_win_over_its_assistants_defaults(
        client: LangGraphClient, graph_fakes: GraphFakes) -> None:  # noqa: F811
    graph_fakes.writer.scores = list(FAILING)
    made = await client.assistants.create("draftloop", context={"max_revisions": 0, "content_type": "newsletter"})
    assert await attempts_and_type(client, made["assistant_id"], context={"max_revisions": 1,
                                                                          "content_type": "email"}) == (2, "email")
    assert (await attempts_and_type(client, made["assistant_id"],
                                    config={"configurable": {"max_revisions": 1}}))[0] == 2
    # A run the assistant's defaults contradict is refused, not run on half of them.
    thread = await client.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(thread["thread_id"], made["assistant_id"], input=human(REQUEST),
                               context={"platform": "x"})
    assert refused.value.response.status_code == 422
    assert "social_post only, not to a newsletter" in refused.value.response.json()["detail"]


async def test_search_count_and_delete_and_the_built_in_assistant_stays(client: LangGraphClient) -> None:  # noqa: F811
    suite = str(uuid.uuid4())
    first = await client.assistants.create("draftloop", name="Beta posts", metadata={"suite": suite})
    second = await client.assistants.create("draftloop", name="alpha posts", metadata={"suite": suite})
    found = await client.assistants.search(metadata={"suite": suite}, sort_by="name", sort_order="asc")
    assert [a["assistant_id"] for a in found] == [second["assistant_id"], first["assistant_id"]]
    assert [a["name"] for a in await client.assistants.search(metadata={"suite": suite}, name="BETA")] == ["Beta posts"]
    paged = await client.assistants.search(metadata={"suite": suite}, limit=1, offset=1, sort_by="name",
                                           sort_order="asc", select=["assistant_id", "name"])
    assert paged == [{"assistant_id": first["assistant_id"], "name": "Beta posts"}]
    assert await client.assistants.count(metadata={"suite": suite}) == 2
    assert ASSISTANT_ID in {a["assistant_id"] for a in await client.assistants.search(graph_id="draftloop", limit=1000)}

    await client.assistants.delete(first["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(first["assistant_id"])
    assert await client.assistants.count(metadata={"suite": suite}) == 1
    with pytest.raises(ConflictError, match="built-in"):
        await client.assistants.delete(ASSISTANT_ID)
    assert (await client.assistants.get("draftloop"))["name"] == "draftloop"

    # delete_threads: the threads whose metadata names the assistant go with it, as in langgraph-api.
    theirs = await client.threads.create(metadata={"assistant_id": second["assistant_id"]})
    other = await client.threads.create(metadata={"assistant_id": str(uuid.uuid4())})
    await client.assistants.delete(second["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(theirs["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


async def test_create_refuses_another_graph_bad_defaults_and_a_taken_id_unless_asked_to_keep_it(
        service: Service) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        other = await http.post("/assistants", json={"graph_id": "other"})
        bad = await http.post("/assistants", json={"graph_id": "draftloop", "context": {"max_revisions": 99}})
        both = await http.post("/assistants", json={"graph_id": "draftloop", "context": {"tone": "casual"},
                                                    "config": {"configurable": {"tone": "academic"}}})
        assistant_id = str(uuid.uuid4())
        made = await http.post("/assistants", json={"graph_id": "draftloop", "assistant_id": assistant_id,
                                                    "name": "kept"})
        taken = await http.post("/assistants", json={"graph_id": "draftloop", "assistant_id": assistant_id})
        kept = await http.post("/assistants", json={"graph_id": "draftloop", "assistant_id": assistant_id,
                                                    "name": "new", "if_exists": "do_nothing"})
        bad_update = await http.patch(f"/assistants/{assistant_id}", json={"context": {"platform": "tiktok"}})
        run = await http.post("/runs/wait", json={"assistant_id": str(uuid.uuid4()), "input": human(REQUEST)})
    assert other.status_code == 404 and "other" in other.json()["detail"]
    assert bad.status_code == 422 and "max_revisions" in bad.text
    assert both.status_code == 400 and "configurable and context" in both.json()["detail"]
    assert made.status_code == 200
    assert taken.status_code == 409
    assert kept.status_code == 200 and kept.json()["name"] == "kept"
    assert bad_update.status_code == 422 and "platform" in bad_update.text
    assert run.status_code == 404 and "not found" in run.json()["detail"]


async def test_the_task_api_takes_an_assistants_defaults_under_its_own_fields(
        service: Service, client: LangGraphClient, graph_fakes: GraphFakes) -> None:  # noqa: F811
    graph_fakes.writer.scores = list(FAILING)
    made = await client.assistants.create("draftloop", context={"max_revisions": 0, "tone": "casual",
                                                                "audience": "site reliability engineers"})
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        queued = await http.post("/api/tasks", json={"request": REQUEST, "assistant_id": made["assistant_id"],
                                                     "tone": "academic"})
        assert queued.status_code == 202, queued.text
        done = await wait_for_status(http, queued.json()["id"], "completed", "failed", timeout=60)
        unknown = await http.post("/api/tasks", json={"request": REQUEST, "assistant_id": str(uuid.uuid4())})
    assert done["status"] == "completed", done["error"]
    # params end as the request the graph worked to: the task's tone, the assistant's audience.
    assert done["params"]["tone"] == "academic" and done["params"]["audience"] == "site reliability engineers"
    assert done["result"]["attempts"] == 1
    assert unknown.status_code == 404


async def test_delete_with_delete_threads_removes_the_threads_that_ran_with_it_and_its_crons(
        client: LangGraphClient) -> None:  # noqa: F811
    doomed = await client.assistants.create("draftloop", context={"max_revisions": 0})
    kept = await client.assistants.create("draftloop", context={"max_revisions": 0})
    ran = await client.threads.create()
    await client.runs.wait(ran["thread_id"], doomed["assistant_id"], input=human(REQUEST))
    other = await client.threads.create()
    await client.runs.wait(other["thread_id"], kept["assistant_id"], input=human(REQUEST))
    bare = await client.threads.create()
    # A cron of the deleted assistant on a thread it never ran on: the cron goes, the thread stays.
    cron = await client.crons.create_for_thread(bare["thread_id"], doomed["assistant_id"], schedule="0 9 * * 1",
                                                input=human(REQUEST))
    stateless_cron = await client.crons.create(doomed["assistant_id"], schedule="0 9 * * 1", input=human(REQUEST))

    await client.assistants.delete(doomed["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(ran["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get_state(ran["thread_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(doomed["assistant_id"])
    left = {found["cron_id"] for found in await client.crons.search(limit=1000)}
    assert not {cron["cron_id"], stateless_cron["cron_id"]} & left
    assert (await client.threads.get(other["thread_id"]))["metadata"]["assistant_id"] == kept["assistant_id"]
    assert (await client.threads.get(bare["thread_id"]))["thread_id"] == bare["thread_id"]
    assert len(await client.runs.list(other["thread_id"])) == 1


async def test_delete_without_delete_threads_keeps_them_and_stops_its_crons_and_runs_at_once(
        client: LangGraphClient, graph_fakes: GraphFakes) -> None:  # noqa: F811
    made = await client.assistants.create("draftloop", context={"max_revisions": 0})
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], made["assistant_id"], input=human(REQUEST))
    graph_fakes.writer.draft_latency = 3.0
    ticking = await client.threads.create()
    # Every second: ticks queue runs behind each other on the thread until the assistant goes.
    await client.crons.create_for_thread(ticking["thread_id"], made["assistant_id"], schedule="* * * * * *",
                                         input=human(REQUEST))
    for _ in range(100):
        if await client.runs.list(ticking["thread_id"]):
            break
        await asyncio.sleep(0.1)

    await client.assistants.delete(made["assistant_id"])
    assert await client.crons.search(assistant_id=made["assistant_id"]) == []
    runs = await client.runs.list(ticking["thread_id"], limit=100)
    assert runs and {run["status"] for run in runs} == {"interrupted"}  # cancelled, as langgraph-api does
    await asyncio.sleep(2.5)  # two more ticks' time: none comes
    assert len(await client.runs.list(ticking["thread_id"], limit=100)) == len(runs)
    assert len(await client.runs.list(thread["thread_id"])) == 1


async def test_delete_refuses_a_delete_threads_that_is_no_boolean_and_an_unknown_assistant(service: Service) -> None:  # noqa: F811
    made_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        await http.post("/assistants", json={"graph_id": "draftloop", "assistant_id": made_id})
        bad = await http.delete(f"/assistants/{made_id}", params={"delete_threads": "maybe"})
        kept = await http.get(f"/assistants/{made_id}")
        unknown = await http.delete(f"/assistants/{uuid.uuid4()}", params={"delete_threads": "true"})
    assert bad.status_code in (400, 422) and "delete_threads" in bad.text
    assert kept.status_code == 200
    assert unknown.status_code == 404


async def test_an_assistants_webhook_is_refused_with_422_when_the_server_signs_no_webhooks(service: Service) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        refused = await http.post("/assistants", json={"graph_id": "draftloop",
                                                      "context": {"webhook": "https://example.com/hook"}})
    assert refused.status_code == 422
    assert "context.webhook" in refused.text and "WEBHOOK_SECRET" in refused.text
