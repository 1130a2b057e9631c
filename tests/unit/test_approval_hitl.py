"""The approval interrupt in LangChain's standard human-in-the-loop shape (HITLRequest: one
`publish_draft` action, approve / edit / reject allowed) and resumes with `{"decisions": [...]}`:
parsed strictly, an edit re-checked by the critique's hard gates before it ships."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from devtools.fakes.writer import GraphFakes
from graph.configuration import GraphSettings
from graph.nodes.approval import InvalidDecision, parse_decision
from tests.unit.test_approval import REQUEST, Thread, thread  # noqa: F401 - the fixture

# What an edit adds to the offered text: a sentence the gates accept, and one they refuse.
GOOD_EDIT = "A reviewer added this sentence about event loops."
PLACEHOLDER_EDIT = "See [insert benchmark link] for numbers."


def approve() -> Command:
    return Command(resume={"decisions": [{"type": "approve"}]})


def edit(**args: Any) -> Command:
    return Command(resume={"decisions": [{"type": "edit", "edited_action": {"name": "publish_draft", "args": args}}]})


def reject(message: str) -> Command:
    return Command(resume={"decisions": [{"type": "reject", "message": message}]})


def with_sentence(markdown: str, sentence: str) -> str:
    """The text with ``sentence`` at the end of its first paragraph after the title."""
    head, _, rest = markdown.partition("\n\n")
    paragraph, _, tail = rest.partition("\n\n")
    return f"{head}\n\n{paragraph} {sentence}\n\n{tail}"


# parsing ---------------------------------------------------------------------------------------


def test_standard_decisions_parse_into_approve_reject_and_edit() -> None:
    assert parse_decision({"decisions": [{"type": "approve"}]}).approved is True
    rejected = parse_decision({"decisions": [{"type": "reject", "message": "Mention uvloop"}]})
    assert (rejected.approved, rejected.feedback) == (False, "Mention uvloop")
    assert parse_decision({"decisions": [{"type": "reject"}]}).feedback == ""
    edited = parse_decision({"decisions": [{"type": "edit", "edited_action": {
        "name": "publish_draft", "args": {"title": "New", "markdown": "# New\n\nText.", "attempt": 2, "score": 85.0}}}]})
    assert (edited.approved, edited.edited, edited.title, edited.markdown, edited.attempt) == (
        True, True, "New", "# New\n\nText.", 2)
    assert edited.other_args == {"score": 85.0}


def test_the_draftloop_shape_still_parses_as_before() -> None:
    decision = parse_decision({"approved": True, "feedback": "ok", "publish": True, "attempt": 1})
    assert (decision.approved, decision.feedback, decision.publish, decision.attempt, decision.edited) == (
        True, "ok", True, 1, False)
    assert parse_decision(False).approved is False


@pytest.mark.parametrize(("answer", "field", "message"), [
    ({"decisions": []}, "decisions", "must be a list of exactly one decision"),
    ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "decisions", "exactly one decision"),
    ({"decisions": {"type": "approve"}}, "decisions", "must be a list"),
    ({"decisions": [{"type": "accept"}]}, "decisions.0.type", "must be one of approve, edit, reject"),
    ({"decisions": ["approve"]}, "decisions.0.type", "must be one of approve, edit, reject"),
    ({"decisions": [{"type": "approve"}], "approved": True}, "approved", "is not a field of a decisions answer"),
    ({"decisions": [{"type": "approve", "message": "hi"}]}, "decisions.0.message", "is not a field of a decision"),
    ({"decisions": [{"type": "reject", "message": 5}]}, "decisions.0.message", "must be a string"),
    ({"decisions": [{"type": "edit"}]}, "decisions.0.edited_action", "is required"),
    ({"decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": {}}}]},
     "decisions.0.edited_action.name", "must be publish_draft"),
    ({"decisions": [{"type": "edit", "edited_action": {"name": "publish_draft", "args": {"markdown": 3}}}]},
     "decisions.0.edited_action.args.markdown", "must be a string"),
    ({"decisions": [{"type": "edit", "edited_action": {"name": "publish_draft", "args": {"attempt": "2"}}}]},
     "decisions.0.edited_action.args.attempt", "must be an attempt number"),
])
def test_a_standard_answer_that_is_not_one_decision_names_the_field(answer: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidDecision) as raised:
        parse_decision(answer)
    assert raised.value.field == field
    assert message in raised.value.message


# the interrupt ---------------------------------------------------------------------------------


async def test_the_interrupt_offers_one_publish_draft_action_beside_the_draftloop_fields(
        graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [85]
    # With research on, so that the action lists the sources the text may cite.
    researched = Thread(graph_fakes, GraphSettings(max_revisions=1))
    try:
        await researched.send({"messages": [HumanMessage(REQUEST)]})
        offer = await researched.offer()
        attempt = (await researched.attempts())[1]
    finally:
        await researched.deps.models.aclose()
    assert (offer["type"], offer["attempt"], offer["markdown"]) == ("approval", 1, attempt["markdown"])
    assert offer["review_configs"] == [{"action_name": "publish_draft", "allowed_decisions": ["approve", "edit", "reject"]}]
    [action] = offer["action_requests"]
    assert set(action) == {"name", "args", "description"} and action["name"] == "publish_draft"
    assert {k: action["args"][k] for k in ("title", "markdown", "attempt", "score", "passed")} == {
        "title": attempt["title"], "markdown": attempt["markdown"], "attempt": 1, "score": attempt["score"],
        "passed": True}
    assert action["args"]["sources"] and set(action["args"]["sources"][0]) == {"n", "title", "url"}
    assert "Publish attempt 1" in action["description"]


async def test_after_a_rejection_the_higher_scored_attempt_is_an_alternative_an_edit_can_ship(
        graph_fakes: GraphFakes, thread: Thread) -> None:  # noqa: F811 - the imported fixture
    graph_fakes.writer.scores = [85, 60]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    await thread.send(reject("Mention uvloop"))
    args = (await thread.offer())["action_requests"][0]["args"]
    attempts = await thread.attempts()
    assert args["attempt"] == 2 and [a["attempt"] for a in args["alternatives"]] == [1]
    # The whole action sent back with only the attempt changed, as a chat UI's edit form does.
    state = await thread.send(edit(**{**args, "attempt": 1}))
    result = state["result"]
    assert result["markdown"].startswith(attempts[1]["markdown"].strip())
    assert (result["attempt"], result["score"], result["passed"]) == (1, attempts[1]["score"], True)
    assert result["approval"] == {"approved": True, "feedback": "", "attempt": 1, "rejected": [1]}


# decisions through the graph -------------------------------------------------------------------


async def test_an_approve_decision_ships_the_offered_attempt(graph_fakes: GraphFakes,
                                                               thread: Thread) -> None:  # noqa: F811
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    attempt = (await thread.attempts())[1]
    state = await thread.send(approve())
    assert state["result"]["markdown"].startswith(attempt["markdown"].strip())
    assert state["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}


async def test_an_edit_that_passes_the_gates_ships_the_reviewers_title_and_text(
        graph_fakes: GraphFakes, thread: Thread) -> None:  # noqa: F811 - the imported fixture
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    args = (await thread.offer())["action_requests"][0]["args"]
    edited = with_sentence(args["markdown"], GOOD_EDIT)
    state = await thread.send(edit(**{**args, "title": "Async Python, reviewed", "markdown": edited}))
    result = state["result"]
    assert GOOD_EDIT in result["markdown"] and result["title"] == "Async Python, reviewed"
    assert result["passed"] is True and result["attempt"] == 1
    assert result["approval"] == {"approved": True, "feedback": "", "attempt": 1, "edited": True}
    # The attempt keeps what the model wrote; only what shipped is the reviewer's.
    assert GOOD_EDIT not in (await thread.attempts())[1]["markdown"]


async def test_a_title_only_edit_renames_the_pieces_heading_too(graph_fakes: GraphFakes,
                                                                 thread: Thread) -> None:  # noqa: F811
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    state = await thread.send(edit(title="Async Python, retitled"))
    assert state["result"]["title"] == "Async Python, retitled"
    assert state["result"]["markdown"].startswith("# Async Python, retitled\n")


async def test_an_edit_the_gates_fail_is_refused_with_the_failures_and_nothing_ships(
        graph_fakes: GraphFakes, thread: Thread) -> None:  # noqa: F811 - the imported fixture
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    offered = (await thread.offer())["markdown"]
    state = await thread.send(edit(markdown=with_sentence(offered, PLACEHOLDER_EDIT)))
    assert "result" not in state
    offer = await thread.offer()
    assert "the edited draft fails the hard checks (placeholders:" in offer["error"]
    assert offer["action_requests"][0]["description"].startswith(offer["error"])
    # Asked again, approving the offer as it was ships the model's text, unedited.
    state = await thread.send(approve())
    assert PLACEHOLDER_EDIT not in state["result"]["markdown"] and "edited" not in state["result"]["approval"]


@pytest.mark.parametrize(("args", "problem"), [
    ({"score": 100}, "decisions.0.edited_action.args.score: cannot be edited"),
    ({"passed": True, "verdict": "great"}, "decisions.0.edited_action.args.verdict: is not an argument"),
    ({"attempt": 9}, "attempt: 9 is not on offer"),
])
async def test_an_edit_of_what_is_not_editable_is_asked_again(graph_fakes: GraphFakes, thread: Thread,  # noqa: F811
                                                              args: dict[str, Any], problem: str) -> None:
    graph_fakes.writer.scores = [85]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    state = await thread.send(edit(**args))
    assert "result" not in state
    assert problem in (await thread.offer())["error"]


async def test_a_reject_decision_drafts_again_with_its_message_then_an_approval_ships_the_redraft(
        graph_fakes: GraphFakes, thread: Thread) -> None:  # noqa: F811 - the imported fixture
    graph_fakes.writer.scores = [85, 90]
    await thread.send({"messages": [HumanMessage(REQUEST)]})
    await thread.send(reject("Mention uvloop"))
    assert graph_fakes.writer.calls.count("draft") == 2 and "Mention uvloop" in graph_fakes.writer.prompts[-1]
    offer = await thread.offer()
    assert offer["attempt"] == 2 and offer["action_requests"][0]["args"]["attempt"] == 2
    state = await thread.send(approve())
    assert state["result"]["attempt"] == 2
    assert state["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 2, "rejected": [1]}
