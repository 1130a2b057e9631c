"""Hard gates: defects a reader sees at a glance and a script can find without a model.

Each detector is a pure function of the draft and its request. The critique fails an attempt
on any gate whatever its judge says (a fooled judge must not ship loops or placeholders), and
`draftloop eval` reports the same detectors as rates, so the instrument and the product agree
on what a defect is.

Each module here holds the detectors of one kind of defect: defects.py (loops, truncation, chat,
placeholders), grounding.py (URLs and citations no source backs), on_topic.py (topic and keywords)
and format_checks.py (the shape each content type must have); this module runs them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graph import formats
from graph.draft_text import count_words
from graph.gates.defects import find_placeholders, find_preamble, find_repetition, find_truncation
from graph.gates.format_checks import format_problems
from graph.gates.grounding import dangling_citations, invented_urls
from graph.gates.on_topic import missing_keywords, topic_coverage


@dataclass(frozen=True)
class Gate:
    """One hard check: `ok`, and when not, a sentence the next revision can act on."""

    name: str
    ok: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.data}


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
