"""route_intent: decide what the request is and normalise it into a ContentRequest.

Who decides the kind (content, revise, answer, unsupported):
- the model's IntentChoice, when it parses and its confidence reaches MIN_CONFIDENCE. Confidence
  is an integer from 0 to 100 everywhere: the prompt asks for it, the schema bounds it, the gate
  reads it and the stored intent keeps it;
- otherwise the keyword rules (graph/intent_rules.py), and then none of the model's fields are
  used: a rejected intent is dropped whole, not mined for a guess or two.
Two readings overrule whoever decided: an ask on the rules' refusal list is unsupported, and a
caller's structured content_type (or platform) asks for content even when the text reads as a
question.

Fields: the caller's structured fields, then what the text states, then an accepted model's
guesses, then the defaults of graph/formats.py. Keywords never come from the model: the critique
fails a draft that misses a requested keyword, so only the caller or the text may request one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graph import formats, intent_rules
from graph.context import DraftloopContext, active_model, dependencies
from graph.model_calls import invoke_structured
from graph.prompts import ROUTE_INTENT_SYSTEM
from graph.state import (
    CONTENT_TYPES,
    MAX_KEYWORDS,
    MAX_WORDS,
    MIN_WORDS,
    NEW_TURN,
    STYLES,
    TONES,
    ContentRequest,
    State,
)

# Below this the model's intent is rejected and the keyword rules decide.
MIN_CONFIDENCE = 50
# The stored confidence when the rules decided: they read plain phrasing well and nothing else.
RULES_CONFIDENCE = 60
# ... and when the caller's structured fields did: they say what they want outright.
REQUEST_CONFIDENCE = 100
# Fields of an IntentChoice that are not request fields, or that the model may not set.
_NOT_REQUEST_FIELDS = {"kind", "content_type", "platform", "keywords", "confidence", "reason"}


class IntentChoice(BaseModel):
    # Length bounds matter: llama.cpp turns them into grammar, which stops a small model from
    # looping inside a string or a list until its token budget runs out.
    kind: Literal["content", "revise", "answer", "unsupported"]
    content_type: Literal["blog_post", "social_post", "newsletter", "email", "research_brief"] | None = None
    platform: Literal["x", "linkedin"] | None = None
    topic: str | None = Field(default=None, max_length=120)
    audience: str | None = Field(default=None, max_length=80)
    tone: str | None = Field(default=None, max_length=30)
    style: str | None = Field(default=None, max_length=30)
    target_words: int | None = Field(default=None, ge=MIN_WORDS, le=MAX_WORDS)
    keywords: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    images: bool | None = None
    research: bool | None = None
    require_approval: bool | None = None
    # An integer percentage, not a 0..1 float: llama.cpp's grammar enforces integer bounds but not
    # float ones. Required, so that a reply without it is junk rather than silently trusted.
    confidence: int = Field(ge=0, le=100)
    reason: str = Field(default="", max_length=200)


def message_text(message: BaseMessage) -> str:
    """A message's text. Chat clients send content as a list of blocks ([{"type": "text", ...}]);
    the text blocks are joined with newlines (BaseMessage.text joins them with nothing, running
    the last word of one block into the first of the next)."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
    return "\n".join(part for part in parts if part.strip())


def latest_request_text(state: State) -> str:
    request = state.get("request") or {}
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message_text(message)
    return str(request.get("text") or "")


def _pick(options: tuple[str, ...], *values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
    return None


def _first(name: str, *sources: dict[str, Any]) -> Any:
    for source in sources:
        value = source.get(name)
        if value not in (None, "", []):
            return value
    return None


def _words(value: float) -> int:
    return max(MIN_WORDS, min(MAX_WORDS, round(value)))


def _approval(given: dict[str, Any], approval_from_context: bool | None, *others: dict[str, Any]) -> bool:
    """The caller's field, then the run's context (the require_approval setting), then the text
    or an accepted model: waiting for a person is never a rejected guess."""
    if given.get("require_approval") is not None:
        return bool(given["require_approval"])
    if approval_from_context is not None:
        return approval_from_context
    return bool(_first("require_approval", *others))


def normalise_request(
    text: str,
    given: dict[str, Any],
    explicit: dict[str, Any],
    model: IntentChoice | None,
    content_type: str,
    platform: str | None,
    fallback_words: int,
    approval_from_context: bool | None,
) -> ContentRequest:
    """Precedence: structured fields from the caller, then what the text states, then an
    accepted model's guesses, then the defaults per type and platform."""
    guessed = model.model_dump(exclude_none=True, exclude=_NOT_REQUEST_FIELDS) if model else {}
    words = _first("target_words", given, explicit, guessed) or formats.default_target_words(
        content_type, platform, fallback=fallback_words)
    return ContentRequest(
        text=text,
        content_type=content_type,
        platform=platform,
        topic=str(_first("topic", given, explicit, guessed) or intent_rules.guess_topic(text)),
        audience=str(_first("audience", given, explicit, guessed) or "a general audience"),
        tone=_pick(TONES, given.get("tone"), explicit.get("tone"), guessed.get("tone")) or "professional",
        style=_pick(STYLES, given.get("style"), explicit.get("style"), guessed.get("style")) or "educational",
        target_words=_words(int(words)),
        keywords=[str(k) for k in _first("keywords", given, explicit) or []][:MAX_KEYWORDS],
        # Emails go out as plain text: a stock photo has no place in them.
        images=bool(_first("images", given, explicit, guessed)) and content_type != "email",
        research=bool(given.get("research", explicit.get("research", True))),
        require_approval=_approval(given, approval_from_context, explicit, guessed),
    )


def decide_kind(
    text: str,
    model: IntentChoice | None,
    rules: tuple[str, str],
    has_previous: bool,
    caller_type: str | None,
) -> tuple[str, str, str]:
    """(kind, reason, source) from an accepted model intent (or None) and the rules' reading."""
    rule_kind, rule_reason = rules
    if refused := intent_rules.refusal(text):
        return "unsupported", refused, "rules"
    if model is not None:
        kind, reason, source = model.kind, model.reason or "model classification", "model"
    else:
        kind, reason, source = rule_kind, rule_reason, "rules"
    if kind == "revise" and not has_previous:
        kind = "content"
    if caller_type and kind == "answer":
        return "content", "structured request fields", "request"
    return kind, reason, source


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
    accepted = choice if choice is not None and choice.confidence >= MIN_CONFIDENCE else None
    if choice is not None and accepted is None:
        warnings.append(f"route_intent: the model's intent had confidence {choice.confidence} (below "
                        f"{MIN_CONFIDENCE} of 100); used keyword rules and none of its fields")

    caller_type = _pick(CONTENT_TYPES, given.get("content_type")) or (
        "social_post" if given.get("platform") in formats.PLATFORMS else None)
    kind, reason, source = decide_kind(text, accepted, (rule_kind, rule_reason), has_previous, caller_type)
    explicit = intent_rules.explicit_fields(text)
    content_type = (caller_type or explicit.get("content_type") or (accepted.content_type if accepted else None)
                    or rule_type or "blog_post")

    previous_request = dict(state.get("request") or {}) if kind == "revise" else {}
    if kind == "revise":
        content_type = previous_request.get("content_type") or "blog_post"
        request = {**previous_request, **{k: v for k, v in explicit.items() if k != "topic"}, "text": text}
        request["platform"] = formats.platform_for(content_type, request.get("platform"))
        update["feedback"] = text
        # The piece to revise: the last result when it was content (an answer is not a draft).
        previous = state.get("result") or {}
        update["draft"] = {"title": previous.get("title", ""), "markdown": previous.get("markdown", "")} if (
            previous.get("kind", "content") == "content" and previous.get("markdown")) else state.get("draft", {})
    else:
        context = runtime.context if isinstance(runtime.context, DraftloopContext) else None
        platform = formats.platform_for(content_type, _first("platform", given, explicit, {
            "platform": accepted.platform if accepted else None}))
        request = normalise_request(
            text,
            given,
            explicit,
            accepted,
            content_type,
            platform,
            deps.settings.default_target_words,
            context.require_approval if context else None,
        )
        update["draft"] = {}
    if not deps.settings.research_enabled:
        request["research"] = False
    if not deps.settings.images_enabled:
        request["images"] = False

    update["request"] = request
    confidence = {"model": accepted.confidence if accepted else 0, "request": REQUEST_CONFIDENCE}.get(
        source, RULES_CONFIDENCE)
    update["intent"] = {
        "kind": kind,
        "content_type": content_type if kind in ("content", "revise") else None,
        "confidence": confidence,
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
