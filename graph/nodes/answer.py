"""answer: plain questions get a short answer; unsupported asks get a clear refusal."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph.context import DraftloopContext, active_model, dependencies
from graph.message_text import content_text
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


_ABOUT_SOURCES = re.compile(r"\b(sources?|references?|citations?|cited|cite|links?|urls?)\b", re.IGNORECASE)


def answer_from_previous_result(question: str, state: State) -> str | None:
    """A question about the thread's last piece ("What sources did you use?") answered from
    state: the sources are on record, a model would only guess, and drafting again would
    change the piece. None when the question is about something else."""
    previous = state.get("result") or {}
    if previous.get("kind") != "content" or not _ABOUT_SOURCES.search(question):
        return None
    title = previous.get("title") or "The last draft"
    sources = previous.get("sources") or []
    if not sources:
        return f"\"{title}\" used no web sources: research was off or found nothing."
    lines = [f"- {s.get('title') or s.get('url')}: {s.get('url')}" for s in sources]
    return f"\"{title}\" drew on these sources:\n" + "\n".join(lines)


async def answer(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    question = latest_request_text(state)
    from_state = answer_from_previous_result(question, state)
    if from_state is not None:
        usage = turn_usage(state)
        result = {"kind": "answer", "answer": from_state, "markdown": from_state, "title": "", "passed": True,
                  "score": None, "attempts": 0, "sources": (state.get("result") or {}).get("sources") or [],
                  "images": [], "model": "", "provider": "", "usage": usage_totals(usage),
                  "warnings": list(dict.fromkeys(state.get("warnings") or []))}
        await persist(state, result, config, runtime)
        # `result` stays the piece the thread is about, so a later "make it shorter" revises it.
        return {"messages": [AIMessage(content=from_state)]}
    deps = await dependencies(runtime)
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
    text = content_text(reply.message.content).strip()
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
