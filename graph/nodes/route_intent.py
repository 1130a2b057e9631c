"""route_intent: decide what the request is and normalise it into a ContentRequest.

Who decides the kind (content, revise, answer, unsupported):
- the model's IntentChoice, when it parses and its confidence reaches MIN_CONFIDENCE. Confidence
  is an integer from 0 to 100 everywhere: the prompt asks for it, the schema bounds it, the gate
  reads it and the stored intent keeps it;
- otherwise the keyword rules (graph/intent_rules.py), and then none of the model's fields are
  used: a rejected intent is dropped whole, not mined for a guess or two.
Three readings overrule whoever decided: an ask on the rules' refusal list is unsupported, an
edit instruction on a thread that has a finished piece is a revision of it, and a caller's
structured content_type (or platform) asks for content even when the text reads as a question.

Fields: the caller's structured fields, then what the text states, then an accepted model's
guesses, then the defaults of graph/formats.py. Keywords never come from the model: the critique
fails a draft that misses a requested keyword, so only the caller or the text may request one.
A follow-up keeps the previous piece's request and changes only what the follow-up states.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graph import draft_text, formats, intent_rules
from graph.context import DraftloopContext, active_model, dependencies
from graph.message_text import message_text, skipped_content_warning
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
    Piece,
    State,
)

# Below this the model's intent is rejected and the keyword rules decide.
MIN_CONFIDENCE = 50
# The stored confidence when the rules decided: they read plain phrasing well and nothing else.
RULES_CONFIDENCE = 60
# ... and when the caller's structured fields did: they say what they want outright.
REQUEST_CONFIDENCE = 100
# Every key normalise_request writes: a `request` in state holding all of them is the last
# turn's normalised request, left there because this turn's input sent no fields of its own.
_NORMALISED_KEYS = frozenset(ContentRequest.__annotations__)
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


def latest_human_message(state: State) -> BaseMessage | None:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message
    return None


def latest_request_text(state: State) -> str:
    message = latest_human_message(state)
    if message is not None:
        return message_text(message)
    return str((state.get("request") or {}).get("text") or "")


def caller_fields(state: State, text: str) -> dict[str, Any]:
    """The structured fields the caller sent with this turn; {} when `request` in state is the
    last turn's normalised request (on a follow-up they would otherwise force "content" onto a
    plain question, or pin the previous target on "make it shorter")."""
    request = dict(state.get("request") or {})
    if request.get("text") and (request["text"] != text or _NORMALISED_KEYS <= request.keys()):
        return {}
    return request


def previous_piece(state: State) -> Piece | None:
    """The piece a follow-up revises, or None on a thread that has none yet."""
    piece = state.get("piece")
    if piece and piece.get("markdown"):
        return piece
    # A thread written before finalize kept `piece`: its last content result.
    result = state.get("result") or {}
    if result.get("kind", "content") != "content" or not result.get("markdown"):
        return None
    request = state.get("request") or {}
    if not _NORMALISED_KEYS <= request.keys():
        request = ContentRequest(content_type=result.get("content_type") or "blog_post")
    return Piece(request=request, title=str(result.get("title") or ""), markdown=str(result["markdown"]))


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
    """The caller's field, then the run's context (the require_approval setting), then what the
    text, an accepted model or the previous request says: a rejected guess never makes a run
    wait for a person."""
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


def revised_request(
    text: str,
    given: dict[str, Any],
    explicit: dict[str, Any],
    piece: Piece,
    fallback_words: int,
    approval_from_context: bool | None,
) -> ContentRequest:
    """The previous piece's request with what the follow-up changes: its format ("turn it into
    a tweet"), tone ("more casual"), audience, style, keywords, and its length: a stated number,
    else "shorter"/"longer" as a share of the previous draft's actual length. The model's fields
    play no part: a follow-up changes only what it states."""
    previous: dict[str, Any] = dict(piece.get("request") or {})
    old_type = str(previous.get("content_type") or "blog_post")
    old_platform = formats.platform_for(old_type, previous.get("platform"))
    new_type, new_platform = intent_rules.conversion_target(text)
    content_type = _pick(CONTENT_TYPES, given.get("content_type")) or new_type or old_type
    platform = formats.platform_for(content_type, _first(
        "platform", given, {"platform": new_platform}, explicit,
        {"platform": old_platform if old_type == content_type else None}))

    stated = _first("target_words", given, explicit)
    factor = intent_rules.relative_length(text)
    actual = draft_text.count_words(str(piece.get("markdown") or ""), old_type) or int(
        previous.get("target_words") or formats.default_target_words(old_type, old_platform, fallback_words))
    if stated:
        words = float(stated)
    elif (content_type, platform) != (old_type, old_platform):
        # A new format starts from its own default length; "shorten it to a tweet" is a tweet.
        words = formats.default_target_words(content_type, platform, fallback=fallback_words)
        if factor:
            words = min(words, actual * factor) if factor < 1 else max(words, actual * factor)
    elif factor:
        words = actual * factor
    else:
        words = float(previous.get("target_words") or actual)

    return ContentRequest(
        text=text,
        content_type=content_type,
        platform=platform,
        topic=str(previous.get("topic") or intent_rules.guess_topic(text)),
        audience=str(_first("audience", given, explicit, previous) or "a general audience"),
        tone=_pick(TONES, given.get("tone"), explicit.get("tone"), previous.get("tone")) or "professional",
        style=_pick(STYLES, given.get("style"), explicit.get("style"), previous.get("style")) or "educational",
        target_words=_words(words),
        keywords=[str(k) for k in _first("keywords", given, explicit, previous) or []][:MAX_KEYWORDS],
        images=bool(_first("images", given, explicit, previous)) and content_type != "email",
        research=bool(previous.get("research", True)),
        require_approval=_approval(given, approval_from_context, explicit, previous),
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
    if has_previous and rule_kind == "revise":
        # A small model reads "make it shorter" as a new request about "it"; the thread says otherwise.
        return "revise", rule_reason, "rules"
    kind: str
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
    given = caller_fields(state, text)
    piece = previous_piece(state)
    turn = int(state.get("turn") or 0) + 1
    latest = latest_human_message(state)
    skipped = skipped_content_warning(latest) if latest is not None else None
    warnings: list[str] = [skipped] if skipped else []
    update: dict[str, Any] = {"turn": turn, "revision": 0, "feedback": "", "approval": {}, "critique": {}}

    rule_kind, rule_type, rule_reason = intent_rules.classify(text, piece is not None)
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
    kind, reason, source = decide_kind(text, accepted, (rule_kind, rule_reason), piece is not None, caller_type)
    explicit = intent_rules.explicit_fields(text)
    context = runtime.context if isinstance(runtime.context, DraftloopContext) else None
    approval_from_context = context.require_approval if context else None
    if kind == "revise" and piece is not None:
        request = revised_request(text, given, explicit, piece, deps.settings.default_target_words,
                                  approval_from_context)
        update["feedback"] = text
        update["draft"] = {"title": piece.get("title", ""), "markdown": piece.get("markdown", "")}
    else:
        content_type = (caller_type or explicit.get("content_type") or (accepted.content_type if accepted else None)
                        or rule_type or "blog_post")
        platform = formats.platform_for(content_type, _first("platform", given, explicit, {
            "platform": accepted.platform if accepted else None}))
        request = normalise_request(text, given, explicit, accepted, content_type, platform,
                                   deps.settings.default_target_words, approval_from_context)
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
        "content_type": request["content_type"] if kind in ("content", "revise") else None,
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
