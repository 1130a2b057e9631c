"""Reading a draft: its body without headers or a Sources list, words, sentences, URLs, citations.

The hard gates (graph/gates/), the nodes that write and finish a draft and the research planner
read drafts and queries the same way through these helpers, so a word or a URL counts alike
wherever it is counted.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from graph import markdown as md

_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’)\]]*\s+")
_WORDS = re.compile(r"[a-z0-9][a-z0-9'’-]*")
SIGN_OFF = re.compile(
    r"^(?:best|best regards|kind regards|regards|warm regards|warmly|thanks|thank you|many thanks|cheers|"
    r"sincerely|all the best|talk soon|see you soon|yours)\b[^\n]{0,30},?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
HASHTAG = re.compile(r"(?<![\w#])#[A-Za-z][\w]*")
HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_STOPWORDS = frozenset({
    "the", "a", "an", "and", "or", "of", "for", "to", "in", "on", "with", "about", "how", "why", "what", "your",
    "our", "into", "from", "that", "this", "these", "those", "its", "their", "vs", "versus", "using", "use", "new",
    "best", "guide", "post", "blog", "tips", "ways", "way", "more", "most", "make", "you", "we", "is", "are",
})


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


def sentences(text: str) -> list[str]:
    plain = md.plain_text(text)
    chunks: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)", plain):
        chunks.extend(s.strip() for s in _SENTENCE_END.split(" ".join(block.split())) if s.strip())
    return chunks


def norm_words(text: str) -> list[str]:
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


def topic_terms(topic: str) -> list[str]:
    return list(dict.fromkeys(w for w in norm_words(topic) if w not in _STOPWORDS and len(w) > 1))



def has_phrase(phrase: str, text: str) -> bool:
    """A keyword phrase on word boundaries, case-insensitive, flexible about spaces and hyphens."""
    words = norm_words(phrase)
    if not words:
        return True
    pattern = r"[\s\-–]+".join(re.escape(w) for w in words)
    return re.search(rf"(?<![\w]){pattern}(?:s|es)?(?![\w])", text.lower()) is not None


def clip(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
