"""The LangGraph Server API of `draftloop serve`, driven by the real JS SDK
(@langchain/langgraph-sdk as tests/js/package-lock.json pins it) in one long-lived Node process
(tests/js_sdk.py), against the module-wide server of test_langgraph_api.py on SQLite and
Postgres, with the model, Serper and Pexels behind loopback fakes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_ADMIN_NAME, admin_headers
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide server and its fixtures
    ASSISTANT_ID,
    REQUEST,
    Service,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)
from tests.js_sdk import JsClient, JsSdkError, NodeDriver, pinned_sdk_version, require_js

require_js()
PINNED_SDK_VERSION = pinned_sdk_version()  # read at import: file reads inside the event loop would block it

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

DRAFTLOOP = Path(sys.executable).with_name("draftloop")
GRAPH_ID = "draftloop"
APPROVAL = {"require_approval": True}
CLI_TIMEOUT = 60.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[NodeDriver]:
    """One Node process for the whole module, both backends: it holds no server state."""
    driver = await NodeDriver.start()
    try:
        yield driver
    finally:
        await driver.close()


@pytest.fixture
def js(node: NodeDriver, service: Service) -> JsClient:  # noqa: F811 - the imported fixture
    """`new Client({apiUrl, defaultHeaders: {Authorization: "Bearer ..."}})` on the module's server."""
    return node.client(service.url, headers=admin_headers())


def stream_body(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts between the run's metadata and the end of the stream, after checking those."""
    names = [part["event"] for part in parts]
    assert names and names[0] == "metadata", names
    assert set(parts[0]["data"]) >= {"run_id"}
    return [part for part in parts[1:] if part["event"] != "end"]


def offered_action(state: dict[str, Any]) -> dict[str, Any]:
    """The one action of a paused run's approval interrupt, in LangChain's HITL shape."""
    [interrupt] = state["interrupts"]
    request = interrupt["value"]
    [action] = request["action_requests"]
    [review] = request["review_configs"]
    assert action["name"] == review["action_name"] == "publish_draft"
    assert set(review["allowed_decisions"]) == {"approve", "edit", "reject"}
    assert action["args"]["title"] and action["args"]["markdown"]
    return action


def edited(markdown: str, title: str, sentence: str) -> str:
    """A reviewer's edit of an offered draft that keeps it within the hard gates: a new `# `
    title line and ``sentence`` at the end of the first paragraph."""
    heading, _, rest = markdown.partition("\n\n")
    assert heading.startswith("# "), heading
    paragraph, _, tail = rest.partition("\n\n")
    return f"# {title}\n\n{paragraph} {sentence}\n\n{tail}"


async def paused_for_approval(js: JsClient) -> tuple[str, dict[str, Any]]:
    """A thread whose run waits for approval, and its state."""
    thread = await js.call("threads.create")
    waited = await js.call("runs.wait", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST), "context": APPROVAL})
    assert "__interrupt__" in waited, waited
    state = await js.call("threads.getState", thread["thread_id"])
    assert state["next"] == ["approval"]
    return thread["thread_id"], state


async def create_api_key(service: Service, user: str, name: str) -> str:  # noqa: F811 - the imported fixture
    """`draftloop create-api-key USER --name NAME` on the server's database; the key, which the
    command prints on its last non-empty line."""
    process = await asyncio.create_subprocess_exec(
        str(DRAFTLOOP), "create-api-key", user, "--name", name, cwd=service.cwd, env=service.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(CLI_TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode == 0, f"create-api-key exited {process.returncode}: {err.decode(errors='replace')}"
    lines = [line.strip() for line in out.decode().splitlines() if line.strip()]
    assert lines, f"create-api-key printed nothing; stderr: {err.decode(errors='replace')}"
    return lines[-1]


# bearer tokens, runs, streams, state ---------------------------------------------------------------


async def test_the_driver_runs_the_pinned_sdk_version(node: NodeDriver) -> None:
    assert node.sdk_version == PINNED_SDK_VERSION


async def test_a_bearer_token_in_default_headers_authenticates_and_none_is_a_401(
    js: JsClient, node: NodeDriver, service: Service  # noqa: F811 - the imported fixture
) -> None:
    created = await js.call("threads.create", {"metadata": {"owner": "js"}})
    fetched = await js.call("threads.get", created["thread_id"])
    assert fetched["thread_id"] == created["thread_id"] and fetched["metadata"]["owner"] == "js"
    assert fetched["status"] == "idle"
    with pytest.raises(JsSdkError) as anonymous:
        await node.client(service.url).call("threads.create")
    assert anonymous.value.status == 401, anonymous.value
    with pytest.raises(JsSdkError) as forged:
        await node.client(service.url, headers={"Authorization": "Bearer not-a-token"}).call("threads.create")
    assert forged.value.status == 401, forged.value


@pytest.mark.parametrize(("mode", "event"), [("values", "values"), ("updates", "updates"),
                                             ("messages-tuple", "messages")])
async def test_runs_stream_yields_the_run_metadata_then_the_mode_s_events(js: JsClient, mode: str, event: str) -> None:
    thread = await js.call("threads.create")
    parts = await js.call("runs.stream", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST), "streamMode": mode})
    body = stream_body(parts)
    assert body and {part["event"] for part in body} == {event}, [p["event"] for p in parts]
    if mode == "values":
        assert body[-1]["data"]["result"]["passed"] is True and body[-1]["data"]["result"]["title"]
    elif mode == "updates":
        assert next(iter(body[-1]["data"])) == "finalize"
        assert {"route_intent", "research", "draft", "critique"} <= {next(iter(p["data"])) for p in body}
    else:
        # [message chunk, metadata] pairs: the draft node's tokens add up to the draft.
        chunk, meta = body[0]["data"]
        assert chunk["type"] in ("AIMessageChunk", "ai") and meta["langgraph_node"] in ("draft", "finalize")
        drafted = "".join(str(p["data"][0]["content"]) for p in body if p["data"][1]["langgraph_node"] == "draft")
        state = await js.call("threads.getState", thread["thread_id"])
        assert state["values"]["draft"]["title"] in drafted


async def test_runs_wait_returns_the_final_values_and_get_state_and_runs_list_agree(js: JsClient) -> None:
    thread = await js.call("threads.create")
    waited = await js.call("runs.wait", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    assert waited["result"]["passed"] is True and waited["result"]["title"]
    state = await js.call("threads.getState", thread["thread_id"])
    assert state["next"] == [] and state["values"]["result"] == waited["result"]
    assert state["checkpoint"]["thread_id"] == thread["thread_id"]
    runs = await js.call("runs.list", thread["thread_id"])
    assert [run["status"] for run in runs] == ["success"]
    assert (await js.call("threads.get", thread["thread_id"]))["status"] == "idle"


async def test_an_approval_resumed_with_approved_false_redrafts_with_the_feedback_then_approved_true_ships(
    js: JsClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread_id, state = await paused_for_approval(js)
    offered = state["interrupts"][0]["value"]
    assert offered["type"] == "approval" and offered["attempt"] == 1
    assert (await js.call("threads.get", thread_id))["status"] == "interrupted"
    drafts = graph_fakes.writer.calls.count("draft")

    feedback = "Open with a concrete example of a blocked event loop"
    again = await js.call("runs.wait", thread_id, GRAPH_ID,
                          {"command": {"resume": {"approved": False, "feedback": feedback}}})
    assert again["__interrupt__"][0]["value"]["attempt"] == 2
    assert graph_fakes.writer.calls.count("draft") == drafts + 1
    assert feedback in graph_fakes.writer.prompts[-1]

    done = await js.call("runs.wait", thread_id, GRAPH_ID, {"command": {"resume": {"approved": True, "feedback": ""}}})
    assert done["result"]["approval"]["approved"] is True and done["result"]["approval"]["attempt"] == 2
    assert "__interrupt__" not in done
    assert (await js.call("threads.get", thread_id))["status"] == "idle"
    # Newest first; a run that stopped at the interrupt is "interrupted" (docs/langgraph-api.md).
    assert [run["status"] for run in await js.call("runs.list", thread_id)] == ["success", "interrupted", "interrupted"]


async def test_a_human_message_of_text_content_blocks_writes_the_same_post_as_its_string_form(js: JsClient) -> None:
    as_string = await js.call("threads.create")
    as_blocks = await js.call("threads.create")
    plain = await js.call("runs.wait", as_string["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    blocks = await js.call("runs.wait", as_blocks["thread_id"], GRAPH_ID, {"input": {"messages": [
        {"role": "user", "content": [{"type": "text", "text": REQUEST}]}]}})
    assert blocks["result"]["passed"] is True
    assert blocks["result"]["title"] == plain["result"]["title"]
    assert blocks["request"]["topic"] == plain["request"]["topic"]


# API keys, thread metadata, stream modes, approvals (issue 20) -------------------------------------


async def test_an_api_key_from_the_cli_authenticates_the_js_client_and_a_wrong_one_is_a_401(
    node: NodeDriver, service: Service  # noqa: F811 - the imported fixture
) -> None:
    key = await create_api_key(service, TEST_ADMIN_NAME, "js")
    keyed = node.client(service.url, api_key=key)
    thread = await keyed.call("threads.create")
    waited = await keyed.call("runs.wait", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    assert waited["result"]["passed"] is True
    with pytest.raises(JsSdkError) as wrong:
        await node.client(service.url, api_key=key[:-4] + "xxxx").call("threads.create")
    assert wrong.value.status == 401, wrong.value


async def test_threads_search_by_graph_id_finds_a_thread_after_its_run(js: JsClient) -> None:
    thread = await js.call("threads.create")
    await js.call("runs.wait", thread["thread_id"], GRAPH_ID, {"input": human(REQUEST)})
    fetched = await js.call("threads.get", thread["thread_id"])
    assert fetched["metadata"]["graph_id"] == GRAPH_ID
    found = await js.call("threads.search", {"metadata": {"graph_id": GRAPH_ID}, "limit": 1000})
    assert thread["thread_id"] in [t["thread_id"] for t in found]
    assert {t["metadata"]["graph_id"] for t in found} == {GRAPH_ID}
    other = await js.call("threads.search", {"metadata": {"graph_id": "no-such-graph"}, "limit": 1000})
    assert thread["thread_id"] not in [t["thread_id"] for t in other]


async def test_stream_mode_messages_sends_metadata_then_growing_partials_and_complete_messages(js: JsClient) -> None:
    thread = await js.call("threads.create")
    parts = await js.call("runs.stream", thread["thread_id"], GRAPH_ID,
                          {"input": human(REQUEST), "streamMode": "messages"})
    body = stream_body(parts)
    assert {part["event"] for part in body} == {"messages/metadata", "messages/partial", "messages/complete"}
    described: set[str] = set()
    contents: dict[str, str] = {}
    for part in body:
        if part["event"] == "messages/metadata":
            described |= set(part["data"])
            continue
        [message] = part["data"]
        # Every message is introduced by its metadata; a partial carries the whole text so far.
        assert message["id"] in described, part
        text = str(message["content"])
        assert text.startswith(contents.get(message["id"], "")), (contents.get(message["id"]), text)
        contents[message["id"]] = text
    state = await js.call("threads.getState", thread["thread_id"])
    assert any(state["values"]["draft"]["title"] in text for text in contents.values())


async def test_stream_mode_events_sends_langchain_run_events_of_the_graph_and_its_model_calls(js: JsClient) -> None:
    thread = await js.call("threads.create")
    parts = await js.call("runs.stream", thread["thread_id"], GRAPH_ID,
                          {"input": human(REQUEST), "streamMode": "events"})
    body = stream_body(parts)
    assert {part["event"] for part in body} == {"events"}
    kinds = [part["data"]["event"] for part in body]
    assert kinds[0] == "on_chain_start" and kinds[-1] == "on_chain_end"
    assert "on_chat_model_stream" in kinds
    nodes = {part["data"].get("metadata", {}).get("langgraph_node") for part in body}
    assert {"route_intent", "research", "draft", "critique", "finalize"} <= nodes


async def test_an_approve_decision_ships_the_offered_draft(js: JsClient) -> None:
    thread_id, state = await paused_for_approval(js)
    action = offered_action(state)
    done = await js.call("runs.wait", thread_id, GRAPH_ID, {"command": {"resume": {"decisions": [{"type": "approve"}]}}})
    assert "__interrupt__" not in done, done.get("__interrupt__")
    assert done["result"]["title"] == action["args"]["title"]
    assert done["result"]["approval"]["approved"] is True
    assert (await js.call("threads.get", thread_id))["status"] == "idle"


async def test_an_edit_decision_ships_the_reviewer_s_title_and_markdown(js: JsClient) -> None:
    thread_id, state = await paused_for_approval(js)
    action = offered_action(state)
    title = "Async Python, edited by a reviewer"
    sentence = "A reviewer added this sentence about event loops by hand."
    markdown = edited(action["args"]["markdown"], title, sentence)
    done = await js.call("runs.wait", thread_id, GRAPH_ID, {"command": {"resume": {"decisions": [{
        "type": "edit", "edited_action": {"name": "publish_draft", "args": {"markdown": markdown, "title": title}}}]}}})
    assert "__interrupt__" not in done, done.get("__interrupt__")
    final = (await js.call("threads.getState", thread_id))["values"]
    assert final["result"]["title"] == title and final["draft"]["title"] == title
    assert sentence in final["result"]["markdown"] and final["draft"]["markdown"] == markdown
    assert final["result"]["approval"]["approved"] is True
    assert (await js.call("threads.get", thread_id))["status"] == "idle"


async def test_a_reject_decision_redrafts_with_its_message_and_offers_a_second_draft(
    js: JsClient, graph_fakes: GraphFakes  # noqa: F811 - the imported fixture
) -> None:
    thread_id, state = await paused_for_approval(js)
    offered_action(state)
    drafts = graph_fakes.writer.calls.count("draft")
    message = "Open with a concrete example of a blocked event loop"
    again = await js.call("runs.wait", thread_id, GRAPH_ID,
                          {"command": {"resume": {"decisions": [{"type": "reject", "message": message}]}}})
    assert "__interrupt__" in again
    assert graph_fakes.writer.calls.count("draft") == drafts + 1
    assert message in graph_fakes.writer.prompts[-1]
    second = await js.call("threads.getState", thread_id)
    offered_action(second)
    assert len(second["values"]["attempts"]) == 2
    done = await js.call("runs.wait", thread_id, GRAPH_ID, {"command": {"resume": {"decisions": [{"type": "approve"}]}}})
    assert done["result"]["approval"]["approved"] is True
    assert (await js.call("threads.get", thread_id))["status"] == "idle"


# webhooks (issue 21) -------------------------------------------------------------------------------


async def test_a_webhook_on_a_server_without_webhook_secret_is_a_422_naming_it_and_starts_no_run(js: JsClient) -> None:
    """This module's server has no WEBHOOK_SECRET; test_js_sdk_extras.py sees one signed and delivered."""
    thread = await js.call("threads.create")
    for call, args in (("runs.create", [thread["thread_id"], GRAPH_ID]), ("runs.create", [None, GRAPH_ID]),
                       ("runs.wait", [thread["thread_id"], GRAPH_ID])):
        with pytest.raises(JsSdkError, match="WEBHOOK_SECRET") as refused:
            await js.call(call, *args, {"input": human(REQUEST), "webhook": "https://hooks.example/run"})
        assert refused.value.status == 422, refused.value
    with pytest.raises(JsSdkError, match="WEBHOOK_SECRET") as cron:
        await js.call("crons.create", ASSISTANT_ID, {"schedule": "0 9 * * *", "webhook": "https://hooks.example/cron"})
    assert cron.value.status == 422
    assert await js.call("runs.list", thread["thread_id"]) == []
