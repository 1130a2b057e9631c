"""A task awaiting approval, seen through the task API and the LangGraph API of one service: the
stored `pending_approval` carries the same standard human-in-the-loop request as the thread's
interrupt, and a standard decision, on the thread or the task API's approve, answers it. SQLite
and Postgres."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.test_task_api import POST, api, wait_for_status  # noqa: F401 - the fixture
from tests.unit.test_approval_hitl import GOOD_EDIT, PLACEHOLDER_EDIT, with_sentence

STANDARD_CONFIG = [{"action_name": "publish_draft", "allowed_decisions": ["approve", "edit", "reject"]}]


async def test_pending_approval_carries_the_hitl_request_of_the_threads_interrupt(
        api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    accepted = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()
    task = await wait_for_status(api, accepted["id"], "awaiting_approval")
    pending = task["pending_approval"]
    state = (await api.get(f"/threads/{accepted['thread_id']}/state")).json()
    interrupt = state["interrupts"][0]["value"]
    assert pending["review_configs"] == interrupt["review_configs"] == STANDARD_CONFIG
    assert pending["action_requests"] == interrupt["action_requests"]
    assert pending["action_requests"][0]["args"]["markdown"] == pending["markdown"]
    # The task API's own answer still finishes the task.
    response = await api.post(f"/api/tasks/{accepted['id']}/approve", json={"approved": True})
    assert response.status_code == 200
    done = await wait_for_status(api, accepted["id"], "completed")
    assert done["pending_approval"] is None and done["result"]["approval"]["attempt"] == 1


async def test_a_standard_reject_on_the_thread_redrafts_the_task_with_its_message(
        api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    accepted = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()
    await wait_for_status(api, accepted["id"], "awaiting_approval")
    resume = {"decisions": [{"type": "reject", "message": "Mention uvloop"}]}
    response = await api.post(f"/threads/{accepted['thread_id']}/runs/wait",
                              json={"assistant_id": "draftloop", "command": {"resume": resume}})
    assert response.status_code == 200, response.text
    offer = response.json()["__interrupt__"][0]["value"]
    assert offer["attempt"] == 2 and offer["action_requests"][0]["args"]["attempt"] == 2
    state = (await api.get(f"/threads/{accepted['thread_id']}/state")).json()
    assert state["values"]["approval"] == {"approved": False, "feedback": "Mention uvloop", "attempt": 1,
                                           "rejected": [1]}


async def test_standard_decisions_that_are_not_one_decision_are_a_422_and_the_task_keeps_waiting(
        api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    accepted = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()
    await wait_for_status(api, accepted["id"], "awaiting_approval")
    for resume, field in (({"decisions": [{"type": "approve"}, {"type": "reject"}]}, "command.resume.decisions"),
                          ({"decisions": [{"type": "edit", "edited_action": {"name": "publish_draft",
                                                                             "args": {"markdown": 3}}}]},
                           "command.resume.decisions.0.edited_action.args.markdown")):
        response = await api.post(f"/threads/{accepted['thread_id']}/runs",
                                  json={"assistant_id": "draftloop", "command": {"resume": resume}})
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"] == field
    assert (await api.get(f"/api/tasks/{accepted['id']}")).json()["status"] == "awaiting_approval"


def edit_of(markdown: str) -> dict[str, Any]:
    return {"decisions": [{"type": "edit", "edited_action": {"name": "publish_draft", "args": {"markdown": markdown}}}]}


async def test_the_approve_endpoint_takes_standard_decisions_and_shows_a_refused_edits_failures(
        api: httpx.AsyncClient) -> None:  # noqa: F811 - the imported fixture
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    offered = (await wait_for_status(api, task_id, "awaiting_approval"))["pending_approval"]["markdown"]
    response = await api.post(f"/api/tasks/{task_id}/approve", json=edit_of(with_sentence(offered, PLACEHOLDER_EDIT)))
    assert response.status_code == 200 and response.json()["status"] == "queued"
    pending = (await wait_for_status(api, task_id, "awaiting_approval"))["pending_approval"]
    assert "the edited draft fails the hard checks (placeholders:" in pending["error"]
    assert pending["action_requests"][0]["description"].startswith(pending["error"])
    response = await api.post(f"/api/tasks/{task_id}/approve", json=edit_of(with_sentence(offered, GOOD_EDIT)))
    assert response.status_code == 200
    done = await wait_for_status(api, task_id, "completed")
    assert GOOD_EDIT in done["result"]["markdown"] and PLACEHOLDER_EDIT not in done["result"]["markdown"]
    assert done["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1, "edited": True}


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"decisions": [{"type": "accept"}]}, "decisions.0.type", "must be one of approve, edit, reject"),
    ({"decisions": []}, "decisions", "must be a list of exactly one decision"),
    ({"decisions": [{"type": "approve"}], "approved": True}, "decisions", "goes alone"),
    ({"decisions": "approve"}, "decisions", "must be"),
])
async def test_standard_decisions_the_approve_endpoint_cannot_take_are_a_422_naming_the_field(
        api: httpx.AsyncClient, body: dict[str, Any], field: str, message: str) -> None:  # noqa: F811
    task_id = (await api.post("/api/tasks", json={**POST, "require_approval": True})).json()["id"]
    await wait_for_status(api, task_id, "awaiting_approval")
    response = await api.post(f"/api/tasks/{task_id}/approve", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == field and message in response.json()["fields"][0]["message"]
    assert (await api.get(f"/api/tasks/{task_id}")).json()["status"] == "awaiting_approval"
