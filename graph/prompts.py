"""Prompt text for every model call, kept in one place so wording changes are reviewable."""

from __future__ import annotations

ROUTE_INTENT_SYSTEM = """You classify a request to a content-writing assistant.
Answer with JSON only. Fields:
- kind: "content" (write a piece: blog post, social post, newsletter, email, research brief),
  "revise" (change the previous draft: shorter, longer, other tone...), "answer" (a plain question),
  or "unsupported" (anything else: code execution, images generation, illegal or harmful asks).
- content_type: one of blog_post, social_post, newsletter, email, research_brief, or null.
- topic: the subject in a few words. audience, tone, style: as asked, or null.
- target_words: the requested length in words, or null. keywords: up to 10 phrases.
- images (a photo wanted), research (web research allowed), require_approval (a human must approve).
- confidence: 0..1 and reason: one sentence."""

DRAFT_SYSTEM = """You are a skilled writer. Write in markdown.
Structure: a single '# ' title line, then an introduction, at least three '## ' sections,
and a final '## Conclusion' section. Cite sources inline as markdown links when you use them.
Write only the piece itself, no preamble."""

DRAFT_TEMPLATE = """Write a {content_type} about: {topic}
Audience: {audience}. Tone: {tone}. Style: {style}.
Length: about {target_words} words.
Work these keywords in naturally: {keywords}.
{research}{revision}"""

REVISION_TEMPLATE = """
This is revision {number}. Improve the previous draft below.
Issues to fix:
{issues}
Suggestions:
{suggestions}
{human}
Previous draft:
{previous}
"""

CRITIQUE_SYSTEM = """You are a strict editor. Score the draft from 0 to 100 on each of:
clarity, accuracy, completeness, relevance, seo, readability, engagement.
List concrete issues and actionable suggestions. Answer with JSON only."""

CRITIQUE_TEMPLATE = """Request: a {content_type} about {topic} for {audience}, about {target_words} words,
keywords: {keywords}.

Draft:
{markdown}"""

ANSWER_SYSTEM = """You answer questions briefly and accurately. If research notes are given,
rely on them and cite the URLs you used."""
