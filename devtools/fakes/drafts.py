"""Drafts in each content type's format that pass every hard gate, for the scripted writer.

The prose is filler, but filler that never repeats a sentence, hits the target length, cites
the numbered sources it was given and keeps each format's shape, so that a test's outcome is
decided by what the test scripts (the judge's scores), not by an accident of the fake's text.
"""

from __future__ import annotations

import re

_SOURCE_LINE = re.compile(r"^\[(\d+)\] (.+?)(?: \([^)]*\))? — (\S+)$", re.MULTILINE)
_VOCABULARY = (
    "latency budgets", "error handling", "connection pools", "team habits", "code review", "test suites",
    "release notes", "customer calls", "dashboards", "on-call rotas", "cost reports", "design docs",
    "retries", "timeouts", "caching layers", "job queues", "feature flags", "migration plans", "runbooks",
    "incident reviews", "load tests", "access rules", "backups", "service limits", "data models",
    "onboarding guides", "support tickets", "usage trends", "pricing pages", "deployment windows",
    "metrics", "alerts", "trace spans", "schema changes", "rollbacks", "capacity plans", "audit logs",
    "style guides", "roadmaps", "benchmarks",
)
_VERBS = ("shapes", "clarifies", "protects", "speeds up", "simplifies", "exposes", "reduces", "improves",
          "documents", "changes", "tests", "guides")


def sources_in(prompt: str) -> list[tuple[int, str, str]]:
    """(n, title, url) of the numbered sources a writing prompt lists."""
    return [(int(n), title, url) for n, title, url in _SOURCE_LINE.findall(prompt)]


def sentences(topic: str, count: int, start: int = 0) -> list[str]:
    """`count` distinct sentences of about ten words about `topic`."""
    out = []
    for i in range(start, start + count):
        a = _VOCABULARY[i % len(_VOCABULARY)]
        b = _VOCABULARY[(i * 7 + 3) % len(_VOCABULARY)]
        verb = _VERBS[(i * 5) % len(_VERBS)]
        # The topic once in a while, as a writer would: in every sentence its words would make
        # the text a run of repeated phrases, which the repetition gate rightly flags.
        lead = f"In {topic}, {a}" if i % 6 == 0 else a.capitalize()
        out.append(f"{lead} {verb} how teams handle {b} (case {i + 1}).")
    return out


def _fill(topic: str, words: int, start: int, cite: list[int] | None = None) -> tuple[str, int]:
    """A paragraph of roughly `words` words; returns it and the next sentence index."""
    chosen: list[str] = []
    total, index = 0, start
    while total < words or not chosen:
        sentence = sentences(topic, 1, index)[0]
        if total and total + len(sentence.split()) / 2 > words:
            break
        chosen.append(f"{sentence[:-1]} [{cite[len(chosen) % len(cite)]}]." if cite else sentence)
        total += len(sentence.split())
        index += 1
    return " ".join(chosen), index


def blog_post(topic: str, words: int, keywords: list[str], numbers: list[int]) -> str:
    intro = f"This piece explains {topic} for busy readers" + (f", with {', '.join(keywords)}" if keywords else "")
    sections = ("Why it matters", "How it works", "Common pitfalls", "Conclusion")
    per = max((words - len(intro.split()) - 12) // len(sections), 11)
    parts, index = [f"# A practical guide to {topic}", f"{intro}."], 0
    for n, heading in enumerate(sections):
        text, index = _fill(topic, per, index, numbers[n % len(numbers):][:1] if numbers else None)
        parts += [f"## {heading}", text]
    return "\n\n".join(parts) + "\n"


def research_brief(topic: str, words: int, keywords: list[str], numbers: list[int]) -> str:
    cite = numbers[:3] or None
    per = max((words - 20) // 3, 11)
    summary, index = _fill(topic, per, 0, cite)
    findings, index = _fill(topic, per, index, cite)
    questions, _ = _fill(topic, per, index)
    lead = f"This brief covers {topic}" + (f" and {', '.join(keywords)}" if keywords else "") + "."
    return (f"# {topic.capitalize()}: a research brief\n\n## Summary\n\n{lead} {summary}\n\n"
            f"## Key findings\n\n{findings}\n\n## Open questions\n\n{questions}\n")


def newsletter(topic: str, words: int, keywords: list[str], linked: list[tuple[int, str, str]]) -> str:
    items = linked[:4] or [(0, "No source", "")]
    per = max((words - 30) // max(len(items), 1), 8)
    lines, index = [], 0
    for _, title, url in items:
        text, index = _fill(topic, per, index)
        lines.append(f"- [{title}]({url}) — {text}")
    intro = f"This issue rounds up {topic}" + (f", including {', '.join(keywords)}" if keywords else "") + "."
    return f"# {topic.capitalize()} this week\n\n{intro}\n\n## Worth reading\n\n" + "\n".join(lines) + \
        "\n\nSee you next week.\n"


def email(topic: str, words: int, keywords: list[str]) -> str:
    body, _ = _fill(topic, max(words - 25, 11), 0)
    extra = f" It touches on {', '.join(keywords)}." if keywords else ""
    return (f"Subject: An update on {topic}"[:69] + "\nPreview: What changed and what to do next\n\n"
            f"Hi there,\n\nHere is what you need to know about {topic}.{extra}\n\n{body}\n\n"
            "Reply to this email to book a walkthrough with us.\n\nBest,\nThe team\n")


def social_post(topic: str, words: int, keywords: list[str], platform: str) -> str:
    hook = f"One lesson about {topic} worth sharing today."
    tag = "#" + re.sub(r"\W", "", topic.title())[:20]
    if platform == "x":
        tags = f"{tag} #Teams"
        lines = [hook] + ([f"It comes down to {keywords[0]}."] if keywords else [])
        for sentence in sentences(topic, 8, 1):
            candidate = " ".join([*lines, sentence])
            if len(candidate.split()) + 2 > min(words, 45) or len(candidate) + len(tags) + 2 > 280:
                break
            lines.append(sentence)
        return " ".join(lines) + "\n" + tags + "\n"
    paragraphs, index = [], 0
    for _ in range(3):
        text, index = _fill(topic, max((words - 20) // 3, 11), index)
        paragraphs.append(text)
    if keywords:
        paragraphs[0] += f" It comes down to {', '.join(keywords)}."
    return "\n\n".join([hook, *paragraphs, "What would you add?", f"{tag} #Teams #Leadership"]) + "\n"


def draft_for(content_type: str, platform: str | None, topic: str, words: int, keywords: list[str],
              prompt: str) -> str:
    """A gate-passing draft of the given type for the prompt's sources."""
    listed = sources_in(prompt)
    numbers = [n for n, _, _ in listed]
    if content_type == "social_post":
        return social_post(topic, words, keywords, platform or "linkedin")
    if content_type == "email":
        return email(topic, words, keywords)
    if content_type == "newsletter":
        return newsletter(topic, words, keywords, listed)
    if content_type == "research_brief":
        return research_brief(topic, words, keywords, numbers)
    return blog_post(topic, words, keywords, numbers)
