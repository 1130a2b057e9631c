"""answer: plain questions get a short answer; unsupported asks get a clear refusal."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph.context import DraftloopContext, active_model, dependencies
from graph.model_calls import invoke_text
from graph.nodes.draft import research_notes
from graph.nodes.finalize import persist, turn_usage, usage_totals
from graph.nodes.route_intent import latest_request_text
from graph.prompts import ANSWER_SYSTEM
from graph.state import State

UNSUPPORTED_REPLY = (
    "Draftloop writes blog posts, social posts, newsletters, emails and research briefs, and "
    "answers plain questions. This request is none of those, so nothing was produced."
)


async def answer(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    question = latest_request_text(state)
    notes = research_notes(state)
    chat, provider, model_name = await active_model(deps)
    reply = await invoke_text(
        chat,
        [SystemMessage(ANSWER_SYSTEM), HumanMessage(f"{notes}\nQuestion: {question}" if notes else question)],
        node="answer",
        provider=provider,
        model=model_name,
        settings=deps.settings,
        turn=int(state.get("turn") or 1),
    )
    text = str(reply.message.content).strip()
    usage = [*turn_usage(state), reply.usage]
    result = {"kind": "answer", "answer": text, "markdown": text, "title": "", "passed": True,
              "score": None, "attempts": 0, "sources": [], "images": [],
              "model": model_name, "provider": provider, "usage": usage_totals(usage),
              "warnings": list(dict.fromkeys(state.get("warnings") or []))}
    await persist({**state, "usage": [*(state.get("usage") or []), reply.usage]}, result, config, runtime)
    return {"result": result, "usage": [reply.usage], "messages": [AIMessage(content=text)]}


async def unsupported(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    reason = state.get("intent", {}).get("reason", "")
    text = f"{UNSUPPORTED_REPLY} ({reason})" if reason else UNSUPPORTED_REPLY
    usage = turn_usage(state)
    result = {"kind": "unsupported", "answer": text, "markdown": "", "title": "", "passed": False,
              "score": None, "attempts": 0, "sources": [], "images": [], "model": usage[-1]["model"] if usage else "",
              "provider": usage[-1]["provider"] if usage else "", "usage": usage_totals(usage),
              "warnings": list(dict.fromkeys(state.get("warnings") or []))}
    await persist(state, result, config, runtime)
    return {"result": result, "messages": [AIMessage(content=text)]}
