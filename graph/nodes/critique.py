"""critique: deterministic checks plus a model judge, one combined score, a bounded loop."""

from __future__ import annotations

import re
from typing import Annotated, Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graph import markdown as md
from graph.context import DraftloopContext, active_model, dependencies, effective_settings
from graph.model_calls import invoke_structured
from graph.nodes.draft import turn_attempts
from graph.prompts import CRITIQUE_SYSTEM, CRITIQUE_TEMPLATE
from graph.state import AttemptRecord, State

DIMENSIONS = ("clarity", "accuracy", "completeness", "relevance", "seo", "readability", "engagement")
# The judge sees meaning, the checks see structure; meaning weighs more.
JUDGE_WEIGHT = 0.6
STRUCTURED_TYPES = {"blog_post", "newsletter", "research_brief"}
_STOPWORDS = {"the", "a", "an", "and", "or", "of", "for", "to", "in", "on", "with", "about", "how", "why", "what", "your", "our"}


class Score(BaseModel):
    clarity: int = Field(ge=0, le=100)
    accuracy: int = Field(ge=0, le=100)
    completeness: int = Field(ge=0, le=100)
    relevance: int = Field(ge=0, le=100)
    seo: int = Field(ge=0, le=100)
    readability: int = Field(ge=0, le=100)
    engagement: int = Field(ge=0, le=100)
    # Bounded so that llama.cpp's grammar ends the list instead of letting a small model loop.
    issues: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=6)
    suggestions: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=6)


def _topic_terms(topic: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", topic.lower()) if w not in _STOPWORDS and len(w) > 2]


def deterministic_checks(markdown: str, request: dict[str, Any]) -> tuple[float, dict[str, Any], list[str], list[str]]:
    """Returns (score 0-100, checks, issues, suggestions)."""
    target = int(request.get("target_words") or 600)
    words = md.word_count(markdown)
    lowered = markdown.lower()
    checks: dict[str, Any] = {}
    issues: list[str] = []
    suggestions: list[str] = []

    ratio = words / target if target else 0
    length_ok = 0.75 <= ratio <= 1.25
    checks["length"] = {"ok": length_ok, "words": words, "target": target,
                        "score": 1.0 if length_ok else max(0.0, 1 - abs(1 - ratio))}
    if not length_ok:
        issues.append(f"Length is {words} words; the target is {target}.")
        suggestions.append(f"{'Expand' if ratio < 1 else 'Cut'} the piece to about {target} words.")

    has_title = bool(md.title_of(markdown))
    checks["title"] = {"ok": has_title, "score": float(has_title)}
    if not has_title:
        issues.append("There is no '# ' title line.")
        suggestions.append("Start with a single '# ' title line.")

    if request.get("content_type", "blog_post") in STRUCTURED_TYPES:
        sections = md.sections_of(markdown)
        checks["sections"] = {"ok": len(sections) >= 3, "count": len(sections), "score": min(1.0, len(sections) / 3)}
        if len(sections) < 3:
            issues.append(f"Only {len(sections)} '## ' sections; at least 3 are expected.")
            suggestions.append("Organise the body into at least three '## ' sections.")
        conclusion = md.has_conclusion(markdown)
        checks["conclusion"] = {"ok": conclusion, "score": float(conclusion)}
        if not conclusion:
            issues.append("There is no conclusion.")
            suggestions.append("End with a '## Conclusion' section that sums up the key points.")

    terms = _topic_terms(str(request.get("topic", "")))
    found = [t for t in terms if t in lowered]
    topic_score = len(found) / len(terms) if terms else 1.0
    checks["topic"] = {"ok": topic_score >= 0.5, "missing": [t for t in terms if t not in found], "score": topic_score}
    if topic_score < 0.5:
        issues.append("The draft barely mentions the topic.")
        suggestions.append(f"Address the topic directly: {request.get('topic')}.")

    keywords = [str(k) for k in request.get("keywords") or []]
    missing = [k for k in keywords if k.lower() not in lowered]
    keyword_score = 1 - len(missing) / len(keywords) if keywords else 1.0
    checks["keywords"] = {"ok": not missing, "missing": missing, "score": keyword_score}
    if missing:
        issues.append(f"Missing keywords: {', '.join(missing)}.")
        suggestions.append(f"Work in the keywords: {', '.join(missing)}.")

    scores = [c["score"] for c in checks.values()]
    return round(100 * sum(scores) / len(scores), 1), checks, issues, suggestions


async def critique(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    settings = effective_settings(runtime, deps)
    request = state.get("request", {})
    current = state.get("draft", {})
    markdown = current.get("markdown", "")
    turn = int(state.get("turn") or 1)
    det_score, checks, issues, suggestions = deterministic_checks(markdown, request)
    update: dict[str, Any] = {}
    warnings: list[str] = []

    chat, provider, model_name = await active_model(deps)
    judged, usage, problem = await invoke_structured(
        chat,
        Score,
        [SystemMessage(CRITIQUE_SYSTEM), HumanMessage(CRITIQUE_TEMPLATE.format(
            content_type=str(request.get("content_type", "blog_post")).replace("_", " "),
            topic=request.get("topic", ""),
            audience=request.get("audience", ""),
            target_words=request.get("target_words", ""),
            keywords=", ".join(request.get("keywords") or []) or "none",
            markdown=markdown,
        ))],
        node="critique",
        provider=provider,
        model=model_name,
        settings=settings,
        turn=turn,
    )
    update["usage"] = [usage]
    dimensions: dict[str, float] = {}
    if judged is not None:
        dimensions = {d: float(getattr(judged, d)) for d in DIMENSIONS}
        judge_score = sum(dimensions.values()) / len(dimensions)
        score = round(JUDGE_WEIGHT * judge_score + (1 - JUDGE_WEIGHT) * det_score, 1)
        issues = issues + [i for i in judged.issues if i]
        suggestions = suggestions + [s for s in judged.suggestions if s]
    else:
        warnings.append(f"{problem}; scored on deterministic checks only")
        score = det_score
    passed = score >= settings.quality_threshold

    attempt = AttemptRecord(
        turn=turn,
        number=int(current.get("number") or len(state.get("attempts") or []) + 1),
        title=current.get("title", ""),
        markdown=markdown,
        word_count=int(current.get("word_count") or 0),
        score=score,
        passed=passed,
        dimensions=dimensions,
        checks=checks,
        issues=issues,
        suggestions=suggestions,
        feedback=current.get("feedback", ""),
        model=current.get("model", ""),
        provider=current.get("provider", ""),
        input_tokens=int(current.get("input_tokens") or 0),
        output_tokens=int(current.get("output_tokens") or 0),
        duration_ms=int(current.get("duration_ms") or 0),
    )
    verdict = {"score": score, "passed": passed, "dimensions": dimensions, "checks": checks,
               "issues": issues, "suggestions": suggestions}
    update["attempts"] = [attempt]
    update["critique"] = verdict
    revision = int(state.get("revision") or 0)
    if not passed and revision >= settings.max_revisions:
        # Out of revisions: the best attempt of this turn is the one that ships, marked as failing.
        best = max([*turn_attempts(state), attempt], key=lambda a: a.get("score", 0))
        update["draft"] = {**current, "title": best.get("title", ""), "markdown": best.get("markdown", ""),
                           "word_count": best.get("word_count", 0), "excerpt": md.excerpt_of(best.get("markdown", "")),
                           "number": best.get("number")}
        update["critique"] = {**verdict, "score": best.get("score", 0), "passed": False,
                              "dimensions": best.get("dimensions", {}), "best_attempt": best.get("number"),
                              "exhausted": True}
    elif not passed:
        update["revision"] = revision + 1
    if warnings:
        update["warnings"] = warnings
    return update


def after_critique(state: State) -> str:
    verdict = state.get("critique", {})
    if verdict.get("passed") or verdict.get("exhausted"):
        return "approval" if state.get("request", {}).get("require_approval") else "finalize"
    return "draft"
