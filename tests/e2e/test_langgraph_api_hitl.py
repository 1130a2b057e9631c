"""Approvals as chat UIs built on langgraph-sdk see them: the interrupt in LangChain's standard
human-in-the-loop shape, resumed with `{"decisions": [...]}` (approve, edit, reject). Real
langgraph-sdk client, real server process, on SQLite and Postgres, with the model, Serper and
Pexels behind loopback fakes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from devtools.fakes.writer import GraphFakes
from tests.e2e.test_langgraph_api import (  # noqa: F401 - the module-wide server and its fixtures
    ASSISTANT_ID,
    REQUEST,
    client,
    graph_fakes,
    human,
    postgres_test_database,
    service,
    shared_backend,
    shared_fakes,
    shared_postgres,
)
from tests.unit.test_approval_hitl import GOOD_EDIT, PLACEHOLDER_EDIT, with_sentence

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


def decision(**fields: Any) -> dict[str, Any]:
    return {"resume": {"decisions": [fields]}}


async def waiting_for_approval(sdk: LangGraphClient) -> tuple[str, dict[str, Any]]:
    """A new thread whose run waits for approval, and the interrupt's value."""
    thread = await sdk.threads.create()
    waited = await sdk.runs.wait(thread["thread_id"], ASSISTANT_ID, input=human(REQUEST),
                                 context={"require_approval": True})
    return thread["thread_id"], waited["__interrupt__"][0]["value"]


async def test_the_interrupt_in_the_run_result_and_thread_state_carries_the_hitl_request(
        client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread_id, value = await waiting_for_approval(client)
    assert value["review_configs"] == [{"action_name": "publish_draft",
                                        "allowed_decisions": ["approve", "edit", "reject"]}]
    [action] = value["action_requests"]
    assert action["name"] == "publish_draft" and action["args"]["markdown"] == value["markdown"]
    state = await client.threads.get_state(thread_id)
    assert state["interrupts"][0]["value"]["action_requests"] == value["action_requests"]


async def test_an_approve_decision_finishes_the_run(client: LangGraphClient) -> None:  # noqa: F811
    thread_id, value = await waiting_for_approval(client)
    done = await client.runs.wait(thread_id, ASSISTANT_ID, command=decision(type="approve"))
    assert done["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}
    assert done["result"]["markdown"].startswith(value["markdown"].strip())
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_an_edit_decision_ships_the_edited_text_and_a_failing_one_is_asked_again(
        client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread_id, value = await waiting_for_approval(client)
    args = value["action_requests"][0]["args"]
    refused = await client.runs.wait(thread_id, ASSISTANT_ID, command=decision(
        type="edit", edited_action={"name": "publish_draft",
                                    "args": {**args, "markdown": with_sentence(args["markdown"], PLACEHOLDER_EDIT)}}))
    again = refused["__interrupt__"][0]["value"]
    assert "fails the hard checks (placeholders:" in again["error"] and "result" not in refused
    done = await client.runs.wait(thread_id, ASSISTANT_ID, command=decision(
        type="edit", edited_action={"name": "publish_draft",
                                    "args": {**args, "markdown": with_sentence(args["markdown"], GOOD_EDIT)}}))
    assert GOOD_EDIT in done["result"]["markdown"] and done["result"]["passed"] is True
    assert done["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1, "edited": True}


async def test_a_reject_decision_drafts_again_with_its_message(client: LangGraphClient,  # noqa: F811
                                                               graph_fakes: GraphFakes) -> None:  # noqa: F811
    thread_id, _value = await waiting_for_approval(client)
    redrafted = await client.runs.wait(thread_id, ASSISTANT_ID,
                                       command=decision(type="reject", message="Mention uvloop"))
    offer = redrafted["__interrupt__"][0]["value"]
    assert offer["attempt"] == 2 and offer["action_requests"][0]["args"]["attempt"] == 2
    assert "Mention uvloop" in graph_fakes.writer.prompts[-1]
    done = await client.runs.wait(thread_id, ASSISTANT_ID, command=decision(type="approve"))
    assert done["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 2, "rejected": [1]}


async def test_decisions_that_are_not_one_decision_are_a_422_naming_the_field(
        client: LangGraphClient) -> None:  # noqa: F811 - the imported fixture
    thread_id, _value = await waiting_for_approval(client)
    for resume, field in (({"decisions": []}, "command.resume.decisions"),
                          ({"decisions": [{"type": "accept"}]}, "command.resume.decisions.0.type")):
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await client.runs.wait(thread_id, ASSISTANT_ID, command={"resume": resume})
        assert raised.value.response.status_code == 422
        assert raised.value.response.json()["fields"][0]["field"] == field
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
