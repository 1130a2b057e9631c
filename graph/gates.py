"""Hard gates: defects a reader sees at a glance and a script can find without a model.

Each detector is a pure function of the draft and its request. The critique fails an attempt
on any gate whatever its judge says (a fooled judge must not ship loops or placeholders), and
`draftloop eval` reports the same detectors as rates, so the instrument and the product agree
on what a defect is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from graph import formats
from graph import markdown as md

_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’)\]]*\s+")
_WORDS = re.compile(r"[a-z0-9][a-z0-9'’-]*")
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
_GREETING = re.compile(r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings)\b[^\n]{0,60},\s*$",
                       re.IGNORECASE | re.MULTILINE)
_SIGN_OFF = re.compile(
    r"^(?:best|best regards|kind regards|regards|warm regards|warmly|thanks|thank you|many thanks|cheers|"
    r"sincerely|all the best|talk soon|see you soon|yours)\b[^\n]{0,30},?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_CTA_WORDS = re.compile(
    r"\b(?:reply|book|register|sign up|signup|join|try|start|download|read|schedule|upgrade|claim|rsvp|get|"
    r"visit|check out|learn more|watch|apply|save your|reserve|grab|explore|see|shop|order|contact|call|"
    r"review|update|confirm|activate|enable|complete|take)\b",
    re.IGNORECASE,
)
_HASHTAG = re.compile(r"(?<![\w#])#[A-Za-z][\w]*")
_HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_SUMMARY_HEADINGS = ("summary", "executive summary", "key findings", "tl;dr", "tldr", "at a glance", "bottom line")
_CLOSING_HEADINGS = ("conclusion", "summary", "wrapping up", "final thoughts", "takeaway", "in closing",
                     "next steps", "the bottom line", "bottom line", "what to do next", "where to go from here",
                     "key points", "recap", "what's next", "what’s next", "the road ahead", "looking ahead")
_LINKED_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\*\*)?\[[^\]]+\]\((https?://[^)\s]+)\)", re.MULTILINE)
_STOPWORDS = frozenset({
    "the", "a", "an", "and", "or", "of", "for", "to", "in", "on", "with", "about", "how", "why", "what", "your",
    "our", "into", "from", "that", "this", "these", "those", "its", "their", "vs", "versus", "using", "use", "new",
    "best", "guide", "post", "blog", "tips", "ways", "way", "more", "most", "make", "you", "we", "is", "are",
})


@dataclass(frozen=True)
class Gate:
    """One hard check: `ok`, and when not, a sentence the next revision can act on."""

    name: str
    ok: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.data}


# text helpers -------------------------------------------------------------------------------

def strip_sources_section(markdown: str) -> str:
    """The draft without a trailing Sources/References list (finalize adds its own)."""
    match = re.search(r"^#{2,3}\s*(?:sources|references|works cited|bibliography)\s*$", markdown,
                      re.IGNORECASE | re.MULTILINE)
    return markdown[: match.start()].rstrip() if match else markdown


def email_parts(text: str) -> dict[str, str]:
    """Subject and preview header lines and the body of an email draft."""
    subject = preview = ""
    lines = text.strip().splitlines()
    index = 0
    while index < len(lines) and index < 4:
        line = lines[index].strip()
        if match := re.match(r"^\**subject\**\s*:\s*(.+)$", line, re.IGNORECASE):
            subject = match.group(1).strip().strip("*").strip()
        elif match := re.match(r"^\**(?:preview|preview text|preheader)\**\s*:\s*(.+)$", line, re.IGNORECASE):
            preview = match.group(1).strip().strip("*").strip()
        elif line:
            break
        index += 1
    return {"subject": subject, "preview": preview, "body": "\n".join(lines[index:]).strip()}


def body_of(markdown: str, content_type: str) -> str:
    """What counts as the piece's text: no email header lines, no appended Sources list."""
    text = strip_sources_section(markdown.strip())
    if content_type == "email":
        return email_parts(text)["body"]
    return text


def count_words(markdown: str, content_type: str = "blog_post") -> int:
    return md.word_count(body_of(markdown, content_type))


def _sentences(text: str) -> list[str]:
    plain = md.plain_text(text)
    chunks: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)", plain):
        chunks.extend(s.strip() for s in _SENTENCE_END.split(" ".join(block.split())) if s.strip())
    return chunks


def _norm_words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def normalise_url(url: str) -> str:
    """Compare URLs as a reader would: scheme, `www.`, case of the host, a trailing slash and
    a fragment do not make a different page."""
    url = url.strip().rstrip(".,;:!?”’\"'")
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.lower()
    host = (parts.hostname or "").lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    return urlunsplit(("https", host, path, parts.query, ""))


def urls_in(text: str) -> list[str]:
    found = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?”’\"'*_")
        found.append(url)
    return list(dict.fromkeys(found))


def citation_numbers(text: str) -> list[int]:
    """The source numbers a text cites as [n], [n, m] or [n-m], in order of first use."""
    numbers: list[int] = []
    for match in md.CITATION.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = [int(b) for b in re.split(r"\s*[–-]\s*", part) if b]
            if len(bounds) == 2 and 0 < bounds[1] - bounds[0] < 20:
                numbers.extend(range(bounds[0], bounds[1] + 1))
            else:
                numbers.extend(bounds)
    return list(dict.fromkeys(numbers))


# detectors ----------------------------------------------------------------------------------

def find_repetition(text: str) -> str | None:
    """A loop: a sentence said three times, a paragraph twice, or a text made of re-used phrases."""
    sentences = [" ".join(_norm_words(s)) for s in _sentences(text)]
    counts = Counter(s for s in sentences if len(s.split()) >= 5)
    repeated = [(s, n) for s, n in counts.items() if n >= 3]
    if repeated:
        sentence, times = max(repeated, key=lambda item: item[1])
        return f"the sentence \"{_clip(sentence)}\" appears {times} times"
    paragraphs = [" ".join(_norm_words(md.plain_text(p))) for p in re.split(r"\n\s*\n", text)]
    paragraph_counts = Counter(p for p in paragraphs if len(p.split()) >= 12)
    if any(n >= 2 for n in paragraph_counts.values()):
        paragraph = next(p for p, n in paragraph_counts.items() if n >= 2)
        return f"the paragraph beginning \"{_clip(paragraph)}\" appears more than once"
    words = _norm_words(md.plain_text(text))
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
        sign_off = list(_SIGN_OFF.finditer(body))
        if sign_off:
            stripped = body[: sign_off[-1].start()].rstrip()
    lines = [line.rstrip() for line in stripped.splitlines() if line.strip()]
    if not lines:
        return "the draft is empty"
    last = lines[-1].strip()
    if _HEADING.match(last):
        return f"it ends on the heading \"{_clip(last)}\" with nothing under it"
    if content_type == "social_post" and _HASHTAG.search(last):
        # Hashtags close a post, on their own line or after its last sentence.
        without = _HASHTAG.sub("", last).strip(" .,")
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
    return f"it stops mid-sentence: \"…{_clip(last[-60:])}\""


def find_preamble(text: str) -> str | None:
    """Chat wrapped around the piece: "Sure! Here is...", "I hope this helps"."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0].strip()
    if (not first.startswith("#") and _PREAMBLE.match(first)) or _PREAMBLE_PHRASE.search(first):
        return f"it opens with chat: \"{_clip(first)}\""
    tail = "\n".join(lines[-3:])
    if match := _CHATTER.search(tail):
        return f"it ends with chat: \"{_clip(match.group(0))}\""
    return None


def find_placeholders(text: str) -> list[str]:
    found = [m.group(0) for m in _PLACEHOLDER_BRACKET.finditer(text)]
    found += [m.group(0) for m in _PLACEHOLDER_TOKEN.finditer(text)]
    return list(dict.fromkeys(found))


def allowed_urls(sources: Sequence[Mapping[str, Any]], request_text: str = "") -> set[str]:
    urls = {normalise_url(str(s.get("url") or "")) for s in sources if s.get("url")}
    urls |= {normalise_url(u) for u in urls_in(request_text)}
    return urls


def invented_urls(text: str, sources: Sequence[Mapping[str, Any]], request_text: str = "") -> list[str]:
    """URLs in the text that are neither a source's nor given in the request."""
    allowed = allowed_urls(sources, request_text)
    return [u for u in urls_in(text) if normalise_url(u) not in allowed]


def dangling_citations(text: str, source_count: int) -> list[int]:
    return [n for n in citation_numbers(text) if not 1 <= n <= source_count]


def topic_terms(topic: str) -> list[str]:
    return list(dict.fromkeys(w for w in _norm_words(topic) if w not in _STOPWORDS and len(w) > 1))


def _has_term(term: str, lowered: str) -> bool:
    # Word-boundary match; long terms may take a suffix (plurals, -ing), short ones may not:
    # "ai" must not be found in "said".
    tail = r"\w{0,3}\b" if len(term) >= 4 else r"\b"
    return re.search(rf"\b{re.escape(term)}{tail}", lowered) is not None


def has_phrase(phrase: str, text: str) -> bool:
    """A keyword phrase on word boundaries, case-insensitive, flexible about spaces and hyphens."""
    words = _norm_words(phrase)
    if not words:
        return True
    pattern = r"[\s\-–]+".join(re.escape(w) for w in words)
    return re.search(rf"(?<![\w]){pattern}(?:s|es)?(?![\w])", text.lower()) is not None


def topic_coverage(text: str, topic: str) -> tuple[float, list[str]]:
    terms = topic_terms(topic)
    if not terms:
        return 1.0, []
    lowered = md.plain_text(text).lower()
    missing = [t for t in terms if not _has_term(t, lowered)]
    return (len(terms) - len(missing)) / len(terms), missing


def missing_keywords(text: str, keywords: list[str]) -> list[str]:
    plain = md.plain_text(text)
    return [k for k in keywords if k.strip() and not has_phrase(k, plain)]


def format_problems(text: str, content_type: str, platform: str | None, source_count: int) -> list[str]:
    """What keeps the draft from being the shape its type must have (evals/README.md)."""
    problems: list[str] = []
    body = strip_sources_section(text.strip())
    headings = md.sections_of(body)
    if content_type == "social_post":
        platform = formats.platform_for(content_type, platform)
        limit = formats.PLATFORM_CHAR_LIMITS[platform or "linkedin"]
        if len(body) > limit:
            problems.append(f"it has {len(body)} characters; {platform} allows {limit}")
        if _HEADING.search(body):
            problems.append("a social post has no headings")
        if md.CITATION.search(body):
            problems.append("a social post does not carry [n] citation markers")
        low, high = formats.PLATFORM_HASHTAGS[platform or "linkedin"]
        tags = len(_HASHTAG.findall(body))
        if not low <= tags <= high:
            problems.append(f"it has {tags} hashtags; a {platform} post wants {low}–{high}")
        if len(urls_in(body)) > 1:
            problems.append("a social post carries at most one link")
        return problems
    if content_type == "email":
        parts = email_parts(body)
        if not parts["subject"]:
            problems.append("there is no 'Subject:' line")
        elif len(parts["subject"]) > formats.EMAIL_SUBJECT_MAX:
            problems.append(f"the subject has {len(parts['subject'])} characters; at most {formats.EMAIL_SUBJECT_MAX}")
        if not parts["preview"]:
            problems.append("there is no 'Preview:' line after the subject")
        elif len(parts["preview"]) > formats.EMAIL_PREVIEW_MAX:
            problems.append(f"the preview has {len(parts['preview'])} characters; at most {formats.EMAIL_PREVIEW_MAX}")
        email_body = parts["body"]
        if _HEADING.search(email_body) or "**" in email_body:
            problems.append("an email is plain text: no markdown headings or bold")
        if not _GREETING.search("\n".join(email_body.splitlines()[:2])):
            problems.append("there is no greeting line (e.g. 'Hi Dana,')")
        sign_offs = list(_SIGN_OFF.finditer(email_body))
        if not sign_offs:
            problems.append("there is no sign-off line (e.g. 'Best,') with a name")
            return problems
        before = email_body[: sign_offs[-1].start()].strip()
        paragraphs = [p for p in re.split(r"\n\s*\n", before) if p.strip()]
        cta = paragraphs[-1] if paragraphs else ""
        if not (urls_in(cta) or _CTA_WORDS.search(cta)):
            problems.append("there is no call to action in the paragraph before the sign-off")
        return problems
    if not md.title_of(body):
        problems.append("there is no '# ' title line")
    if content_type == "blog_post":
        words = md.word_count(body)
        wanted = 3 if words >= 500 else 2
        if len(headings) < wanted:
            problems.append(f"it has {len(headings)} '## ' sections; at least {wanted} are expected")
        if headings and not any(c in h.lower() for h in headings[-2:] for c in _CLOSING_HEADINGS):
            if not md.has_conclusion(body):
                problems.append("there is no closing section (Conclusion, Takeaways, Next steps...)")
    elif content_type == "newsletter":
        items = _LINKED_ITEM.findall(body)
        if not headings:
            problems.append("a newsletter groups its items under '## ' sections")
        if len(items) < formats.NEWSLETTER_MIN_ITEMS:
            problems.append(f"it has {len(items)} linked items; at least {formats.NEWSLETTER_MIN_ITEMS} are expected")
    elif content_type == "research_brief":
        if not headings or not any(h.lower().startswith(s) for s in _SUMMARY_HEADINGS for h in headings[:1]):
            problems.append("a brief opens with a '## Summary' section")
        wanted = min(formats.BRIEF_MIN_CITED, source_count)
        cited = [n for n in citation_numbers(body) if 1 <= n <= source_count]
        if wanted and len(cited) < wanted:
            problems.append(f"it cites {len(cited)} distinct sources as [n]; at least {wanted} are expected")
    return problems


def _clip(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# all gates ----------------------------------------------------------------------------------

def run_gates(markdown: str, request: Mapping[str, Any], sources: Sequence[Mapping[str, Any]]) -> list[Gate]:
    """Every hard gate for this draft, passed or not, in a stable order."""
    content_type = str(request.get("content_type") or "blog_post")
    platform = formats.platform_for(content_type, request.get("platform"))
    text = markdown.strip()
    gates: list[Gate] = []

    target = int(request.get("target_words") or formats.default_target_words(content_type, platform))
    words = count_words(text, content_type)
    low, high = target * (1 - formats.LENGTH_TOLERANCE), target * (1 + formats.LENGTH_TOLERANCE)
    length_ok = low <= words <= high
    gates.append(Gate("length", length_ok,
                      "" if length_ok else f"It has {words} words; the target is {target} (accepted: "
                                           f"{round(low)}–{round(high)}). {'Expand' if words < low else 'Cut'} it.",
                      {"words": words, "target": target}))

    problem = find_repetition(text)
    gates.append(Gate("repetition", problem is None,
                      f"It repeats itself: {problem}. Say each thing once." if problem else ""))
    problem = find_truncation(text, content_type)
    gates.append(Gate("truncation", problem is None,
                      f"It is cut off: {problem}. Finish the piece." if problem else ""))
    problem = find_preamble(text)
    gates.append(Gate("preamble", problem is None,
                      f"It talks to the requester: {problem}. Write only the piece itself." if problem else ""))
    placeholders = find_placeholders(text)
    gates.append(Gate("placeholders", not placeholders,
                      f"It has placeholders: {', '.join(placeholders[:5])}. Replace them with real content "
                      "or leave the detail out." if placeholders else "", {"found": placeholders[:10]}))
    invented = invented_urls(text, sources, str(request.get("text") or ""))
    dangling = dangling_citations(text, len(sources))
    grounded_ok = not invented and not dangling
    detail = []
    if invented:
        detail.append(f"URLs that are not among the sources: {', '.join(invented[:5])}")
    if dangling:
        detail.append(f"citations of sources that do not exist: {', '.join(f'[{n}]' for n in dangling[:5])}")
    gates.append(Gate("citations", grounded_ok,
                      ("It " + "; ".join(detail) + ". Cite only the numbered sources.") if detail else "",
                      {"invented_urls": invented[:10], "dangling": dangling[:10]}))
    problems = format_problems(text, content_type, platform, len(sources))
    gates.append(Gate("format", not problems,
                      ("The format is wrong: " + "; ".join(problems) + ".") if problems else "",
                      {"problems": problems}))
    coverage, missing_terms = topic_coverage(text, str(request.get("topic") or ""))
    topic_ok = coverage >= 0.5
    gates.append(Gate("topic", topic_ok,
                      "" if topic_ok else f"It barely touches the topic ({request.get('topic')}): "
                                          f"{', '.join(missing_terms)} never appear.",
                      {"coverage": round(coverage, 2), "missing": missing_terms}))
    keywords = [str(k) for k in request.get("keywords") or []]
    missing = missing_keywords(text, keywords)
    gates.append(Gate("keywords", not missing,
                      f"The requested keywords are missing: {', '.join(missing)}." if missing else "",
                      {"missing": missing}))
    return gates


def failed(gates: list[Gate]) -> list[Gate]:
    return [g for g in gates if not g.ok]
