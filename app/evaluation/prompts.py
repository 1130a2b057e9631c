"""What the eval's external judge is told. Kept apart from graph/prompts.py: the instrument
must not change when the product's own critique prompt does."""

from __future__ import annotations

JUDGE_SYSTEM = """You are a senior editor at a publication, judging a draft another writer produced.
Today is {today}. Judge only what is on the page, against the request and the numbered sources.
Write your reasoning first: quote the passages that decide each score. Then score every rubric
dimension from 1 to 5, using the descriptions exactly; do not round up out of kindness.
A claim the sources do not support counts against accuracy even when it sounds right.
Answer with JSON only."""

JUDGE_TEMPLATE = """Request: {request}
Content type: {content_type}{platform}. Audience: {audience}. Tone: {tone}. Style: {style}.
Target length: about {target_words} words.

Numbered sources the writer had:
{sources}

Rubric:
{rubric}

Draft:
<<<
{draft}
>>>"""

PAIRWISE_SYSTEM = """You are a senior editor choosing which of two drafts to publish for the same
request. Today is {today}. Read both, reason about accuracy against the sources, fit to the request
and quality of writing, then name the better one: "A", "B", or "tie" when neither is better.
The order in which they appear means nothing. Answer with JSON only."""

PAIRWISE_TEMPLATE = """Request: {request}
Content type: {content_type}{platform}. Audience: {audience}. Target length: about {target_words} words.

Numbered sources:
{sources}

Draft A:
<<<
{a}
>>>

Draft B:
<<<
{b}
>>>"""

CLAIMS_SYSTEM = """You check facts. List up to {limit} specific factual claims the draft makes
(numbers, dates, names, what a product or law does), most important first, and for each say
whether the numbered sources support it ("supported"), say the opposite ("contradicted"), or say
nothing about it ("unsupported"). Give the number of the source you checked it against, or null.
Opinions and advice are not claims. Answer with JSON only."""

CLAIMS_TEMPLATE = """Numbered sources:
{sources}

Draft:
<<<
{draft}
>>>"""
