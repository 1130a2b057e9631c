"""Deterministic reading of a request: the fallback when the model's intent JSON is junk,
and the source of explicit values (a stated word count beats a model's guess)."""

from __future__ import annotations

import re
from typing import Any

from graph.state import STYLES, TONES

_TYPE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("research_brief", ("research brief", "brief on", "briefing", "research report")),
    ("newsletter", ("newsletter",)),
    ("email", ("email", "e-mail", "cold mail")),
    ("social_post", ("tweet", "linkedin", "social post", "social media", "instagram", "thread on x", "x post")),
    ("blog_post", ("blog", "article", "post", "essay", "write-up", "guide")),
)
_UNSUPPORTED = re.compile(
    r"\b(malware|ransomware|exploit|phishing|hack into|steal|credit card numbers|"
    r"generate (an|a) (image|picture|video)|draw |run (this|the) code|execute)\b",
    re.IGNORECASE,
)
_REVISE = re.compile(
    r"^\s*(please\s+)?(can you\s+|could you\s+)?(make|shorten|lengthen|expand|rewrite|rephrase|"
    r"change|add|remove|drop|cut|tighten|simplify|revise|edit|update|fix|more|less)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"^\s*(what|why|how|who|when|where|which|is|are|can|does|do|did|should|explain)\b", re.IGNORECASE
)
_WRITE = re.compile(r"\b(write|draft|compose|create|prepare|produce)\b", re.IGNORECASE)
_WORDS = re.compile(r"(\d{2,5})\s*(?:-|\s)?\s*words?\b", re.IGNORECASE)
_AUDIENCE = re.compile(r"\bfor\s+([a-z][\w\s\-]{2,60}?)(?=\s*(?:,|\.|;|$|\bwith\b|\bin\b|\babout\b|\bthat\b))", re.IGNORECASE)
_TOPIC = re.compile(r"\b(?:on|about|covering|regarding)\s+(.+?)(?=\s*(?:,|\.|;|$|\bfor\b|\bwith\b|\bin a\b|\bthat\b))", re.IGNORECASE)
_KEYWORDS = re.compile(r"\bkeywords?:?\s+(.+?)(?:\.|$)", re.IGNORECASE)
_IMAGES = re.compile(r"\b(photo|image|picture|cover|illustration)s?\b", re.IGNORECASE)
_NO_IMAGES = re.compile(r"\b(no|without)\s+(photo|image|picture)s?\b", re.IGNORECASE)
_NO_RESEARCH = re.compile(r"\b(no|without|skip)\s+(web\s+)?research\b", re.IGNORECASE)
_APPROVAL = re.compile(r"\b(approv\w*|sign[- ]off|review it before|human review|let me review)\b", re.IGNORECASE)
_COMMERCIAL = re.compile(r"\b(buy|best|price|prices|cheap|deal|deals|review of|vs\.?|compare|product|products|shopping|budget)\b", re.IGNORECASE)


def content_type_in(text: str) -> str | None:
    lowered = text.lower()
    for content_type, words in _TYPE_WORDS:
        if any(re.search(rf"\b{re.escape(w)}", lowered) for w in words):
            return content_type
    return None


def classify(text: str, has_previous_draft: bool) -> tuple[str, str | None, str]:
    """(kind, content_type, reason) from keywords alone."""
    if not text.strip():
        return "unsupported", None, "empty request"
    if _UNSUPPORTED.search(text):
        return "unsupported", None, "asks for something Draftloop does not do"
    content_type = content_type_in(text)
    if has_previous_draft and _REVISE.search(text):
        return "revise", None, "an edit instruction for the previous draft"
    if content_type and (_WRITE.search(text) or not _QUESTION.search(text)):
        return "content", content_type, f"mentions a {content_type.replace('_', ' ')}"
    if _WRITE.search(text):
        return "content", "blog_post", "asks to write something; a blog post is the default"
    if _QUESTION.search(text) or text.strip().endswith("?"):
        return "answer", None, "a plain question"
    return "unsupported", None, "neither a writing request nor a question"


def explicit_fields(text: str) -> dict[str, Any]:
    """Only values the text states outright; absent keys mean 'not said'."""
    fields: dict[str, Any] = {}
    if match := _WORDS.search(text):
        fields["target_words"] = int(match.group(1))
    if match := _AUDIENCE.search(text):
        fields["audience"] = match.group(1).strip()
    if match := _TOPIC.search(text):
        fields["topic"] = match.group(1).strip()
    if match := _KEYWORDS.search(text):
        fields["keywords"] = [k.strip() for k in re.split(r",|;", match.group(1)) if k.strip()]
    lowered = text.lower()
    for tone in TONES:
        if tone in lowered:
            fields["tone"] = tone
    for style in STYLES:
        if style.replace("-", " ") in lowered.replace("-", " "):
            fields["style"] = style
    if _NO_IMAGES.search(text):
        fields["images"] = False
    elif _IMAGES.search(text):
        fields["images"] = True
    if _NO_RESEARCH.search(text):
        fields["research"] = False
    if _APPROVAL.search(text):
        fields["require_approval"] = True
    return fields


def is_commercial(topic: str) -> bool:
    return bool(_COMMERCIAL.search(topic))


def guess_topic(text: str) -> str:
    stripped = re.sub(r"^\s*(please\s+)?(write|draft|compose|create)\s+(me\s+)?(an?|the)?\s*", "", text, flags=re.IGNORECASE)
    return stripped.strip().rstrip(".?!")[:120] or text.strip()[:120]
