"""route_intent: decide what the request is and normalise it into a ContentRequest."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graph import intent_rules
from graph.context import DraftloopContext, active_model, dependencies
from graph.model_calls import invoke_structured
from graph.prompts import ROUTE_INTENT_SYSTEM
from graph.state import (
    CONTENT_TYPES,
    INTENT_KINDS,
    MAX_KEYWORDS,
    MAX_WORDS,
    MIN_WORDS,
    NEW_TURN,
    STYLES,
    TONES,
    State,
)

# Below this the model's classification is ignored in favour of the keyword rules.
MIN_CONFIDENCE = 50
DEFAULT_WORDS = {"social_post": 120, "email": 250, "newsletter": 500, "research_brief": 700}


class IntentChoice(BaseModel):
    # Length bounds matter: llama.cpp turns them into grammar, which stops a small model from
    # looping inside a string or a list until its token budget runs out.
    kind: Literal["content", "revise", "answer", "unsupported"]
    content_type: Literal["blog_post", "social_post", "newsletter", "email", "research_brief"] | None = None
    topic: str | None = Field(default=None, max_length=120)
    audience: str | None = Field(default=None, max_length=80)
    tone: str | None = Field(default=None, max_length=30)
    style: str | None = Field(default=None, max_length=30)
    target_words: int | None = Field(default=None, ge=MIN_WORDS, le=MAX_WORDS)
    keywords: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    images: bool | None = None
    research: bool | None = None
    require_approval: bool | None = None
    # A percentage, not a 0..1 float: llama.cpp's grammar enforces integer bounds but not float ones.
    confidence: int = Field(default=50, ge=0, le=100)
    reason: str = Field(default="", max_length=200)


def latest_request_text(state: State) -> str:
    request = state.get("request") or {}
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return str(request.get("text") or "")


def _pick(options: tuple[str, ...], *values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
    return None


def normalise_request(
    text: str,
    given: dict[str, Any],
    explicit: dict[str, Any],
    model: IntentChoice | None,
    content_type: str,
    default_words: int,
    approval_from_context: bool | None,
) -> dict[str, Any]:
    """Precedence: structured fields from the caller, then what the text states, then the model."""
    guessed = model.model_dump(exclude_none=True) if model else {}

    def first(name: str) -> Any:
        for source in (given, explicit, guessed):
            value = source.get(name)
            if value not in (None, "", []):
                return value
        return None

    words = first("target_words") or DEFAULT_WORDS.get(content_type, default_words)
    keywords = first("keywords") or []
    topic = str(first("topic") or intent_rules.guess_topic(text))
    approval = given.get("require_approval")
    if approval is None:
        approval = approval_from_context
    if approval is None:
        approval = bool(explicit.get("require_approval") or guessed.get("require_approval"))
    images = first("images")
    research = given.get("research", explicit.get("research", True))
    return {
        "text": text,
        "content_type": content_type,
        "topic": topic,
        "audience": str(first("audience") or "a general audience"),
        "tone": _pick(TONES, given.get("tone"), explicit.get("tone"), guessed.get("tone")) or "professional",
        "style": _pick(STYLES, given.get("style"), explicit.get("style"), guessed.get("style")) or "educational",
        "target_words": max(MIN_WORDS, min(MAX_WORDS, int(words))),
        "keywords": [str(k) for k in keywords][:MAX_KEYWORDS],
        # Emails go out as plain text: a stock photo has no place in them.
        "images": bool(images) and content_type != "email",
        "research": bool(research),
        "require_approval": bool(approval),
    }


async def route_intent(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    text = latest_request_text(state)
    given = dict(state.get("request") or {})
    if given.get("text") and given["text"] != text:
        # Last turn's normalised request, still in state: not fields the caller sent now (on a
        # follow-up they would otherwise force "content" onto a plain question).
        given = {}
    has_previous = bool(state.get("result", {}).get("markdown") or state.get("draft", {}).get("markdown"))
    turn = int(state.get("turn") or 0) + 1
    warnings: list[str] = []
    update: dict[str, Any] = {"turn": turn, "revision": 0, "feedback": "", "approval": {}, "critique": {}}

    rule_kind, rule_type, rule_reason = intent_rules.classify(text, has_previous)
    choice: IntentChoice | None = None
    if text.strip():
        chat, provider, model_name = await active_model(deps)
        choice, usage, problem = await invoke_structured(
            chat,
            IntentChoice,
            [SystemMessage(ROUTE_INTENT_SYSTEM), HumanMessage(text)],
            node="route_intent",
            provider=provider,
            model=model_name,
            settings=deps.settings,
            turn=turn,
        )
        update["usage"] = [usage]
        if problem:
            warnings.append(f"{problem}; used keyword rules for the intent")

    explicit_type = given.get("content_type") if given.get("content_type") in CONTENT_TYPES else None
    if choice is not None and choice.kind in INTENT_KINDS and choice.confidence >= MIN_CONFIDENCE:
        kind, reason, source = choice.kind, choice.reason or "model classification", "model"
        content_type = explicit_type or _pick(CONTENT_TYPES, choice.content_type) or rule_type
    else:
        if choice is not None and not warnings:
            warnings.append("route_intent: the model's classification was unusable; used keyword rules")
        kind, reason, source = rule_kind, rule_reason, "rules"
        content_type = explicit_type or rule_type
    if explicit_type and kind in ("answer", "unsupported") and given.get("topic"):
        # A caller that sent structured fields wants content, whatever the wording.
        kind, reason, source = "content", "structured request fields", "request"
    if kind == "revise" and not has_previous:
        kind = "content"
    if kind == "content" and content_type is None:
        content_type = "blog_post"

    previous_request = dict(state.get("request") or {}) if kind == "revise" else {}
    if kind == "revise":
        content_type = previous_request.get("content_type") or "blog_post"
        explicit = intent_rules.explicit_fields(text)
        request = {**previous_request, **{k: v for k, v in explicit.items() if k != "topic"}, "text": text}
        update["feedback"] = text
        # The piece to revise: the last result when it was content (an answer is not a draft).
        previous = state.get("result") or {}
        update["draft"] = {"title": previous.get("title", ""), "markdown": previous.get("markdown", "")} if (
            previous.get("kind", "content") == "content" and previous.get("markdown")) else state.get("draft", {})
    else:
        context = runtime.context if isinstance(runtime.context, DraftloopContext) else None
        request = normalise_request(
            text,
            given,
            intent_rules.explicit_fields(text),
            choice,
            content_type or "blog_post",
            deps.settings.default_target_words,
            context.require_approval if context else None,
        )
        update["draft"] = {}
    if not deps.settings.research_enabled:
        request["research"] = False
    if not deps.settings.images_enabled:
        request["images"] = False

    update["request"] = request
    update["intent"] = {
        "kind": kind,
        "content_type": content_type if kind in ("content", "revise") else None,
        "confidence": choice.confidence / 100 if source == "model" and choice else 1.0 if source == "request" else 0.6,
        "reason": reason,
        "source": source,
    }
    update["warnings"] = [NEW_TURN, *warnings]
    return update


def after_intent(state: State) -> str:
    kind = state.get("intent", {}).get("kind")
    request = state.get("request", {})
    if kind == "content":
        wants_research = request.get("research") or request.get("images")
        return "research" if wants_research else "draft"
    if kind == "revise":
        return "draft"
    if kind == "answer":
        return "answer"
    return "unsupported"
