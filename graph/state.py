"""The graph's state: what every node reads and writes, with reducers where lists grow."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict: pydantic (and so LangGraph Studio's schemas) rejects typing's on 3.11.
from typing_extensions import TypedDict

ContentType = Literal["blog_post", "social_post", "newsletter", "email", "research_brief"]
CONTENT_TYPES: tuple[str, ...] = ("blog_post", "social_post", "newsletter", "email", "research_brief")
TONES: tuple[str, ...] = ("professional", "casual", "academic", "inspirational")
STYLES: tuple[str, ...] = ("technical", "narrative", "listicle", "educational", "thought-leadership")
INTENT_KINDS: tuple[str, ...] = ("content", "revise", "answer", "unsupported")
# Any request's target length; a post on X is about 40 words, so the floor sits below it.
MIN_WORDS = 20
MAX_WORDS = 5000
MAX_KEYWORDS = 10
# The largest attempt number a decision may name: far past any run (each rejection adds one
# attempt, each turn at most MAX_REVISIONS + 1), and a bound the API can state.
MAX_ATTEMPT_NUMBER = 10_000
# route_intent opens every turn's warnings with this marker, and add_turn_warnings then starts
# the list afresh: a follow-up's result carries its own warnings, not the first turn's again.
# Whoever reads a node's raw update (stream_mode="updates") sees it and should skip it.
NEW_TURN = "__new_turn__"


def add_turn_warnings(current: list[str], update: list[str]) -> list[str]:
    """operator.add for warnings, except that an update led by NEW_TURN replaces the list."""
    if update and update[0] == NEW_TURN:
        return list(update[1:])
    return [*current, *update]


class ContentRequest(TypedDict, total=False):
    """The normalised request: every field has a value once route_intent has run."""

    text: str
    content_type: str
    # "x" or "linkedin" for a social post (graph/formats.py PLATFORMS), None for other types.
    platform: str | None
    topic: str
    audience: str
    tone: str
    style: str
    target_words: int
    keywords: list[str]
    images: bool
    research: bool
    require_approval: bool


class Intent(TypedDict, total=False):
    kind: str
    content_type: str | None
    # An integer 0-100 on every path: the model's own (the scale its prompt and schema use and
    # route_intent gates on), a fixed value for the keyword rules, 100 for structured fields.
    confidence: int
    reason: str
    # "model", "rules" or "request": who decided the kind.
    source: str


class Source(TypedDict, total=False):
    url: str
    title: str
    snippet: str
    kind: str
    date: str | None
    source: str | None
    price: str | None
    evidence: str  # an excerpt of the page's text, when the page was read


class Image(TypedDict, total=False):
    id: int
    url: str
    src: str
    photographer: str
    photographer_url: str
    alt: str
    width: int
    height: int
    credit: str


class QueryRecord(TypedDict, total=False):
    """One search the research step ran, for progress displays and for judging the plan."""

    round: int  # 1: the planned queries; 2: the follow-up on the gaps they left
    kind: str  # web, news, shopping or images
    query: str
    results: int
    error: str | None
    revision: int  # 0: the first research of the turn; n: the research before revision n


class ResearchGap(TypedDict, total=False):
    gap: str
    query: str
    revision: int


class Research(TypedDict, total=False):
    sources: list[Source]
    images: list[Image]
    warnings: list[str]
    queries: list[QueryRecord]
    gaps: list[ResearchGap]
    turn: int
    revisions: int  # research rounds run for revisions this turn


class Draft(TypedDict, total=False):
    title: str
    markdown: str
    excerpt: str
    word_count: int
    # Which attempt this is and how it was written: critique copies these into its AttemptRecord.
    number: int
    feedback: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    duration_ms: int


class Piece(TypedDict, total=False):
    """The thread's latest finished piece and the request it was written for: what a follow-up
    ("make it shorter") revises. Kept apart from `request`, which a caller's input replaces on
    every turn, and from `result`, which a later answer replaces."""

    request: ContentRequest
    title: str
    markdown: str


class Verdict(TypedDict, total=False):
    """The critique's verdict on one attempt: what the critique reports and the attempt's record keeps."""

    score: float
    passed: bool
    dimensions: dict[str, float]
    checks: dict[str, Any]
    issues: list[str]
    suggestions: list[str]


class AttemptRecord(Verdict, total=False):
    turn: int
    number: int
    title: str
    markdown: str
    word_count: int
    feedback: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    duration_ms: int


class UsageRecord(TypedDict, total=False):
    turn: int
    node: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    duration_ms: int
    cost_usd: float


class Critique(Verdict, total=False):
    research_gaps: list[str]  # what the sources lack for the next revision; research may fill it


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    request: ContentRequest
    intent: Intent
    research: Research
    draft: Draft
    critique: Critique
    feedback: str
    attempts: Annotated[list[AttemptRecord], operator.add]
    revision: int
    turn: int
    usage: Annotated[list[UsageRecord], operator.add]
    warnings: Annotated[list[str], add_turn_warnings]
    approval: dict[str, Any]
    result: dict[str, Any]
    piece: Piece


class InputState(TypedDict, total=False):
    """What a caller sends: chat messages, structured request fields, or both."""

    messages: Annotated[list[AnyMessage], add_messages]
    request: ContentRequest
