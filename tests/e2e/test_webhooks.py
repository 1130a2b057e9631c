"""Signed webhooks of ended runs and tasks, end to end: the real langgraph-sdk client and a real
`draftloop serve` (SQLite and Postgres) calling a real loopback receiver that checks every
signature; retries, the URL rules, the admin listing, and the outbox surviving a kill -9."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from devtools.fakes.webhooks import WebhookReceiver
from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers, bearer, ensure_user
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide fakes and their fixtures
    ASSISTANT_ID,
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
from tests.integration.conftest import PostgresTestDatabase, reset_schema
from tests.service_process import service_env

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec-test-0123456789abcdef0123456789abcdef"
EDITOR_ID = "00000000-0000-4000-8000-0000000000c2"
WEBHOOK_ENV = {
    "WEBHOOK_SECRET": SECRET,
    # The receiver listens on 127.0.0.1 over plain http: allowed for this host only.
    "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "WEBHOOK_BACKOFF_SECONDS": "0.2",
    "WEBHOOK_POLL_SECONDS": "0.1",
    "WEBHOOK_MAX_ATTEMPTS": "3",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
}
DELIVERY_TIMEOUT = 30.0
# After the expected POSTs arrived: long enough for a duplicate (polls are 0.1 s) to show up.
QUIET_SECONDS = 1.0


async def documented_verify() -> Callable[[str, str, bytes], bool]:
    """The verification snippet of docs/webhooks.md, run as written."""
    text = await asyncio.to_thread(DOC.read_text, encoding="utf-8")
    section = text.split("## Verifying the signature", 1)[1].split("\n## ", 1)[0]
    [snippet] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - the documentation's own code
    verify: Callable[[str, str, bytes], bool] = namespace["verify"]
    return verify


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hooks = await WebhookReceiver(SECRET).start()
    try:
        yield hooks
    finally:
        await hooks.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(shared_fakes: GraphFakes, shared_postgres: PostgresTestDatabase | None,  # noqa: F811
                  receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """This module's server: the shared fakes, and webhooks signed with SECRET."""
    workdir = tmp_path_factory.mktemp("webhooks")
    if shared_postgres is not None:
        await reset_schema(shared_postgres)
    env = service_env(shared_fakes, workdir / "data", None if shared_postgres is None else shared_postgres.url)
    svc = Service({**env, **WEBHOOK_ENV}, workdir)
    server = await svc.start()
    await ensure_user(server.database_url, name="webhook-editor", role="editor", user_id=EDITOR_ID)
    try:
        yield svc
    finally:
        await svc.stop()


async def deliveries(service: Service, headers: dict[str, str], **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, headers=headers) as http:
        return await http.get("/api/webhooks/deliveries", params=params)


async def test_a_finished_run_posts_one_webhook_that_the_documented_snippet_verifies(
        client: LangGraphClient, receiver: WebhookReceiver) -> None:  # noqa: F811 - the imported fixture
    path = str(uuid.uuid4())
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), webhook=receiver.url(path),
                           metadata={"source": "webhook-test"})
    [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 1
    verify = await documented_verify()
    assert posted.signature_valid and verify(SECRET, posted.headers["x-draftloop-signature"], posted.body)
    assert not verify(SECRET, posted.headers["x-draftloop-signature"], posted.body.replace(b"success", b"error"))
    assert not verify("another-secret", posted.headers["x-draftloop-signature"], posted.body)
    body = posted.json()
    [run] = await client.runs.list(thread["thread_id"])
    assert (body["run_id"], body["thread_id"], body["assistant_id"]) == (run["run_id"], thread["thread_id"], ASSISTANT_ID)
    assert (body["status"], body["task_status"], body["kind"], body["task_id"]) == (
        "success", "completed", "run", run["run_id"])
    assert body["metadata"] == {"source": "webhook-test"} and body["created_at"] == run["created_at"]
    assert body["run_started_at"] and body["run_ended_at"] and body["webhook_sent_at"]
    assert posted.headers["x-draftloop-event"] == "run.ended" and posted.headers["x-draftloop-delivery"]
    # The thread's values at the run's end, whole (they fit WEBHOOK_MAX_VALUES_BYTES), as langgraph-api sends them.
    state = await client.threads.get_state(thread["thread_id"])
    assert body["values"] == state["values"] and body["values"]["result"] and "values_omitted" not in body


async def test_a_cron_tick_s_run_posts_the_cron_s_webhook(
        client: LangGraphClient, receiver: WebhookReceiver) -> None:  # noqa: F811 - the imported fixture
    path = str(uuid.uuid4())
    thread = await client.threads.create()
    # Every second on one thread: ticks queue behind each other; one delivery is enough here.
    cron = await client.crons.create_for_thread(thread["thread_id"], ASSISTANT_ID, schedule="* * * * * *",
                                                input=human(REQUEST), webhook=receiver.url(path))
    try:
        [posted] = (await receiver.wait_for(path, 1, DELIVERY_TIMEOUT))[:1]
    finally:
        await client.crons.delete(cron["cron_id"])
    body = posted.json()
    assert posted.signature_valid and body["thread_id"] == thread["thread_id"] and body["status"] == "success"


async def test_a_task_of_the_task_api_posts_its_webhook_with_its_task_and_post_ids(
        service: Service, receiver: WebhookReceiver) -> None:
    path = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        created = await http.post("/api/tasks", json={"request": REQUEST, "webhook": receiver.url(path)})
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
        task = (await http.get(f"/api/tasks/{task_id}")).json()
        posts = (await http.get("/api/posts", params={"status": "draft"})).json()
    body = posted.json()
    assert posted.signature_valid
    assert (body["kind"], body["task_id"], body["run_id"], body["thread_id"]) == ("task", task_id, task_id,
                                                                                 task["thread_id"])
    assert (body["task_status"], body["status"]) == (task["status"], "success")
    assert body["post_id"] in {post["id"] for post in posts["items"]}


async def test_a_webhook_answered_500_is_retried_and_each_attempt_is_listed_for_admins_only(
        client: LangGraphClient, service: Service, receiver: WebhookReceiver) -> None:  # noqa: F811
    path = str(uuid.uuid4())
    receiver.answer_first(path, 500)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), webhook=receiver.url(path))
    first, second = await receiver.wait_for(path, 2, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 2
    assert first.headers["x-draftloop-delivery"] == second.headers["x-draftloop-delivery"]
    assert first.signature_valid and second.signature_valid
    [run] = await client.runs.list(thread["thread_id"])

    listed = await deliveries(service, admin_headers(), run_id=run["run_id"])
    assert listed.status_code == 200, listed.text
    [delivery] = listed.json()["items"]
    assert (delivery["status"], delivery["attempt_count"], delivery["url"]) == ("delivered", 2, receiver.url(path))
    assert [(a["number"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 200)]
    assert delivery["attempts"][0]["error"] == "answered 500"
    assert (await deliveries(service, bearer(EDITOR_ID, "editor"))).status_code == 403


async def test_a_cancelled_run_posts_its_webhook_once_with_the_cancelled_status(
        client: LangGraphClient, graph_fakes: GraphFakes, receiver: WebhookReceiver) -> None:  # noqa: F811
    graph_fakes.writer.draft_latency = 3.0
    path = str(uuid.uuid4())
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), webhook=receiver.url(path))
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 1 and posted.signature_valid
    body = posted.json()
    assert (body["run_id"], body["status"], body["task_status"]) == (run["run_id"], "interrupted", "cancelled")


async def test_the_admin_listing_pages_with_a_cursor(service: Service) -> None:
    first = (await deliveries(service, admin_headers(), limit="1")).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (await deliveries(service, admin_headers(), limit="1", cursor=first["next_cursor"])).json()
    assert len(second["items"]) == 1 and second["items"][0]["id"] != first["items"][0]["id"]
    assert (await deliveries(service, admin_headers(), cursor="nonsense")).status_code == 422


@pytest.mark.parametrize(("url", "reason"), [
    ("http://example.com/hook", "must use https"),
    ("https://localhost/hook", "non-public address"),
    ("https://10.0.0.7/hook", "non-public address"),
    ("https://169.254.169.254/latest", "non-public address"),
    ("https://[::1]/hook", "non-public address"),
    ("https://user:secret@example.com/hook", "credentials"),
    ("not a url", "webhook URL"),
])
async def test_a_webhook_url_that_breaks_the_rules_is_refused_with_422_naming_it(
        service: Service, url: str, reason: str) -> None:
    async with httpx.AsyncClient(base_url=service.url, headers=admin_headers()) as http:
        thread = (await http.post("/threads", json={})).json()
        run = await http.post(f"/threads/{thread['thread_id']}/runs",
                              json={"assistant_id": ASSISTANT_ID, "input": human(REQUEST), "webhook": url})
        stateless = await http.post("/runs/wait", json={"assistant_id": ASSISTANT_ID, "input": human(REQUEST),
                                                        "webhook": url})
        task = await http.post("/api/tasks", json={"request": REQUEST, "webhook": url})
        background = await http.post("/runs", json={"assistant_id": ASSISTANT_ID, "input": human(REQUEST),
                                                    "webhook": url})
        cron = await http.post("/runs/crons", json={"assistant_id": ASSISTANT_ID, "schedule": "0 9 * * 1",
                                                    "input": human(REQUEST), "webhook": url})
        runs = (await http.get(f"/threads/{thread['thread_id']}/runs")).json()
        crons = (await http.post("/runs/crons/search", json={})).json()
    for response in (run, stateless, task, background, cron):
        assert response.status_code == 422, response.text
        assert "webhook" in response.text and reason in response.text, response.text
    assert runs == [] and crons == []


async def test_a_delivery_written_before_a_kill_9_is_sent_exactly_once_after_the_restart(
        service: Service, receiver: WebhookReceiver) -> None:
    """Runs last: it restarts the module's server. The first server ends the run with its
    webhook sending off (WEBHOOK_SEND=false), so the delivery sits in the outbox when it dies."""
    base = dict(service.env)
    path = str(uuid.uuid4())
    await service.stop()
    service.env = {**base, "WEBHOOK_SEND": "false"}
    try:
        await service.start()
        sdk = get_client(url=service.url, headers=admin_headers())
        try:
            thread = await sdk.threads.create()
            await sdk.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST), webhook=receiver.url(path))
            [run] = await sdk.runs.list(thread["thread_id"])
        finally:
            await sdk.aclose()
        [pending] = (await deliveries(service, admin_headers(), run_id=run["run_id"])).json()["items"]
        assert (pending["status"], pending["attempts"]) == ("pending", [])
        await asyncio.sleep(QUIET_SECONDS)
        assert receiver.at(path) == []
        await service.stop()  # SIGKILL
    finally:
        service.env = base
        await service.start()
    [posted] = await receiver.wait_for(path, 1, DELIVERY_TIMEOUT)
    await asyncio.sleep(QUIET_SECONDS)
    assert len(receiver.at(path)) == 1 and posted.signature_valid
    assert posted.json()["run_id"] == run["run_id"]
    assert posted.headers["x-draftloop-delivery"] == pending["id"]
