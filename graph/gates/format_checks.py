"""The shape each content type must have (evals/README.md): social posts, emails, blog posts,
newsletters and research briefs."""

from __future__ import annotations

import re

from graph import formats
from graph import markdown as md
from graph.draft_text import HASHTAG, HEADING, SIGN_OFF, citation_numbers, email_parts, strip_sources_section, urls_in

_GREETING = re.compile(r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings)\b[^\n]{0,60},\s*$",
                       re.IGNORECASE | re.MULTILINE)
_CTA_WORDS = re.compile(
    r"\b(?:reply|book|register|sign up|signup|join|try|start|download|read|schedule|upgrade|claim|rsvp|get|"
    r"visit|check out|learn more|watch|apply|save your|reserve|grab|explore|see|shop|order|contact|call|"
    r"review|update|confirm|activate|enable|complete|take)\b",
    re.IGNORECASE,
)
_SUMMARY_HEADINGS = ("summary", "executive summary", "key findings", "tl;dr", "tldr", "at a glance", "bottom line")
_CLOSING_HEADINGS = ("conclusion", "summary", "wrapping up", "final thoughts", "takeaway", "in closing",
                     "next steps", "the bottom line", "bottom line", "what to do next", "where to go from here",
                     "key points", "recap", "what's next", "what’s next", "the road ahead", "looking ahead")
_LINKED_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\*\*)?\[[^\]]+\]\((https?://[^)\s]+)\)", re.MULTILINE)


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
        if HEADING.search(body):
            problems.append("a social post has no headings")
        if md.CITATION.search(body):
            problems.append("a social post does not carry [n] citation markers")
        low, high = formats.PLATFORM_HASHTAGS[platform or "linkedin"]
        tags = len(HASHTAG.findall(body))
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
        if HEADING.search(email_body) or "**" in email_body:
            problems.append("an email is plain text: no markdown headings or bold")
        if not _GREETING.search("\n".join(email_body.splitlines()[:2])):
            problems.append("there is no greeting line (e.g. 'Hi Dana,')")
        sign_offs = list(SIGN_OFF.finditer(email_body))
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
