"""Every integer a client sends has an upper bound: one past it is a 4xx naming the field, never a
500 or a broken stream; the bound itself is accepted. On the task and admin API a typed body field
out of its range is a 422 like any other rule it breaks, and a number past the signed 64-bit range
(or a query parameter past its bound) is a 400; the LangGraph routes answer 422 as langgraph-api does. Typed fields have their own bounds; any other integer in a body (metadata,
graph input) may not pass the signed 64-bit range. On SQLite and Postgres, in the test's loop."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from app.http.assistants import MAX_XRAY_DEPTH
from app.http.lg_schemas import MAX_OFFSET, MAX_PAGE
from graph.state import MAX_ATTEMPT_NUMBER
from storage.models import MAX_ROW_ID
from tests.integration.test_task_api import POST, api, wait_for_status  # noqa: F401 - the api fixture

PAST_INT64 = MAX_ROW_ID + 1  # 9223372036854775808, the value of the reported 500s
THREAD = "6f1d2b0e-2a4c-4f5e-9d3b-000000000b01"
MESSAGES = {"messages": [{"role": "user", "content": "A 150-word blog post about tea"}]}


def _forged_audit_cursor(event_id: int) -> str:
    payload = json.dumps(["2026-01-01T00:00:00+00:00", str(event_id)]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.fixture
async def thread(api: httpx.AsyncClient) -> str:  # noqa: F811 - the imported fixture
    response = await api.post("/threads", json={"thread_id": THREAD})
    assert response.status_code == 200, response.text
    return THREAD


def names(response: httpx.Response, field: str) -> bool:
    return field in {f["field"] for f in response.json().get("fields", [])}


# (method, path, request arguments, the field named, status). {thread} is a thread that exists.
PAST_THE_BOUND: list[tuple[str, str, dict[str, Any], str, int]] = [
    # tasks
    ("get", "/api/tasks", {"params": {"limit": 201}}, "limit", 400),
    ("post", "/api/tasks", {"json": {**POST, "target_words": 5001}}, "target_words", 422),
    ("post", "/api/tasks", {"json": {**POST, "target_words": PAST_INT64}}, "target_words", 400),
    # posts
    ("get", "/api/posts", {"params": {"limit": 201}}, "limit", 400),
    ("post", "/api/posts", {"json": {"title": "t", "featured_image": {"url": "https://i.example", "id": PAST_INT64}}},
     "featured_image.id", 400),
    ("post", "/api/posts", {"json": {"title": "t", "featured_image": {"url": "https://i.example", "width": 100_001}}},
     "featured_image.width", 422),
    # settings
    ("get", "/api/settings/max_revisions/history", {"params": {"limit": 201}}, "limit", 400),
    ("get", "/api/settings/max_revisions/history", {"params": {"cursor": str(PAST_INT64)}}, "cursor", 400),
    ("post", "/api/settings/max_revisions/rollback", {"json": {"to": PAST_INT64}}, "to", 400),
    ("put", "/api/settings/max_revisions", {"json": {"value": 11}}, "value", 422),
    ("put", "/api/settings/max_revisions", {"json": {"value": PAST_INT64}}, "value", 400),
    # audit
    ("get", "/api/audit", {"params": {"limit": 201}}, "limit", 400),
    ("get", "/api/audit", {"params": {"status": 600}}, "status", 400),
    ("get", "/api/audit", {"params": {"cursor": _forged_audit_cursor(PAST_INT64)}}, "cursor", 400),
    # threads
    ("post", "/threads", {"json": {"metadata": {"n": PAST_INT64}}}, "metadata.n", 422),
    ("post", "/threads/search", {"json": {"limit": MAX_PAGE + 1}}, "limit", 422),
    ("post", "/threads/search", {"json": {"offset": MAX_OFFSET + 1}}, "offset", 422),
    ("post", "/threads/search", {"json": {"offset": PAST_INT64}}, "offset", 422),
    ("post", "/threads/search", {"json": {"metadata": {"n": -PAST_INT64 - 1}}}, "metadata.n", 422),
    ("post", "/threads/{thread}/history", {"json": {"limit": 1001}}, "limit", 422),
    # Was a 500 on SQLite: its checkpointer binds filter values, and the driver overflowed.
    ("post", "/threads/{thread}/history", {"json": {"metadata": {"step": PAST_INT64}}}, "metadata.step", 422),
    ("patch", "/threads/{thread}", {"json": {"metadata": {"n": PAST_INT64}}}, "metadata.n", 422),
    # runs
    ("get", "/threads/{thread}/runs", {"params": {"limit": 201}}, "limit", 422),
    ("get", "/threads/{thread}/runs", {"params": {"offset": MAX_OFFSET + 1}}, "offset", 422),
    ("get", "/threads/{thread}/runs", {"params": {"offset": PAST_INT64}}, "offset", 422),
    ("post", "/threads/{thread}/runs", {"json": {"assistant_id": "draftloop", "input": MESSAGES,
                                                 "config": {"recursion_limit": 10_001}}}, "config.recursion_limit", 422),
    ("post", "/threads/{thread}/runs", {"json": {"assistant_id": "draftloop", "input": MESSAGES,
                                                 "context": {"quality_threshold": 101}}}, "context.quality_threshold", 422),
    ("post", "/threads/{thread}/runs", {"json": {"assistant_id": "draftloop",
                                                 "input": {**MESSAGES, "request": {"target_words": PAST_INT64}}}},
     "input.request.target_words", 422),
    ("post", "/runs/wait", {"json": {"assistant_id": "draftloop", "input": MESSAGES, "metadata": {"n": PAST_INT64}}},
     "metadata.n", 422),
    # assistants
    ("post", "/assistants/search", {"json": {"limit": MAX_PAGE + 1}}, "limit", 422),
    ("post", "/assistants/search", {"json": {"offset": MAX_OFFSET + 1}}, "offset", 422),
    ("get", "/assistants/draftloop/graph", {"params": {"xray": str(MAX_XRAY_DEPTH + 1)}}, "xray", 422),
    ("get", "/assistants/draftloop/graph", {"params": {"xray": str(PAST_INT64)}}, "xray", 422),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "field", "status"), PAST_THE_BOUND,
                         ids=[f"{m} {p} {f}" for m, p, _, f, _ in PAST_THE_BOUND])
async def test_an_integer_past_its_bound_is_a_4xx_naming_the_field(
    api: httpx.AsyncClient, thread: str, method: str, path: str, kwargs: dict[str, Any], field: str, status: int,  # noqa: F811 - the imported fixture
) -> None:
    response = await api.request(method.upper(), path.format(thread=thread), **kwargs)
    assert response.status_code == status, response.text
    assert names(response, field), response.text


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("get", "/threads/{thread}/runs", {"params": {"offset": MAX_OFFSET, "limit": 200}}),
    ("post", "/threads/search", {"json": {"limit": MAX_PAGE, "offset": MAX_OFFSET}}),
    ("post", "/assistants/search", {"json": {"limit": MAX_PAGE, "offset": MAX_OFFSET}}),
    ("get", "/assistants/draftloop/graph", {"params": {"xray": str(MAX_XRAY_DEPTH)}}),
    ("post", "/threads", {"json": {"metadata": {"n": MAX_ROW_ID, "m": -MAX_ROW_ID - 1}}}),
    ("post", "/threads/{thread}/history", {"json": {"limit": 1000, "metadata": {"step": MAX_ROW_ID}}}),
    ("get", "/api/audit", {"params": {"cursor": _forged_audit_cursor(MAX_ROW_ID)}}),
])
async def test_an_integer_at_its_bound_is_accepted(
    api: httpx.AsyncClient, thread: str, method: str, path: str, kwargs: dict[str, Any],  # noqa: F811 - the imported fixture
) -> None:
    response = await api.request(method.upper(), path.format(thread=thread), **kwargs)
    assert response.status_code == 200, response.text


async def test_an_approval_naming_an_attempt_past_the_bound_is_a_4xx_naming_attempt(api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")

    for attempt, status in ((MAX_ATTEMPT_NUMBER + 1, 422), (PAST_INT64, 400)):
        response = await api.post(f"/api/tasks/{task_id}/approve", json={"approved": True, "attempt": attempt})
        assert response.status_code == status, response.text
        assert names(response, "attempt")
    assert (await api.get(f"/api/tasks/{task_id}")).json()["status"] == "awaiting_approval"


@pytest.mark.parametrize("header", [str(PAST_INT64), "-1", "12abc", "1" * 40])
async def test_a_last_event_id_that_is_no_event_id_is_a_4xx_before_the_stream_starts(
    api: httpx.AsyncClient, thread: str, header: str,  # noqa: F811 - the imported fixture
) -> None:
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    run = (await api.post(f"/threads/{thread}/runs", json={"assistant_id": "draftloop", "input": MESSAGES})).json()

    task_stream = await api.get(f"/api/tasks/{task_id}/events", headers={"Last-Event-ID": header})
    run_stream = await api.get(f"/threads/{thread}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": header})
    query = await api.get(f"/api/tasks/{task_id}/events", params={"last_event_id": header})

    assert (task_stream.status_code, run_stream.status_code, query.status_code) == (400, 422, 400), task_stream.text
    assert names(task_stream, "Last-Event-ID") and names(run_stream, "Last-Event-ID")
    assert names(query, "last_event_id")


async def test_a_last_event_id_within_the_bound_resumes_after_it(api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(api, task_id, "completed")
    whole = (await api.get(f"/api/tasks/{task_id}/events")).text
    ids = [int(line[4:]) for line in whole.splitlines() if line.startswith("id: ")]

    resumed = (await api.get(f"/api/tasks/{task_id}/events", headers={"Last-Event-ID": str(ids[-2])})).text

    assert [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")] == ids[-1:]
