"""The task API in the test's loop (httpx.ASGITransport) over real SQLite and Postgres, with the
graph's model, Serper and Pexels behind loopback fakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_SECRET, admin_headers, ensure_user
from graph import formats
from storage.connection_budget import POSTGRES_CONNECTIONS
from tests.asgi import serve_in_loop

POST = {"request": "Write a 300-word blog post about async Python for backend developers, with a cover photo"}
FAST = dict(concurrency=4, lease_seconds=3.0, heartbeat_seconds=0.2, poll_seconds=0.05,
            sse_heartbeat_seconds=0.2, shutdown_grace_seconds=0.5, secret_key=TEST_SECRET)


def point_env_at_fakes(monkeypatch: pytest.MonkeyPatch, fakes: GraphFakes, data_dir: str) -> None:
    for name, value in {
        "LLM_PROVIDER": "ollama", "OLLAMA_BASE_URL": fakes.ollama.base_url, "LLM_TIMEOUT": "10",
        "LLM_MAX_RETRIES": "0", "SERPER_API_KEY": FAKE_SERPER_KEY, "SERPER_BASE_URL": fakes.serper.base_url,
        "PEXELS_API_KEY": FAKE_PEXELS_KEY, "PEXELS_BASE_URL": fakes.pexels.api_url,
        "DRAFTLOOP_DATA_DIR": data_dir,
        # The fake search results link to real sites: tests never read their pages.
        "RESEARCH_FETCH_PAGES": "false",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def api(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="test-worker", **FAST))
    await ensure_user(migrated_database_url)
    async with serve_in_loop(app) as client:
        client.headers.update(admin_headers())
        yield client


async def wait_for_status(client: httpx.AsyncClient, task_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/api/tasks/{task_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task stayed {body['status']}, wanted {statuses}")
        await asyncio.sleep(0.05)


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


async def test_post_task_answers_202_queued_with_location_then_completes(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/tasks", json=POST)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/api/tasks/{body['id']}"
    task = await wait_for_status(api, body["id"], "completed")
    result = task["result"]
    assert result["title"] and result["markdown"] and result["excerpt"] and result["word_count"] > 0
    assert result["passed"] is True and result["score"] >= 70 and result["dimensions"]
    assert result["attempts"] == 1
    assert result["sources"] and result["images"]
    assert task["model"] == {"provider": "ollama", "name": "llama3.2"}
    assert task["usage"]["input_tokens"] > 0 and task["usage"]["cost_usd"] == 0
    assert task["timings"]["run_ms"] is not None and task["error"] is None


async def test_structured_fields_alone_are_enough_to_queue_a_task(api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    response = await api.post("/api/tasks", json={"content_type": "newsletter", "topic": "Rust adoption",
                                                  "target_words": 200, "keywords": ["memory safety"],
                                                  "research": False, "images": False})
    assert response.status_code == 202
    task = await wait_for_status(api, response.json()["id"], "completed")
    assert task["params"]["content_type"] == "newsletter"
    assert "memory safety" in task["result"]["markdown"]
    assert graph_fakes.serper.server.requests == []


async def test_a_social_post_for_x_keeps_its_platform_and_a_tweet_length(api: httpx.AsyncClient,
                                                                        graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.junk_intent = True
    response = await api.post("/api/tasks", json={"request": "Cyber Monday online spend: one number, one takeaway",
                                                  "content_type": "social_post", "platform": "x"})
    assert response.status_code == 202
    task = await wait_for_status(api, response.json()["id"], "completed")
    assert task["params"]["platform"] == "x"
    assert task["params"]["target_words"] == formats.default_target_words("social_post", "x")


async def test_a_platform_for_a_type_other_than_a_social_post_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/tasks", json={"request": "Tides", "content_type": "newsletter",
                                                  "platform": "linkedin"})
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": "platform", "message": "a platform applies to a social_post "
                                                                         "only, not to a newsletter"}]


async def test_attempts_endpoint_lists_every_draft_with_its_scores(api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [40, 85]
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    attempts = (await api.get(f"/api/tasks/{task_id}/attempts")).json()["items"]
    assert [a["number"] for a in attempts] == [1, 2]
    assert [a["passed"] for a in attempts] == [False, True]
    assert "Apply the judge's suggestion after scoring 40." in attempts[0]["suggestions"]


async def test_list_filters_by_status_and_pages_without_gaps(api: httpx.AsyncClient) -> None:
    ids = [(await api.post("/api/tasks", json=POST)).json()["id"] for _ in range(5)]
    for task_id in ids:
        await wait_for_status(api, task_id, "completed")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "completed", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/tasks", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert (await api.get("/api/tasks", params={"status": "failed"})).json()["items"] == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get("/api/tasks", params={"created_after": future})).json()["items"] == []


async def test_events_after_completion_replay_the_whole_history_then_close(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    response = await api.get(f"/api/tasks/{task_id}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and events[0]["data"]["status"] == "queued"
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "completed"
    assert {"node_started", "node_finished", "attempt_scored"} <= set(kinds)
    finished = [e["data"]["node"] for e in events if e["event"] == "node_finished"]
    assert finished == ["route_intent", "research", "draft", "critique", "finalize"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


async def test_last_event_id_resumes_without_gaps_or_duplicates(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    everything = parse_sse((await api.get(f"/api/tasks/{task_id}/events")).text)
    middle = everything[len(everything) // 2]["id"]
    rest = parse_sse((await api.get(f"/api/tasks/{task_id}/events", headers={"Last-Event-ID": str(middle)})).text)
    assert [e["id"] for e in rest] == [e["id"] for e in everything if e["id"] > middle]


async def test_cancel_stops_a_running_task_within_a_second(api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "running")
    await asyncio.sleep(0.2)
    started = time.monotonic()
    response = await api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    task = await wait_for_status(api, task_id, "cancelled", timeout=1)
    assert time.monotonic() - started < 1
    assert task["status"] == "cancelled"
    again = await api.post(f"/api/tasks/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


async def test_approve_is_409_unless_the_task_awaits_approval(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True})
    assert response.status_code == 409
    assert "awaiting_approval" in response.json()["detail"]


async def test_approval_then_approve_completes(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True})
    assert response.status_code == 200
    task = await wait_for_status(api, task_id, "completed")
    assert task["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}


async def test_a_task_awaiting_approval_shows_the_draft_on_offer_and_the_attempts_so_far(
        api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    task = await wait_for_status(api, task_id, "awaiting_approval")
    pending = task["pending_approval"]
    attempts = (await api.get(f"/api/tasks/{task_id}/attempts")).json()["items"]
    assert [a["number"] for a in attempts] == [1]
    assert (pending["attempt"], pending["markdown"], pending["score"]) == (1, attempts[0]["markdown"],
                                                                            attempts[0]["score"])
    assert task["result"] is None and task["usage"]["input_tokens"] > 0
    await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True})
    done = await wait_for_status(api, task_id, "completed")
    assert done["pending_approval"] is None and done["result"]["attempt"] == 1


async def test_a_langgraph_resume_that_is_not_a_decision_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    accepted = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()
    task_id = accepted["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    for resume, field in (({"approved": "false", "feedback": "no"}, "command.resume.approved"),
                          ("yes", "command.resume")):
        response = await api.post(f"/threads/{accepted['thread_id']}/runs", json={"assistant_id": "draftloop",
                                                                    "command": {"resume": resume}})
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"] == field
    assert (await api.get(f"/api/tasks/{task_id}")).json()["status"] == "awaiting_approval"


async def test_an_approval_naming_an_attempt_not_on_offer_is_a_422(api: httpx.AsyncClient) -> None:
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True, "attempt": 4})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "attempt"


async def test_rejection_drafts_again_with_the_feedback(api: httpx.AsyncClient, graph_fakes: GraphFakes) -> None:
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    await api.post(f"/api/tasks/{task_id}/approve", json={"approved": False, "feedback": "Mention uvloop"})
    await asyncio.sleep(0.1)
    await wait_for_status(api, task_id, "awaiting_approval")
    assert graph_fakes.writer.calls.count("draft") == 2
    assert "Mention uvloop" in graph_fakes.writer.prompts[-1]
    await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True})
    await wait_for_status(api, task_id, "completed")


# A JSON body that breaks the model's rules is a 422 (it was a 400 before the messages named
# the rule; the 400 is kept for bodies that cannot be read at all).
@pytest.mark.parametrize(("body", "field", "message"), [
    ({}, "request", "is empty; give a `request` (what to write, in words) or a `topic`"),
    ({"request": "   "}, "request", "is empty; give a `request` (what to write, in words) or a `topic`"),
    ({"request": "x", "target_words": 10}, "target_words", "must be an integer between 20 and 5000, got 10"),
    ({"request": "x", "target_words": 9000}, "target_words", "must be an integer between 20 and 5000, got 9000"),
    ({"request": "x", "target_words": "many"}, "target_words",
     'must be an integer between 20 and 5000, got the string "many"'),
    ({"request": "x", "keywords": [f"k{i}" for i in range(11)]}, "keywords",
     "must be a list of at most 10 items, each a string of 1 to 80 characters, got a list of 11 items"),
    ({"request": "x", "keywords": "one"}, "keywords",
     'must be a list of at most 10 items, each a string of 1 to 80 characters, got the string "one"'),
    ({"request": "x", "keywords": ["ok", 3]}, "keywords.1", "must be a string of 1 to 80 characters, got 3"),
    ({"request": "x", "content_type": "poem"}, "content_type",
     'must be one of blog_post, social_post, newsletter, email, research_brief, got the string "poem"'),
    ({"request": "x", "platform": "instagram"}, "platform", 'must be one of x, linkedin, got the string "instagram"'),
    ({"request": "x", "tone": "angry"}, "tone",
     'must be one of professional, casual, academic, inspirational, got the string "angry"'),
    ({"request": "x", "style": "haiku"}, "style",
     'must be one of technical, narrative, listicle, educational, thought-leadership, got the string "haiku"'),
    ({"request": "x", "images": "lots"}, "images", 'must be a JSON boolean (true or false), got the string "lots"'),
    ({"request": "x", "surprise": 1}, "surprise",
     "is not a field of this body; its fields are request, content_type, platform, topic, audience, tone, "
     "style, target_words, keywords, images, research, require_approval, webhook, assistant_id"),
    ({"request": 42}, "request", "must be a string of at most 20000 characters, got 42"),
    ([1, 2], "body", "must be a JSON object, got a list of 2 items"),
])
async def test_bad_task_input_gets_a_422_naming_the_field_and_its_rule(api: httpx.AsyncClient, body: Any, field: str,
                                                                       message: str) -> None:
    response = await api.post("/api/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json() == {"status": 422, "error": "unprocessable", "detail": f"{field}: {message}",
                               "fields": [{"field": field, "message": message}]}


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("target_words", True, "must be an integer between 20 and 5000, got true"),
    ("target_words", "300", 'must be an integer between 20 and 5000, got the string "300"'),
    ("target_words", 300.0, "must be an integer between 20 and 5000, got 300.0"),
    ("research", 1, "must be a JSON boolean (true or false), got 1"),
    ("require_approval", "true", 'must be a JSON boolean (true or false), got the string "true"'),
    ("images", None, None),
])
async def test_returns_422_naming_the_field_when_a_json_type_is_wrong_instead_of_coercing_it(
        api: httpx.AsyncClient, field: str, value: Any, rule: str | None) -> None:
    response = await api.post("/api/tasks", json={"request": "A post about tea", field: value})
    if rule is None:
        # null is "not given" for every optional field.
        assert response.status_code == 202, response.text
        return
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": field, "message": rule}]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "is empty; send a JSON object (the OpenAPI schema at /schema describes it)"),
    ({"content": b"", "headers": {"content-type": "application/json"}},
     "is empty; send a JSON object (the OpenAPI schema at /schema describes it)"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}},
     "is not valid JSON: object keys must be strings (byte 1)"),
    ({"content": b"write me a post", "headers": {"content-type": "text/plain"}},
     "is not valid JSON: invalid character (byte 0)"),
])
async def test_an_empty_or_unreadable_body_is_a_400_that_says_so(api: httpx.AsyncClient, kwargs: dict[str, Any],
                                                                message: str) -> None:
    response = await api.post("/api/tasks", **kwargs)
    assert response.status_code == 400, response.text
    assert response.json() == {"status": 400, "error": "bad_request", "detail": f"body: {message}",
                               "fields": [{"field": "body", "message": message}]}


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("post", "/api/tasks", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/api/tasks", {"content": b"x" * 2_000_000, "headers": {"content-type": "application/json"}}, 413),
    ("get", "/api/tasks/not-a-uuid", {}, 404),
    ("get", "/api/tasks/8d4f7e0c-0000-4000-8000-000000000000", {}, 404),
    ("get", "/api/tasks", {"params": {"status": "sleeping"}}, 400),
    ("get", "/api/tasks", {"params": {"limit": 0}}, 400),
    ("get", "/api/tasks", {"params": {"cursor": "garbage"}}, 400),
    ("get", "/api/tasks", {"params": {"created_after": "yesterday"}}, 400),
    ("get", "/api/tasks", {"params": {"created_after": "2026-01-01T00:00:00"}}, 400),
    ("post", "/api/tasks/8d4f7e0c-0000-4000-8000-000000000000/approve", {"json": {"approved": True}}, 404),
    ("post", "/api/tasks/8d4f7e0c-0000-4000-8000-000000000000/cancel", {}, 404),
    ("delete", "/api/tasks", {}, 405),
])
async def test_bad_requests_get_json_4xx_never_500(api: httpx.AsyncClient, method: str, path: str,
                                                   kwargs: dict[str, Any], status: int) -> None:
    response = await getattr(api, method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["detail"]


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"approved": "perhaps"}, "approved", 'must be a JSON boolean (true or false), got the string "perhaps"'),
    ({"approved": 1}, "approved", "must be a JSON boolean (true or false), got 1"),
    ({"approved": "true"}, "approved", 'must be a JSON boolean (true or false), got the string "true"'),
    ({"approved": "false"}, "approved", 'must be a JSON boolean (true or false), got the string "false"'),
    ({"approved": 0}, "approved", "must be a JSON boolean (true or false), got 0"),
    ({"approved": True, "attempt": "2"}, "attempt", 'must be an integer between 1 and 10000, got the string "2"'),
    ({"feedback": "shorter"}, "approved", "is required"),
    ({"approved": True, "publish": "yes"}, "publish", 'must be a JSON boolean (true or false), got the string "yes"'),
])
async def test_approve_with_a_bad_body_is_422_naming_the_field_and_its_rule(api: httpx.AsyncClient, body: Any,
                                                                           field: str, message: str) -> None:
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    response = await api.post(f"/api/tasks/{task_id}/approve", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": field, "message": message}]


# Found by tests/e2e/test_schemathesis.py: Postgres stores neither NUL nor lone surrogates, so
# each of these was a 500 there (and stored, or looked up, as-is on SQLite).
@pytest.mark.parametrize(("method", "path", "kwargs", "field"), [
    ("post", "/api/tasks", {"json": {"request": "about a\x00b"}}, "request"),
    ("post", "/api/tasks", {"json": {"topic": "dogs", "keywords": ["ok", "a\x00"]}}, "keywords.1"),
    ("post", "/api/tasks", {"content": b'{"request": "about \\ud800"}',
                            "headers": {"content-type": "application/json"}}, "request"),
    ("get", "/api/tasks/a%00b", {}, "task_id"),
    ("get", "/api/tasks", {"params": {"cursor": "\x00"}}, "cursor"),
    ("get", "/threads/a%00b", {}, "thread_id"),
    ("post", "/threads", {"json": {"metadata": {"a": "x\x00"}}}, "metadata.a"),
    # The LangGraph routes take JSON sent as text/plain too (Studio does).
    ("post", "/threads", {"content": b'{"metadata": {"k\\u0000": 1}}', "headers": {"content-type": "text/plain"}},
     "metadata.k\\u0000"),
    ("post", "/api/auth/token", {"data": {"username": "a\x00", "password": "x"}}, "username"),
])
async def test_text_the_database_cannot_store_gets_a_400_naming_the_field(
    api: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    response = await getattr(api, method)(path, **kwargs)
    assert response.status_code == 400, response.text
    fields = response.json()["fields"]
    assert [f["field"] for f in fields] == [field]
    assert "NUL" in fields[0]["message"]


@pytest.mark.parametrize("path", ["/api/tasks", "/threads"])
async def test_json_nested_past_the_decoders_limit_gets_a_400_not_a_500(api: httpx.AsyncClient, path: str) -> None:
    # ~1,000 levels made msgspec (typed bodies) and json (the LangGraph routes) raise RecursionError.
    deep = b'{"request": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    response = await api.post(path, content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["fields"][0]["field"] == "body"


# Bytes that are not UTF-8 inside a JSON string made msgspec raise UnicodeDecodeError, which
# Litestar's decoder lets through: a 500 on every JSON route.
@pytest.mark.parametrize(("method", "path", "content_type"), [
    ("post", "/api/tasks", "application/json"),
    ("post", "/api/posts", "application/json"),
    ("put", "/api/settings/max_revisions", "application/json"),
    ("post", "/api/auth/token", "application/json"),
    ("post", "/threads", "application/json"),
    # Studio sends JSON as text/plain.
    ("post", "/threads/search", "text/plain"),
    ("post", "/threads/00000000-0000-4000-8000-000000000001/runs", "application/json"),
    ("post", "/runs/wait", "application/json"),
    ("post", "/assistants/search", "application/json"),
])
async def test_a_body_that_is_not_utf8_gets_a_400_naming_the_body(
    api: httpx.AsyncClient, method: str, path: str, content_type: str
) -> None:
    for body, at in ((b'{"request": "caf\xe9 au lait"}', 16), (b'{"title": "cut \xc3"}', 15), (b"\xff\xfe{}", 0)):
        response = await api.request(method, path, content=body, headers={"content-type": content_type})
        assert response.status_code == 400, (body, response.text)
        assert response.json()["fields"] == [{"field": "body", "message": f"is not valid UTF-8 (byte {at} of the body)"}]


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(api: httpx.AsyncClient) -> None:
    # JSON "\\u0000" is a backslash then "u0000": storable, so not refused.
    response = await api.post("/api/tasks", content=b'{"request": "explain the \\\\u0000 escape"}',
                              headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


async def test_health_ready_metrics_and_schema_answer(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health")).json() == {"status": "ok"}
    ready = await api.get("/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["checkpointer"]["ok"]
    assert checks["model"]["provider"] == "ollama" and checks["model"]["ok"]
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    metrics = (await api.get("/metrics")).text
    assert 'draftloop_tasks{status="completed"} 1.0' in metrics
    assert "draftloop_queue_depth" in metrics
    assert 'draftloop_node_duration_seconds_count{node="draft"}' in metrics
    assert 'draftloop_model_tokens{direction="input"}' in metrics
    assert "draftloop_http_request_duration_seconds_bucket" in metrics
    # Routes are labelled by their whole template, never by the raw path (one series per id).
    assert 'method="POST",route="/api/tasks",status="202"' in metrics
    assert 'method="GET",route="/api/tasks/{task_id}",status="200"' in metrics
    assert task_id not in metrics
    schema = (await api.get("/schema/openapi.json")).json()
    assert "/api/tasks" in schema["paths"]


async def test_ready_reports_each_connection_pools_use_against_its_size(
    api: httpx.AsyncClient, backend: str
) -> None:
    ready = await api.get("/ready")

    assert ready.status_code == 200
    body = ready.json()
    assert set(body) == {"status", "checks", "pools"}
    pools = body["pools"]
    if backend == "postgres":
        # Every pool of the budget but the listener, which is one connection and no pool.
        assert {name: pool["size"] for name, pool in pools.items()} == {
            name: size for name, size in POSTGRES_CONNECTIONS.items() if name != "listener"}
    else:
        assert set(pools) == {"database"}
    assert all(0 <= pool["checked_out"] <= pool["size"] for pool in pools.values())


async def test_ready_is_503_when_the_model_server_is_down(graph_fakes: GraphFakes, migrated_database_url: str,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                          free_port: int) -> None:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{free_port}")
    app = create_app(ServiceSettings(database_url=migrated_database_url, **FAST))
    async with serve_in_loop(app) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["model"]["ok"] is False

