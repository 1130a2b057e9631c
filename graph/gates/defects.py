"""Defects of the text itself: a loop, a cut-off ending, chat around the piece, placeholders."""

from __future__ import annotations

import re
from collections import Counter

from graph import markdown as md
from graph.draft_text import HASHTAG, HEADING, SIGN_OFF, clip, email_parts, norm_words, sentences, strip_sources_section

# Chat openers: an interjection with its punctuation ("Sure!", "Certainly,"), or words that
# only a reply to a requester starts with. A title such as "Here's why tea matters" is neither.
_PREAMBLE = re.compile(
    r"^\s*(?:\*\*)?(?:(?:sure|certainly|of course|absolutely|okay|ok|great|alright|no problem)\s*[!,.:—-]|"
    r"as an ai\b|i(?:'d|’d| would) be (?:happy|glad)\b|i(?:'ve|’ve| have) (?:written|drafted|created|prepared)\b|"
    r"happy to help\b|below is\b)",
    re.IGNORECASE,
)
_PREAMBLE_PHRASE = re.compile(
    r"\b(?:here is|here's|here’s|below is|here are) (?:a|an|the|your|my)\b[^.\n]{0,80}\b(?:post|draft|article|"
    r"email|newsletter|brief|tweet|version|piece|thread)s?\b",
    re.IGNORECASE,
)
_CHATTER = re.compile(
    r"\b(?:i hope (?:this|that) helps|let me know if you(?:'d| would)? (?:like|want|need)|feel free to (?:adjust|modify|"
    r"edit|change)|as requested|word count:|\(word count|this (?:draft|post|article) (?:is|has) (?:about|approximately))",
    re.IGNORECASE,
)
_PLACEHOLDER_BRACKET = re.compile(
    r"\[(?:(?:your|insert|add|enter|company|client|product|brand|name|author|date|link|url|title|city|"
    r"number|recipient|first name|sender|email|phone|address|x+)\b[^\]\n]{0,40})\]|\{\{[^}\n]{1,40}\}\}|"
    r"<(?:insert|your|name|company|link)[^>\n]{0,40}>",
    re.IGNORECASE,
)
_PLACEHOLDER_TOKEN = re.compile(
    r"\b(?:lorem ipsum|dolor sit amet|TODO|TBD|FIXME|XXX+)\b|\b[X]{2,}%|\$X+\b|\bX{2,}\b", re.IGNORECASE
)


def find_repetition(text: str) -> str | None:
    """A loop: a sentence said three times, a paragraph twice, or a text made of re-used phrases."""
    said = [" ".join(norm_words(s)) for s in sentences(text)]
    counts = Counter(s for s in said if len(s.split()) >= 5)
    repeated = [(s, n) for s, n in counts.items() if n >= 3]
    if repeated:
        sentence, times = max(repeated, key=lambda item: item[1])
        return f"the sentence \"{clip(sentence)}\" appears {times} times"
    paragraphs = [" ".join(norm_words(md.plain_text(p))) for p in re.split(r"\n\s*\n", text)]
    paragraph_counts = Counter(p for p in paragraphs if len(p.split()) >= 12)
    if any(n >= 2 for n in paragraph_counts.values()):
        paragraph = next(p for p, n in paragraph_counts.items() if n >= 2)
        return f"the paragraph beginning \"{clip(paragraph)}\" appears more than once"
    words = norm_words(md.plain_text(text))
    if len(words) >= 60:
        grams = [tuple(words[i:i + 6]) for i in range(len(words) - 5)]
        duplicated = len(grams) - len(set(grams))
        if duplicated / len(grams) > 0.3:
            return f"{round(100 * duplicated / len(grams))}% of its six-word phrases are repeats"
    return None


def find_truncation(text: str, content_type: str) -> str | None:
    """The piece stops mid-thought: no closing punctuation, an open code fence, a bare heading."""
    stripped = strip_sources_section(text.strip())
    if not stripped:
        return "the draft is empty"
    if stripped.count("```") % 2:
        return "a code block is never closed"
    if content_type == "email":
        body = email_parts(stripped)["body"]
        sign_off = list(SIGN_OFF.finditer(body))
        if sign_off:
            stripped = body[: sign_off[-1].start()].rstrip()
    lines = [line.rstrip() for line in stripped.splitlines() if line.strip()]
    if not lines:
        return "the draft is empty"
    last = lines[-1].strip()
    if HEADING.match(last):
        return f"it ends on the heading \"{clip(last)}\" with nothing under it"
    if content_type == "social_post" and HASHTAG.search(last):
        # Hashtags close a post, on their own line or after its last sentence.
        without = HASHTAG.sub("", last).strip(" .,")
        if without:
            last = without
        elif len(lines) == 1:
            return None
        else:
            last = lines[-2].strip()
    if re.search(r"(?:[.!?…:)\]\"”’*_`]|https?://\S+|\d%?)$", last) and not last.endswith(":"):
        return None
    if re.match(r"^\s*(?:[-*+]|\d+[.)])\s+\S", last) and len(last.split()) >= 3 and not re.search(r"[,;–-]$", last):
        # A list item need not end with a full stop, but one cut off mid-phrase usually has few
        # words and no verb; accept complete-looking items.
        if not re.search(r"\b(?:the|a|an|of|to|and|or|with|for|in|on|that|is|are|but)$", last, re.IGNORECASE):
            return None
    return f"it stops mid-sentence: \"…{clip(last[-60:])}\""


def find_preamble(text: str) -> str | None:
    """Chat wrapped around the piece: "Sure! Here is...", "I hope this helps"."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0].strip()
    if (not first.startswith("#") and _PREAMBLE.match(first)) or _PREAMBLE_PHRASE.search(first):
        return f"it opens with chat: \"{clip(first)}\""
    tail = "\n".join(lines[-3:])
    if match := _CHATTER.search(tail):
        return f"it ends with chat: \"{clip(match.group(0))}\""
    return None


def find_placeholders(text: str) -> list[str]:
    found = [m.group(0) for m in _PLACEHOLDER_BRACKET.finditer(text)]
    found += [m.group(0) for m in _PLACEHOLDER_TOKEN.finditer(text)]
    return list(dict.fromkeys(found))
