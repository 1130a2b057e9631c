"""An assistant's default webhook, end to end: a run, a stateless run, a cron's tick and a task of
the task API that run with the assistant and name no webhook of their own call it; a run's own
wins; it is checked like a run's on create and update. And the thread's values in the body,
bounded. The real langgraph-sdk client, a real `draftloop serve` (SQLite and Postgres) and a
real loopback receiver that checks every signature."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from langgraph_sdk.client import LangGraphClient

from devtools.fakes.webhooks import Received, WebhookReceiver
from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide fakes and their fixtures
    REQUEST,
    Service,
    client,
    graph_fakes,
    human,
    postgres_test_database,
    shared_backend,
    shared_fakes,
    shared_postgres,
)
from tests.e2e.test_webhooks import DELIVERY_TIMEOUT, QUIET_SECONDS, WEBHOOK_ENV, receiver  # noqa: F401
from tests.integration.conftest import PostgresTestDatabase, reset_schema
from tests.integration.test_task_api import wait_for_status
from tests.service_process import service_env

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

# Small enough that a finished run's values do not fit: the body must leave keys out.
MAX_VALUES_BYTES = 2000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(shared_fakes: GraphFakes, shared_postgres: PostgresTestDatabase | None,  # noqa: F811
                  receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:  # noqa: F811
    """test_webhooks.py's signing server, with the values in a body bounded to MAX_VALUES_BYTES."""
    workdir = tmp_path_factory.mktemp("assistant-webhooks")
    if shared_postgres is not None:
        await reset_schema(shared_postgres)
    env = service_env(shared_fakes, workdir / "data", None if shared_postgres is None else shared_postgres.url)
    svc = Service({**env, **WEBHOOK_ENV, "WEBHOOK_MAX_VALUES_BYTES": str(MAX_VALUES_BYTES)}, workdir)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


async def one_post(receiver: WebhookReceiver, path: str) -> Received:  # noqa: F811
    """The one signed POST to ``path``: a second one within QUIET_SECONDS fails the test."""
    [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 1 and posted.signature_valid
    return posted


async def test_a_run_without_a_webhook_calls_its_assistants_and_a_runs_own_webhook_wins(
        client: LangGraphClient, receiver: WebhookReceiver) -> None:  # noqa: F811
    default, own = str(uuid.uuid4()), str(uuid.uuid4())
    made = await client.assistants.create("draftloop", context={"max_revisions": 0, "webhook": receiver.url(default)})
    assert made["context"]["webhook"] == made["config"]["configurable"]["webhook"] == receiver.url(default)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], made["assistant_id"], input=human(REQUEST))
    body = (await one_post(receiver, default)).json()
    [run] = await client.runs.list(thread["thread_id"])
    assert (body["run_id"], body["assistant_id"], body["status"]) == (run["run_id"], made["assistant_id"], "success")

    await client.runs.wait(thread["thread_id"], made["assistant_id"], input=human(REQUEST), webhook=receiver.url(own))
    assert (await one_post(receiver, own)).json()["assistant_id"] == made["assistant_id"]
    assert len(receiver.at(default)) == 1


async def test_a_stateless_run_a_cron_tick_and_a_task_with_the_assistant_call_its_webhook(
        service: Service, client: LangGraphClient, receiver: WebhookReceiver) -> None:  # noqa: F811
    stateless, ticked, tasked = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    made = await client.assistants.create("draftloop", context={"max_revisions": 0,
                                                                "webhook": receiver.url(stateless)})
    await client.runs.wait(None, made["assistant_id"], input=human(REQUEST))
    assert (await one_post(receiver, stateless)).json()["assistant_id"] == made["assistant_id"]

    # The cron is made first and the assistant changed after: each tick reads the current version.
    # "reject" skips the ticks that fall while a run goes, so no queue of older runs builds up.
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(thread["thread_id"], made["assistant_id"], schedule="* * * * * *",
                                                input=human(REQUEST), multitask_strategy="reject")
    try:
        await client.assistants.update(made["assistant_id"], context={"max_revisions": 0,
                                                                      "webhook": receiver.url(ticked)})
        [posted] = (await receiver.wait_for(ticked, 1, DELIVERY_TIMEOUT))[:1]
    finally:
        await client.crons.delete(cron["cron_id"])
    assert posted.signature_valid and posted.json()["thread_id"] == thread["thread_id"]

    await client.assistants.update(made["assistant_id"], config={"configurable": {"webhook": receiver.url(tasked)}})
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        queued = await http.post("/api/tasks", json={"request": REQUEST, "assistant_id": made["assistant_id"]})
        assert queued.status_code == 202, queued.text
        await wait_for_status(http, queued.json()["id"], "completed", "failed", timeout=60)
    body = (await one_post(receiver, tasked)).json()
    assert (body["kind"], body["task_id"], body["assistant_id"]) == ("task", queued.json()["id"], made["assistant_id"])


@pytest.mark.parametrize(("url", "reason"), [
    ("http://example.com/hook", "must use https"),
    ("https://10.0.0.7/hook", "non-public address"),
])
async def test_an_assistants_webhook_that_breaks_the_rules_is_refused_on_create_and_update(
        service: Service, url: str, reason: str) -> None:
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        created = await http.post("/assistants", json={"graph_id": "draftloop", "context": {"webhook": url}})
        made = (await http.post("/assistants", json={"graph_id": "draftloop", "name": "hooked"})).json()
        updated = await http.patch(f"/assistants/{made['assistant_id']}",
                                   json={"config": {"configurable": {"webhook": url}}})
        versions = (await http.post(f"/assistants/{made['assistant_id']}/versions", json={})).json()
    assert created.status_code == 422 and "context.webhook" in created.text and reason in created.text
    assert updated.status_code == 422 and "config.configurable.webhook" in updated.text and reason in updated.text
    assert [version["version"] for version in versions] == [1]


async def test_the_body_holds_the_threads_values_bounded_by_leaving_the_largest_keys_out(
        client: LangGraphClient, receiver: WebhookReceiver) -> None:  # noqa: F811
    path = str(uuid.uuid4())
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "draftloop", input=human(REQUEST), webhook=receiver.url(path))
    body = (await one_post(receiver, path)).json()
    state = (await client.threads.get_state(thread["thread_id"]))["values"]
    values, omitted = body["values"], body["values_omitted"]
    assert len(json.dumps(values)) <= MAX_VALUES_BYTES
    assert omitted and set(values).isdisjoint(omitted) and set(values) | set(omitted) == set(state)
    assert values == {key: state[key] for key in values}
    # What was left out is larger than anything kept.
    assert min(len(json.dumps({key: state[key]})) for key in omitted) >= max(
        (len(json.dumps({key: state[key]})) for key in values), default=0)
