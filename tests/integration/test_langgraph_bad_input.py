"""Bad bodies on the LangGraph Server API routes: each is a 422 naming the field, never a 500.

In the test's loop (httpx.ASGITransport) on SQLite and Postgres. Postgres matters: it refuses
what SQLite stores (an over-long id, a number where a text column is), so a value that slips
past validation fails there first.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.engine.api_runs import CONTEXT_FIELDS, DEFAULT_FIELDS
from app.http.lg_schemas import RunContext
from tests.integration.test_task_api import api  # noqa: F401 - fixture: the app in this loop, signed in as admin

THREAD = "5b0c7a52-8c3f-4b53-9f1a-6f1de1d0c001"
RUN = {"assistant_id": "draftloop"}
LONG_ID = "t" * 300

# (method, path, body, field). A str body is sent as-is (not JSON-encoded); {thread} is an
# existing thread.
CASES: list[tuple[str, str, Any, str]] = [
    # threads: create
    ("POST", "/threads", {"metadata": [1]}, "metadata"),
    ("POST", "/threads", {"metadata": "x"}, "metadata"),
    ("POST", "/threads", {"thread_id": 5}, "thread_id"),
    ("POST", "/threads", {"thread_id": LONG_ID}, "thread_id"),
    ("POST", "/threads", {"if_exists": ["raise"]}, "if_exists"),
    ("POST", "/threads", {"if_exists": "replace"}, "if_exists"),
    ("POST", "/threads", {"graph_id": {"a": 1}}, "graph_id"),
    ("POST", "/threads", {"supersteps": []}, "supersteps"),
    ("POST", "/threads", '{"metadata": {"a": NaN}}', "body"),
    ("POST", "/threads", '{"metadata": {"a": 1e999}}', "body"),
    ("POST", "/threads", "[1]", "body"),
    ("POST", "/threads", '"x"', "body"),
    ("POST", "/threads", "{not json", "body"),
    # threads: search
    ("POST", "/threads/search", {"limit": "x"}, "limit"),
    # Strict types: a number or a flag of another JSON type is refused, not coerced.
    ("POST", "/threads/search", {"limit": "10"}, "limit"),
    ("POST", "/threads/search", {"limit": True}, "limit"),
    ("POST", "/threads/search", {"offset": 1.0}, "offset"),
    ("POST", "/threads/search", {"limit": None}, "limit"),
    ("POST", "/threads/search", {"limit": -1}, "limit"),
    ("POST", "/threads/search", {"offset": "x"}, "offset"),
    ("POST", "/threads/search", {"offset": None}, "offset"),
    ("POST", "/threads/search", {"offset": -1}, "offset"),
    ("POST", "/threads/search", {"metadata": [1]}, "metadata"),
    ("POST", "/threads/search", {"ids": [1]}, "ids.0"),
    ("POST", "/threads/search", {"ids": "abc"}, "ids"),
    ("POST", "/threads/search", {"ids": [str(i) for i in range(1001)]}, "ids"),
    ("POST", "/threads/search", {"status": 5}, "status"),
    ("POST", "/threads/search", {"status": ["idle"]}, "status"),
    ("POST", "/threads/search", {"sort_by": ["thread_id"]}, "sort_by"),
    ("POST", "/threads/search", {"sort_by": "metadata"}, "sort_by"),
    ("POST", "/threads/search", {"sort_order": 1}, "sort_order"),
    ("POST", "/threads/search", {"values": [1]}, "values"),
    ("POST", "/threads/search", {"limit": 0}, "limit"),
    ("POST", "/threads/search", {"metadata": {'say "hi"': 1}}, "metadata"),
    ("POST", "/threads/search", {"values": {f"k{i}": i for i in range(51)}}, "values"),
    ("POST", "/threads/search", {"metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}},
     "metadata"),
    ("POST", "/threads/search", {"select": ["nope"]}, "select.0"),
    ("POST", "/threads/search", {"extract": {"a": "values.x"}}, "extract"),
    ("POST", "/threads/count", {"status": "asleep"}, "status"),
    ("POST", "/threads/count", {"values": "x"}, "values"),
    ("POST", "/threads/count", {"metadata": {'a"': 1}}, "metadata"),
    ("POST", "/threads/count", {"limit": 5}, "limit"),
    ("POST", "/threads/search", "[1]", "body"),
    # threads: update
    ("PATCH", "/threads/{thread}", {"metadata": [1]}, "metadata"),
    ("PATCH", "/threads/{thread}", {"metadata": "x"}, "metadata"),
    ("PATCH", "/threads/{thread}", {"ttl": 5}, "ttl"),
    # threads: state
    ("POST", "/threads/{thread}/state", {"values": [1]}, "values"),
    ("POST", "/threads/{thread}/state", {"values": "x"}, "values"),
    ("POST", "/threads/{thread}/state", {"values": {"messages": 5}}, "values"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "as_node": ["draft"]}, "as_node"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "as_node": "nowhere"}, "as_node"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "checkpoint_id": 5}, "checkpoint_id"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "checkpoint": {"checkpoint_id": 5}},
     "checkpoint.checkpoint_id"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "checkpoint": 5}, "checkpoint"),
    ("POST", "/threads/{thread}/state", {"values": {"feedback": "x"}, "checkpoint": {"checkpoint_ns": "sub"}},
     "checkpoint.checkpoint_ns"),
    ("POST", "/threads/{thread}/state/checkpoint", {"checkpoint": {"checkpoint_id": 5}}, "checkpoint.checkpoint_id"),
    ("POST", "/threads/{thread}/state/checkpoint", {"checkpoint": [1]}, "checkpoint"),
    ("POST", "/threads/{thread}/state/checkpoint", {"subgraphs": "perhaps"}, "subgraphs"),
    # threads: history
    ("POST", "/threads/{thread}/history", {"limit": "x"}, "limit"),
    ("POST", "/threads/{thread}/history", {"limit": -1}, "limit"),
    ("POST", "/threads/{thread}/history", {"limit": 10**30}, "limit"),
    ("POST", "/threads/{thread}/history", {"metadata": [1]}, "metadata"),
    ("POST", "/threads/{thread}/history", {"metadata": {"step'); --": 1}}, "metadata"),
    ("POST", "/threads/{thread}/history", {"metadata": {".step": 1}}, "metadata"),
    ("POST", "/threads/{thread}/history", {"before": 5}, "before"),
    ("POST", "/threads/{thread}/history", {"before": {"checkpoint_id": 5}}, "before.checkpoint_id"),
    ("POST", "/threads/{thread}/history", {"checkpoint": {"checkpoint_id": [1]}}, "checkpoint.checkpoint_id"),
    # assistants
    ("POST", "/assistants/search", {"limit": "x"}, "limit"),
    ("POST", "/assistants/search", {"limit": None}, "limit"),
    ("POST", "/assistants/search", {"offset": "x"}, "offset"),
    ("POST", "/assistants/search", {"metadata": [1]}, "metadata"),
    ("POST", "/assistants/search", {"metadata": "x"}, "metadata"),
    ("POST", "/assistants/search", {"name": {"a": 1}}, "name"),
    ("POST", "/assistants/search", {"graph_id": [1]}, "graph_id"),
    ("POST", "/assistants/search", {"select": 5}, "select"),
    ("POST", "/assistants/count", {"metadata": [1]}, "metadata"),
    ("POST", "/assistants/count", {"graph_id": 5}, "graph_id"),
    # runs
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_mode": 5}, "stream_mode"),
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_mode": {"values": 1}}, "stream_mode"),
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_mode": [5]}, "stream_mode.0"),
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_mode": ["values", "tools"]}, "stream_mode"),
    ("POST", "/threads/{thread}/runs", {**RUN, "checkpoint_id": 5}, "checkpoint_id"),
    ("POST", "/threads/{thread}/runs", {**RUN, "checkpoint_id": LONG_ID}, "checkpoint_id"),
    ("POST", "/threads/{thread}/runs", {**RUN, "checkpoint": {"checkpoint_id": 5}}, "checkpoint.checkpoint_id"),
    ("POST", "/threads/{thread}/runs", {**RUN, "checkpoint": "abc"}, "checkpoint"),
    ("POST", "/threads/{thread}/runs", {"assistant_id": 5}, "assistant_id"),
    ("POST", "/threads/{thread}/runs", {"input": {}}, "assistant_id"),
    ("POST", "/threads/{thread}/runs", "", "assistant_id"),
    ("POST", "/threads/{thread}/runs", "null", "assistant_id"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": [1]}, "config"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"configurable": [1]}}, "config.configurable"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"configurable": {"max_revisions": 99}}},
     "config.configurable.max_revisions"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"recursion_limit": "x"}}, "config.recursion_limit"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"tags": "x"}}, "config.tags"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"callbacks": []}}, "config.callbacks"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": [1]}, "context"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": "x"}, "context"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"max_revisions": "x"}}, "context.max_revisions"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"max_revisions": 1000}}, "context.max_revisions"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"quality_threshold": -1}}, "context.quality_threshold"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"require_approval": "perhaps"}},
     "context.require_approval"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"temperature": 0.1}}, "context.temperature"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"max_revisions": "1"}}, "context.max_revisions"),
    ("POST", "/threads/{thread}/runs", {**RUN, "context": {"require_approval": 1}}, "context.require_approval"),
    ("POST", "/threads/{thread}/runs", {**RUN, "config": {"configurable": {"quality_threshold": "80"}}},
     "config.configurable.quality_threshold"),
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_subgraphs": 0}, "stream_subgraphs"),
    ("POST", "/threads/{thread}/runs", {**RUN, "metadata": [1]}, "metadata"),
    ("POST", "/threads/{thread}/runs", {**RUN, "interrupt_before": "draft"}, "interrupt_before"),
    ("POST", "/threads/{thread}/runs", {**RUN, "interrupt_before": [1]}, "interrupt_before"),
    ("POST", "/threads/{thread}/runs", {**RUN, "interrupt_before": ["nowhere"]}, "interrupt_before"),
    ("POST", "/threads/{thread}/runs", {**RUN, "interrupt_after": 5}, "interrupt_after"),
    ("POST", "/threads/{thread}/runs", {**RUN, "interrupt_after": ["nowhere"]}, "interrupt_after"),
    ("POST", "/threads/{thread}/runs", {**RUN, "multitask_strategy": ["reject"]}, "multitask_strategy"),
    ("POST", "/threads/{thread}/runs", {**RUN, "multitask_strategy": "rollback"}, "multitask_strategy"),
    ("POST", "/threads/{thread}/runs", {**RUN, "if_not_exists": []}, "if_not_exists"),
    ("POST", "/threads/{thread}/runs", {**RUN, "on_disconnect": {}}, "on_disconnect"),
    ("POST", "/threads/{thread}/runs", {**RUN, "on_completion": "delete"}, "on_completion"),
    ("POST", "/threads/{thread}/runs", {**RUN, "durability": 5}, "durability"),
    ("POST", "/threads/{thread}/runs", {**RUN, "stream_subgraphs": "perhaps"}, "stream_subgraphs"),
    ("POST", "/threads/{thread}/runs", {**RUN, "webhook": "https://example.com/hook"}, "webhook"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": "x"}, "command"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {}}, "command"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {"goto": 5}}, "command.goto"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {"goto": {"node": 5}}}, "command.goto"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {"goto": "nowhere"}}, "command.goto"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {"update": [1]}}, "command.update"),
    ("POST", "/threads/{thread}/runs", {**RUN, "command": {"resume": 1, "rewind": True}}, "command.rewind"),
    ("POST", "/threads/{thread}/runs", {**RUN, "input": {}, "command": {"resume": 1}}, "command"),
    ("POST", "/threads/{thread}/runs/stream", {**RUN, "stream_mode": 5}, "stream_mode"),
    ("POST", "/threads/{thread}/runs/wait", {**RUN, "checkpoint_id": 5}, "checkpoint_id"),
    ("POST", f"/threads/{LONG_ID}/runs", {**RUN, "if_not_exists": "create"}, "thread_id"),
    ("POST", "/runs/wait", {**RUN, "context": {"max_revisions": "x"}}, "context.max_revisions"),
    ("POST", "/runs/stream", {**RUN, "on_completion": 5}, "on_completion"),
    ("POST", "/runs/stream", "[1]", "body"),
]


@pytest.fixture
async def thread(api: httpx.AsyncClient) -> str:  # noqa: F811 - the imported fixture
    response = await api.post("/threads", json={"thread_id": THREAD})
    assert response.status_code == 200, response.text
    return THREAD


def _field_named(error: dict[str, Any], field: str) -> bool:
    return field in {f["field"] for f in error.get("fields", [])}


def _mismatch(response: httpx.Response, field: str) -> str | None:
    """Why a response is not a 422 naming ``field``; None when it is."""
    if response.status_code != 422:
        return f"status {response.status_code}: {response.text[:300]}"
    error = response.json()
    if error.get("status") != 422 or error.get("error") != "unprocessable":
        return f"error body {error}"
    if not _field_named(error, field) or field not in error.get("detail", ""):
        return f"field {field!r} not named: {error}"
    return None


async def test_every_bad_langgraph_body_is_a_422_naming_the_field(
    api: httpx.AsyncClient, thread: str  # noqa: F811
) -> None:
    # One app for the whole matrix (an app start per case cost minutes); every case is still
    # checked and every mismatch reported.
    failures = []
    for method, path, body, field in CASES:
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response = await api.request(method, path.format(thread=thread), content=content,
                                     headers={"Content-Type": "application/json"})
        problem = _mismatch(response, field)
        if problem is not None:
            failures.append(f"{method} {path} {content[:80]!r}: {problem}")
    assert not failures, "\n".join(failures)
    assert len(CASES) >= 100


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"context": {"max_revisions": "1"}}, "context.max_revisions", 'must be an integer between 0 and 10, got the string "1"'),
    ({"context": {"require_approval": 1}}, "context.require_approval", "must be a JSON boolean (true or false), got 1"),
    ({"config": {"recursion_limit": 0}}, "config.recursion_limit", "must be an integer between 1 and 10000, got 0"),
    ({"multitask_strategy": "later"}, "multitask_strategy",
     'must be one of reject, enqueue, interrupt, rollback, got the string "later"'),
])
async def test_a_run_field_of_the_wrong_type_or_out_of_bounds_is_a_422_naming_its_rule(
    api: httpx.AsyncClient, thread: str, body: dict[str, Any], field: str, message: str  # noqa: F811
) -> None:
    response = await api.post(f"/threads/{thread}/runs", json={**RUN, **body})
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": field, "message": message}]


async def test_studio_s_text_plain_and_empty_bodies_are_still_read(
    api: httpx.AsyncClient, thread: str  # noqa: F811
) -> None:
    as_text = await api.post("/threads/search", content=json.dumps({"ids": [thread], "limit": 10}),
                             headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 200, as_text.text
    assert [t["thread_id"] for t in as_text.json()] == [thread]
    for path in ("/threads", "/threads/search", "/assistants/search", f"/threads/{thread}/history"):
        for content in (b"", b"null"):
            response = await api.post(path, content=content, headers={"Content-Type": "application/json"})
            assert response.status_code == 200, (path, content, response.text)


async def test_sdk_shaped_bodies_with_every_option_are_accepted(
    api: httpx.AsyncClient, thread: str  # noqa: F811
) -> None:
    checkpoint = {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": None, "checkpoint_map": None}
    for path, body in [
        ("/threads/search", {"metadata": {"graph_id": "draftloop"}, "ids": [thread], "status": "idle", "limit": 10,
                             "offset": 0, "sort_by": "created_at", "sort_order": "asc"}),
        ("/assistants/search", {"graph_id": "draftloop", "metadata": {}, "name": "draft", "limit": 10, "offset": 0,
                                "sort_by": "name", "sort_order": "asc", "select": ["assistant_id"]}),
        (f"/threads/{thread}/history", {"limit": 5, "before": checkpoint, "metadata": {"step": 1},
                                        "checkpoint": checkpoint}),
        (f"/threads/{thread}/state/checkpoint", {"checkpoint": checkpoint, "subgraphs": False}),
    ]:
        response = await api.post(path, json=body)
        assert response.status_code == 200, (path, response.text)
    patched = await api.patch(f"/threads/{thread}", json={"metadata": {"owner": "me"}})
    assert patched.status_code == 200 and patched.json()["metadata"] == {"owner": "me"}
    exists = await api.post("/threads", json={"thread_id": thread, "metadata": {}, "if_exists": "do_nothing",
                                              "graph_id": "draftloop"})
    assert exists.status_code == 200, exists.text


async def test_a_run_keeps_its_options_as_sent(api: httpx.AsyncClient, thread: str) -> None:  # noqa: F811
    body = {**RUN, "input": None, "stream_mode": ["values", "updates"], "config": {
        "configurable": {"require_approval": True, "user": "x"}, "tags": ["a"], "recursion_limit": 30},
        "context": {"max_revisions": 1}, "metadata": {"source": "test"}, "interrupt_before": ["draft"],
        "multitask_strategy": "enqueue", "durability": "sync", "on_disconnect": "continue"}
    response = await api.post(f"/threads/{thread}/runs", json=body)
    assert response.status_code == 200, response.text
    kwargs = response.json()["kwargs"]
    assert kwargs["stream_mode"] == ["values", "updates"] and kwargs["interrupt_before"] == ["draft"]
    # As sent, plus who sent it: the server's own key, as langgraph-api adds under auth.
    configurable = kwargs["config"]["configurable"]
    assert configurable.pop("langgraph_auth_user_id") and kwargs["config"] == body["config"]
    assert kwargs["context"] == {"max_revisions": 1}
    assert response.json()["metadata"] == {"source": "test"}
    await api.post(f"/threads/{thread}/runs/{response.json()['run_id']}/cancel")


def test_the_context_model_covers_every_context_field() -> None:
    # parse_run validates the context with RunContext; run_context() reads CONTEXT_FIELDS, run_input()
    # REQUEST_FIELDS, the driver "model": DEFAULT_FIELDS are all of them.
    assert CONTEXT_FIELDS < DEFAULT_FIELDS
    assert set(RunContext.model_fields) == DEFAULT_FIELDS


async def test_the_openapi_schema_documents_the_langgraph_bodies(api: httpx.AsyncClient) -> None:  # noqa: F811
    paths = (await api.get("/schema/openapi.json")).json()["paths"]
    for path, method in [("/threads", "post"), ("/threads/search", "post"), ("/threads/{thread_id}", "patch"),
                         ("/threads/{thread_id}/state", "post"), ("/threads/{thread_id}/history", "post"),
                         ("/threads/{thread_id}/runs", "post"), ("/runs/wait", "post"),
                         ("/assistants/search", "post"), ("/assistants/count", "post")]:
        assert "requestBody" in paths[path][method], (path, method)
