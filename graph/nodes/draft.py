"""draft: write (or revise) the piece in its format from the request, the numbered sources and
the last critique's findings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph import draft_text, formats
from graph import markdown as md
from graph.context import DraftloopContext, active_model, dependencies
from graph.memory import Recollection, owner_of, recall
from graph.message_text import content_text
from graph.model_calls import invoke_text
from graph.prompts import (
    CITE_INLINE,
    CITE_LINKS,
    CITE_NONE,
    DRAFT_SYSTEM,
    DRAFT_TEMPLATE,
    FORMATS,
    MEMORY_PIECE,
    MEMORY_STYLE,
    MEMORY_WRITTEN,
    REVISION_FRESH,
    REVISION_HUMAN,
    REVISION_PREVIOUS,
    REVISION_TEMPLATE,
)
from graph.sources import numbered
from graph.state import AttemptRecord, State

# Gates whose failure means the text itself is broken: such a draft is never shown to the
# writer again as "the previous draft" (it would copy the loop or the cut-off).
DEGENERATE_GATES = frozenset({"repetition", "truncation", "preamble", "placeholders"})


def research_notes(state: State) -> str:
    """The numbered sources as the answer node sees them (empty without research)."""
    sources = (state.get("research") or {}).get("sources") or []
    return f"Research notes (cite the URLs you use):\n{numbered(sources)}\n" if sources else ""


def turn_attempts(state: State) -> list[AttemptRecord]:
    turn = int(state.get("turn") or 1)
    return [a for a in state.get("attempts") or [] if int(a.get("turn", 1)) == turn]


def failed_gates(attempt: Mapping[str, Any]) -> list[str]:
    checks = attempt.get("checks") or {}
    return [name for name, check in checks.items() if isinstance(check, dict) and check.get("ok") is False]


def is_degenerate(attempt: Mapping[str, Any]) -> bool:
    return bool(DEGENERATE_GATES & set(failed_gates(attempt)))


def revision_base(state: State) -> Mapping[str, Any] | None:
    """The draft to revise: the best attempt of this turn whose text is not broken, or, on a
    follow-up turn's first draft, the piece the thread delivered (route_intent put it in
    `draft`). None means: write afresh."""
    attempts = [a for a in turn_attempts(state) if not is_degenerate(a)]
    if attempts:
        return max(attempts, key=lambda a: (not failed_gates(a), float(a.get("score") or 0)))
    previous = state.get("draft") or {}
    if not turn_attempts(state) and previous.get("markdown"):
        return previous
    return None


def revision_notes(state: State, revision_of_turn: int) -> str:
    """What the next draft must fix: the failed gates and the judge's issues of the last
    attempt, and any human feedback (which wins). Empty for a turn's first draft."""
    human = str(state.get("feedback") or "")
    attempts = turn_attempts(state)
    if revision_of_turn == 1 and not human:
        return ""
    last = attempts[-1] if attempts else {}
    problems = [str(i) for i in last.get("issues") or []] + [str(s) for s in last.get("suggestions") or []]
    listed = "\n".join(f"- {p}" for p in dict.fromkeys(problems)) or "- (no findings recorded)"
    base = revision_base(state)
    previous = REVISION_PREVIOUS.format(markdown=base.get("markdown", "")) if base else REVISION_FRESH
    return REVISION_TEMPLATE.format(
        number=max(revision_of_turn - 1, 1),
        problems=listed if attempts else "- (none: this revision answers the feedback below)",
        human=REVISION_HUMAN.format(feedback=human) if human else "",
        previous=previous,
    )


def draft_token_budget(target_words: int) -> int:
    """Room for the target plus markdown and a 50% overshoot, about 1.4 tokens a word."""
    return int(target_words * 1.4 * 1.5) + 150


def format_instructions(content_type: str, platform: str | None) -> str:
    if content_type == "social_post":
        return FORMATS[f"social_post_{formats.platform_for(content_type, platform)}"]
    return FORMATS.get(content_type, FORMATS["blog_post"])


def citation_rule(content_type: str, has_sources: bool) -> str:
    if not has_sources:
        return CITE_NONE
    return CITE_INLINE if content_type in formats.CITING_TYPES else CITE_LINKS


def memory_notes(memory: Recollection) -> str:
    """The style guide and the related pieces already written, for the draft prompt."""
    notes = MEMORY_STYLE.format(style=memory.style) if memory.style else ""
    if memory.written:
        pieces = "\n".join(MEMORY_PIECE.format(title=piece.get("title") or "untitled", topic=piece.get("topic") or "",
                                                angle=piece.get("angle") or "") for piece in memory.written)
        notes += MEMORY_WRITTEN.format(pieces=pieces)
    return notes


def writing_prompt(state: State, default_words: int, today: str,
                   memory: Recollection | None = None) -> tuple[str, str]:
    """(system, human) for the next draft of this turn."""
    request = state.get("request", {})
    content_type = str(request.get("content_type") or "blog_post")
    platform = formats.platform_for(content_type, request.get("platform"))
    sources = (state.get("research") or {}).get("sources") or []
    target = int(request.get("target_words") or formats.default_target_words(content_type, platform, default_words))
    system = DRAFT_SYSTEM.format(today=today, format=format_instructions(content_type, platform),
                                 citations=citation_rule(content_type, bool(sources)))
    kind = content_type.replace("_", " ") + (f" for {platform}" if platform else "")
    human = DRAFT_TEMPLATE.format(
        content_type=kind,
        topic=request.get("topic", ""),
        audience=request.get("audience", "a general audience"),
        tone=request.get("tone", "professional"),
        style=request.get("style", "educational"),
        target_words=target,
        min_words=round(target * (1 - formats.LENGTH_TOLERANCE)),
        max_words=round(target * (1 + formats.LENGTH_TOLERANCE)),
        keywords=", ".join(request.get("keywords") or []) or "none given",
        text=request.get("text", ""),
        memory=memory_notes(memory or Recollection()),
        sources=numbered(sources),
        revision=revision_notes(state, len(turn_attempts(state)) + 1),
    )
    return system, human


async def draft(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    request = state.get("request", {})
    # Numbers run across the thread's turns, so every attempt it ever made can be stored.
    number = len(state.get("attempts") or []) + 1
    thread_id = str((config.get("configurable") or {}).get("thread_id") or "")
    memory = await recall(runtime.store, owner_of(config), str(request.get("topic") or ""), thread_id)
    system, prompt = writing_prompt(state, deps.settings.default_target_words, datetime.now(UTC).date().isoformat(),
                                    memory)
    chat, provider, model_name = await active_model(deps)
    reply = await invoke_text(
        chat,
        [SystemMessage(system), HumanMessage(prompt)],
        node="draft",
        provider=provider,
        model=model_name,
        settings=deps.settings,
        turn=int(state.get("turn") or 1),
        max_tokens=draft_token_budget(int(request.get("target_words") or deps.settings.default_target_words)),
    )
    text = content_text(reply.message.content).strip()
    content_type = str(request.get("content_type") or "blog_post")
    usage = reply.usage
    return {
        "draft": {
            "title": draft_title(text, content_type),
            "markdown": text,
            "excerpt": md.excerpt_of(text),
            "word_count": draft_text.count_words(text, content_type),
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


def draft_title(text: str, content_type: str) -> str:
    """The '# ' title; an email's subject; a social post's first line."""
    if content_type == "email":
        return draft_text.email_parts(text)["subject"]
    if content_type == "social_post":
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return md.clip(first, 80)
    return md.title_of(text)
