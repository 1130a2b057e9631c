"""draft: write (or revise) the piece in markdown from the request, research and feedback."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from graph import markdown as md
from graph.context import DraftloopContext, active_model, dependencies
from graph.model_calls import invoke_text
from graph.prompts import DRAFT_SYSTEM, DRAFT_TEMPLATE, REVISION_TEMPLATE
from graph.state import State

MAX_SOURCES_IN_PROMPT = 8


def research_notes(state: State) -> str:
    sources = (state.get("research") or {}).get("sources") or []
    if not sources:
        return ""
    lines = [f"- [{s.get('title', '')}]({s.get('url', '')}): {s.get('snippet', '')}" for s in sources[:MAX_SOURCES_IN_PROMPT]]
    return "Research notes (cite these URLs where you use them):\n" + "\n".join(lines) + "\n"


def revision_notes(state: State, revision_of_turn: int) -> str:
    """What the next draft must fix: the last critique's findings and any human feedback."""
    critique = state.get("critique") or {}
    human = state.get("feedback") or ""
    previous = (state.get("draft") or {}).get("markdown", "")
    if revision_of_turn == 1 and not human:
        return ""
    if not (critique or human or previous):
        return ""
    issues = "\n".join(f"- {i}" for i in critique.get("issues", [])) or "- (none recorded)"
    suggestions = "\n".join(f"- {s}" for s in critique.get("suggestions", [])) or "- (none recorded)"
    return REVISION_TEMPLATE.format(
        number=revision_of_turn,
        issues=issues,
        suggestions=suggestions,
        human=f"Feedback from the reviewer, which takes priority: {human}\n" if human else "",
        previous=previous,
    )


def draft_token_budget(target_words: int) -> int:
    """Room for the target plus markdown and a 50% overshoot, about 1.4 tokens a word."""
    return int(target_words * 1.4 * 1.5) + 150


def turn_attempts(state: State) -> list[dict[str, Any]]:
    turn = int(state.get("turn") or 1)
    return [a for a in state.get("attempts") or [] if int(a.get("turn", 1)) == turn]


async def draft(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    request = state.get("request", {})
    # Numbers run across the thread's turns, so every attempt it ever made can be stored.
    number = len(state.get("attempts") or []) + 1
    prompt = DRAFT_TEMPLATE.format(
        content_type=str(request.get("content_type", "blog_post")).replace("_", " "),
        topic=request.get("topic", ""),
        audience=request.get("audience", "a general audience"),
        tone=request.get("tone", "professional"),
        style=request.get("style", "educational"),
        target_words=request.get("target_words", deps.settings.default_target_words),
        keywords=", ".join(request.get("keywords") or []) or "none given",
        research=research_notes(state),
        revision=revision_notes(state, len(turn_attempts(state)) + 1),
    )
    chat, provider, model_name = await active_model(deps)
    reply = await invoke_text(
        chat,
        [SystemMessage(DRAFT_SYSTEM), HumanMessage(prompt)],
        node="draft",
        provider=provider,
        model=model_name,
        settings=deps.settings,
        turn=int(state.get("turn") or 1),
        max_tokens=draft_token_budget(int(request.get("target_words") or deps.settings.default_target_words)),
    )
    text = str(reply.message.content).strip()
    usage = reply.usage
    return {
        "draft": {
            "title": md.title_of(text),
            "markdown": text,
            "excerpt": md.excerpt_of(text),
            "word_count": md.word_count(text),
            "number": number,
            "feedback": state.get("feedback") or "",
            "model": model_name,
            "provider": provider,
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "duration_ms": usage.get("duration_ms", 0),
        },
        "usage": [usage],
    }
