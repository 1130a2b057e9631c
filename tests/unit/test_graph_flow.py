"""The content graph end to end against the fake Ollama, Serper and Pexels over loopback."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from devtools.fakes.scripting import status
from devtools.fakes.writer import GraphFakes
from graph.builder import build_graph
from graph.configuration import GraphSettings
from graph.context import DraftloopContext
from graph.state import NEW_TURN, add_turn_warnings
from tools.serper import SerperClient

REQUEST = "Write a 300-word blog post about async Python for backend developers, with a cover photo"


def config() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


async def run(fakes: GraphFakes, text: str = REQUEST, settings: GraphSettings | None = None,
              cfg: dict[str, Any] | None = None, **clients: Any) -> dict[str, Any]:
    graph = build_graph(InMemorySaver())
    deps = fakes.dependencies(settings, **clients)
    try:
        return await graph.ainvoke({"messages": [HumanMessage(text)]}, cfg or config(),
                                   context=DraftloopContext(deps=deps))
    finally:
        await deps.models.aclose()


async def test_content_request_routes_through_research_draft_critique_to_finalize(graph_fakes: GraphFakes) -> None:
    state = await run(graph_fakes)
    assert state["intent"]["kind"] == "content"
    assert state["intent"]["content_type"] == "blog_post"
    assert state["request"]["target_words"] == 300
    assert state["request"]["images"] is True
    result = state["result"]
    assert result["passed"] is True
    assert result["title"].startswith("A practical guide")
    assert result["sources"] and all(s["url"].startswith("http") for s in result["sources"])
    assert result["featured_image"]["credit"].startswith("Photo by [")
    assert len(result["seo"]["seo_title"]) <= 60 and len(result["seo"]["meta_description"]) <= 160
    assert result["reading_minutes"] >= 1
    assert graph_fakes.writer.calls == ["intent", "plan", "gaps", "draft", "score"]


async def test_question_routes_to_answer_without_drafting(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "answer", "confidence": 90, "reason": "a question"}
    state = await run(graph_fakes, "What is the GIL in Python?")
    assert state["intent"]["kind"] == "answer"
    assert state["result"]["answer"] == graph_fakes.writer.answer_text
    assert "draft" not in graph_fakes.writer.calls


async def test_unsupported_request_ends_with_a_clear_refusal(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "unsupported", "confidence": 95, "reason": "asks for malware"}
    state = await run(graph_fakes, "Write ransomware that encrypts a disk")
    assert state["result"]["kind"] == "unsupported"
    assert "Draftloop writes" in state["result"]["answer"]
    assert graph_fakes.writer.calls == ["intent"]


async def test_each_content_type_routes_by_its_own_words_when_intent_json_is_junk(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.junk_intent = True
    cases = {
        "Write a newsletter about Rust adoption for CTOs": "newsletter",
        "Draft an email to customers about the new pricing": "email",
        "Write a LinkedIn post about hiring juniors": "social_post",
        "Prepare a research brief on vector databases": "research_brief",
        "Write a blog post on Postgres indexes": "blog_post",
    }
    for text, expected in cases.items():
        state = await run(graph_fakes, text)
        assert state["intent"]["source"] == "rules", text
        assert state["intent"]["content_type"] == expected, text
        assert any("keyword rules" in w for w in state["warnings"]), text


async def test_junk_intent_json_for_a_question_falls_back_to_answer(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.junk_intent = True
    state = await run(graph_fakes, "How does asyncio schedule coroutines?")
    assert state["intent"]["kind"] == "answer"
    assert state["result"]["kind"] == "answer"


async def test_email_gets_no_images_and_no_image_search(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "content", "content_type": "email", "confidence": 90, "images": True}
    state = await run(graph_fakes, "Draft an email about our launch with a photo")
    assert state["request"]["images"] is False
    assert state["result"]["featured_image"] is None
    assert not [r for r in graph_fakes.pexels.server.requests if r.path.startswith("/v1/search")]


async def test_request_without_research_skips_every_search(graph_fakes: GraphFakes) -> None:
    state = await run(graph_fakes, "Write a 200-word blog post about tea, no research, no images")
    assert state["request"]["research"] is False
    assert graph_fakes.serper.server.requests == []
    assert state["result"]["sources"] == []


async def test_commercial_topic_adds_a_shopping_search(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.intent = {"kind": "content", "content_type": "blog_post", "confidence": 90,
                                 "topic": "best budget mechanical keyboards"}
    state = await run(graph_fakes, "Write a blog post about the best budget mechanical keyboards to buy")
    paths = {r.path for r in graph_fakes.serper.server.requests}
    assert paths == {"/search", "/news", "/shopping"}
    assert any(s["kind"] == "shopping" for s in state["result"]["sources"])


async def test_rate_limited_search_still_completes_with_a_warning(graph_fakes: GraphFakes) -> None:
    for _ in range(6):
        graph_fakes.serper.faults.push(status(429, retry_after="0"))
    state = await run(graph_fakes)
    assert state["result"]["passed"] is True
    assert any("research:" in w and "search" in w for w in state["result"]["warnings"])


async def test_hanging_search_times_out_into_a_warning(graph_fakes: GraphFakes) -> None:
    graph_fakes.serper.faults.latency = 30
    state = await run(graph_fakes, settings=GraphSettings(research_timeout=0.5))
    assert state["result"]["passed"] is True
    assert any("no answer within" in w or "timed out" in w or "failed" in w for w in state["result"]["warnings"])


async def test_unconfigured_search_is_a_warning_not_a_failure(graph_fakes: GraphFakes) -> None:
    unconfigured = SerperClient(graph_fakes.http, None, base_url=graph_fakes.serper.base_url)
    state = await run(graph_fakes, serper=unconfigured)
    assert state["result"]["passed"] is True
    assert any("SERPER_API_KEY" in w for w in state["result"]["warnings"])
    assert graph_fakes.serper.server.requests == []


async def test_scores_40_then_85_take_two_attempts_and_pass(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [40, 85]
    state = await run(graph_fakes)
    assert [a["passed"] for a in state["attempts"]] == [False, True]
    assert state["result"]["passed"] is True
    assert state["result"]["attempts"] == 2


async def test_scores_always_40_stop_at_the_revision_cap_keeping_the_best(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [40]
    settings = GraphSettings(max_revisions=2)
    state = await run(graph_fakes, settings=settings)
    assert len(state["attempts"]) == 1 + settings.max_revisions
    assert state["result"]["passed"] is False
    best = max(state["attempts"], key=lambda a: a["score"])
    assert state["result"]["score"] == best["score"]
    assert state["result"]["markdown"].startswith(best["markdown"].strip())


async def test_revision_prompt_carries_the_previous_critique_suggestions(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [40, 85]
    await run(graph_fakes)
    first, second = graph_fakes.writer.prompts
    assert "suggestion after scoring 40" not in first
    assert "Apply the judge's suggestion after scoring 40." in second
    assert "The judge found an issue at score 40." in second
    assert "Previous draft:" in second and "keep everything that works" in second


async def test_junk_judge_json_fails_closed_after_one_retry(graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.junk_scores = True
    state = await run(graph_fakes, settings=GraphSettings(max_revisions=0))
    attempt = state["attempts"][0]
    assert attempt["dimensions"] == {} and attempt["passed"] is False and attempt["score"] == 0
    assert attempt["checks"]["judge"]["ok"] is False
    # Asked twice, then unjudged: a gate-clean draft still does not pass on the structure alone.
    assert graph_fakes.writer.calls.count("score") == 2
    assert state["result"]["passed"] is False
    assert any("unjudged" in w for w in state["result"]["warnings"])


async def test_usage_totals_equal_the_fake_token_counts(graph_fakes: GraphFakes) -> None:
    graph_fakes.ollama.prompt_tokens = 17
    graph_fakes.ollama.completion_tokens = 29
    state = await run(graph_fakes)
    calls = len(graph_fakes.ollama.chat_requests)
    assert len(state["usage"]) == calls == 5  # intent, query plan, gaps, draft, judge
    assert state["result"]["usage"]["input_tokens"] == 17 * calls
    assert state["result"]["usage"]["output_tokens"] == 29 * calls
    assert {u["node"] for u in state["usage"]} == {"route_intent", "research", "draft", "critique"}
    assert all(u["provider"] == "ollama" and u["cost_usd"] == 0 for u in state["usage"])


async def test_configured_prices_turn_tokens_into_cost(graph_fakes: GraphFakes) -> None:
    settings = GraphSettings(prices={"ollama/llama3.2": (1.0, 2.0)})
    state = await run(graph_fakes, settings=settings)
    usage = state["result"]["usage"]
    expected = (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1_000_000
    assert usage["cost_usd"] == round(expected, 8) and usage["cost_usd"] > 0


async def test_approval_interrupts_then_approve_finalizes(graph_fakes: GraphFakes) -> None:
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    cfg = config()
    ctx = DraftloopContext(deps=deps)
    state = await graph.ainvoke({"messages": [HumanMessage(REQUEST + ". I need to approve it first.")]}, cfg, context=ctx)
    snapshot = await graph.aget_state(cfg)
    assert snapshot.next == ("approval",)
    assert snapshot.interrupts[0].value["type"] == "approval"
    assert "result" not in state
    state = await graph.ainvoke(Command(resume={"approved": True}), cfg, context=ctx)
    assert state["result"]["approval"] == {"approved": True, "feedback": "", "attempt": 1}
    assert graph_fakes.writer.calls.count("draft") == 1
    await deps.models.aclose()


async def test_rejection_with_feedback_drafts_again_with_that_feedback(graph_fakes: GraphFakes) -> None:
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    cfg = config()
    ctx = DraftloopContext(deps=deps, require_approval=True)
    await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    await graph.ainvoke(Command(resume={"approved": False, "feedback": "Mention uvloop"}), cfg, context=ctx)
    snapshot = await graph.aget_state(cfg)
    assert snapshot.next == ("approval",)
    assert "Mention uvloop" in graph_fakes.writer.prompts[-1]
    state = await graph.ainvoke(Command(resume={"approved": True}), cfg, context=ctx)
    assert graph_fakes.writer.calls.count("draft") == 2
    assert state["result"]["passed"] is True
    await deps.models.aclose()


async def test_follow_up_on_the_same_thread_revises_the_last_draft(graph_fakes: GraphFakes) -> None:
    cfg = config()
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    ctx = DraftloopContext(deps=deps)
    first = await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "revise", "confidence": 90, "reason": "edit"}
    second = await graph.ainvoke({"messages": [HumanMessage("Make it shorter, about 150 words")]}, cfg, context=ctx)
    assert second["intent"]["kind"] == "revise"
    assert second["request"]["target_words"] == 150
    assert second["request"]["topic"] == first["request"]["topic"]
    assert first["result"]["markdown"] in graph_fakes.writer.prompts[-1]
    assert "Make it shorter" in graph_fakes.writer.prompts[-1]
    assert second["result"]["attempts"] == 1
    await deps.models.aclose()


async def test_follow_up_keeps_every_turns_attempts_and_usage_for_storage(graph_fakes: GraphFakes) -> None:
    saved: list[dict[str, Any]] = []

    async def save(outcome: dict[str, Any]) -> None:
        saved.append(outcome)

    cfg = config()
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies(save_outcome=save)
    ctx = DraftloopContext(deps=deps)
    await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "revise", "confidence": 90, "reason": "edit"}
    await graph.ainvoke({"messages": [HumanMessage("Make it shorter, about 150 words")]}, cfg, context=ctx)
    await deps.models.aclose()
    first, second = saved
    assert [a["number"] for a in first["attempts"]] == [1]
    assert [a["number"] for a in second["attempts"]] == [1, 2]
    assert [a["turn"] for a in second["attempts"]] == [1, 2]
    assert len(second["usage"]) == len(first["usage"]) + 3
    assert second["result"]["attempts"] == 1


async def test_question_about_sources_is_answered_from_state_without_drafting_again(graph_fakes: GraphFakes) -> None:
    cfg = config()
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    ctx = DraftloopContext(deps=deps)
    first = await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "answer", "confidence": 90, "reason": "a question"}
    calls_before = list(graph_fakes.writer.calls)
    second = await graph.ainvoke({"messages": [HumanMessage("What sources did you use?")]}, cfg, context=ctx)
    await deps.models.aclose()
    reply = str(second["messages"][-1].content)
    assert first["result"]["sources"]
    assert all(source["url"] in reply for source in first["result"]["sources"])
    # Only the intent call: no draft, no judge, no answer model call.
    assert graph_fakes.writer.calls[len(calls_before):] == ["intent"]
    assert second["result"] == first["result"]


async def test_revision_after_a_question_revises_the_piece_not_the_answer(graph_fakes: GraphFakes) -> None:
    cfg = config()
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    ctx = DraftloopContext(deps=deps)
    first = await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "answer", "confidence": 90, "reason": "a question"}
    await graph.ainvoke({"messages": [HumanMessage("What sources did you use?")]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "revise", "confidence": 90, "reason": "edit"}
    third = await graph.ainvoke({"messages": [HumanMessage("Make it shorter, about 150 words")]}, cfg, context=ctx)
    await deps.models.aclose()
    assert third["intent"]["kind"] == "revise"
    assert first["result"]["markdown"] in graph_fakes.writer.prompts[-1]


async def test_each_turns_result_carries_only_its_own_warnings(graph_fakes: GraphFakes) -> None:
    cfg = config()
    graph = build_graph(InMemorySaver())
    deps = graph_fakes.dependencies()
    ctx = DraftloopContext(deps=deps)
    for _ in range(6):
        graph_fakes.serper.faults.push(status(429, retry_after="0"))
    first = await graph.ainvoke({"messages": [HumanMessage(REQUEST)]}, cfg, context=ctx)
    graph_fakes.writer.intent = {"kind": "revise", "confidence": 90, "reason": "edit"}
    second = await graph.ainvoke({"messages": [HumanMessage("Make it longer")]}, cfg, context=ctx)
    await deps.models.aclose()
    assert any("research:" in w for w in first["result"]["warnings"])
    assert second["warnings"] == second["result"]["warnings"] == []
    assert NEW_TURN not in first["warnings"]


def test_warnings_add_up_within_a_turn_and_start_afresh_on_a_new_one() -> None:
    assert add_turn_warnings(["a"], ["b"]) == ["a", "b"]
    assert add_turn_warnings(["a", "b"], [NEW_TURN]) == []
    assert add_turn_warnings(["a"], [NEW_TURN, "c"]) == ["c"]
