"""critique: hard gates, then a judge on an anchored rubric; it fails closed and bounds the loop.

An attempt passes only when no hard gate fails (graph/gates/), the judge's answer was
usable, no rubric dimension is at or below the floor, and the judge's score reaches the
quality threshold. Whatever a judge says cannot ship a loop, a placeholder or an invented URL;
a judge whose answer is junk twice leaves the attempt unjudged, and unjudged does not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from graph import formats, gates, rubric
from graph import markdown as md
from graph.context import DraftloopContext, dependencies, effective_settings, judge_model
from graph.model_calls import invoke_structured_retrying, sentences_only
from graph.nodes.draft import DEGENERATE_GATES, failed_gates, turn_attempts
from graph.nodes.research import wants_revision_research
from graph.prompts import CRITIQUE_SYSTEM, CRITIQUE_TEMPLATE
from graph.sources import numbered
from graph.state import AttemptRecord, State

JUDGE_TRIES = 2
# Rubric dimensions whose low score means the facts, not the prose, fall short: worth a
# research round before the next draft.
RESEARCH_DIMENSIONS = ("accuracy", "completeness", "depth")


def judge_messages(state: State, markdown: str, today: str) -> list[SystemMessage | HumanMessage]:
    request = state.get("request", {})
    content_type = str(request.get("content_type") or "blog_post")
    platform = formats.platform_for(content_type, request.get("platform"))
    sources = (state.get("research") or {}).get("sources") or []
    return [SystemMessage(CRITIQUE_SYSTEM.format(today=today)), HumanMessage(CRITIQUE_TEMPLATE.format(
        text=request.get("text", ""),
        content_type=content_type.replace("_", " "),
        platform=f" for {platform}" if platform else "",
        audience=request.get("audience", "a general audience"),
        tone=request.get("tone", "professional"),
        style=request.get("style", "educational"),
        target_words=request.get("target_words", ""),
        keywords=", ".join(request.get("keywords") or []) or "none",
        sources=numbered(sources),
        rubric=rubric.rubric_text(content_type),
        markdown=markdown,
    ))]


def best_attempt(attempts: Sequence[AttemptRecord]) -> AttemptRecord:
    """What ships when the revisions run out: an attempt without failed gates beats one with,
    a judged one beats an unjudged one, then the higher score."""
    return max(attempts, key=lambda a: (not failed_gates(a), bool(a.get("dimensions")), float(a.get("score") or 0)))


async def critique(state: State, runtime: Runtime[DraftloopContext]) -> dict[str, Any]:
    deps = await dependencies(runtime)
    settings = effective_settings(runtime, deps)
    request = state.get("request", {})
    current = state.get("draft", {})
    markdown = current.get("markdown", "")
    turn = int(state.get("turn") or 1)
    sources = (state.get("research") or {}).get("sources") or []
    results = gates.run_gates(markdown, request, sources)
    checks: dict[str, Any] = {g.name: {**g.as_dict(), "gate": True} for g in results}
    issues = [g.detail for g in results if not g.ok]
    update: dict[str, Any] = {}
    warnings: list[str] = []

    dimensions: dict[str, float] = {}
    reasoning = ""
    suggestions: list[str] = []
    degenerate = sorted(DEGENERATE_GATES & {g.name for g in results if not g.ok})
    if degenerate:
        # A broken text is not worth a judge's time: the gates already said what to fix.
        checks["judge"] = {"ok": False, "gate": True, "detail": f"not judged: the draft fails {', '.join(degenerate)}"}
    else:
        chat, provider, model_name = await judge_model(deps)
        schema = rubric.verdict_model(str(request.get("content_type") or "blog_post"), "CritiqueVerdict",
                                      feedback=True)
        judged, usage, problem = await invoke_structured_retrying(
            chat, schema, judge_messages(state, markdown, datetime.now(UTC).date().isoformat()),
            tries=JUDGE_TRIES, node="critique", provider=provider, model=model_name, settings=settings, turn=turn)
        update["usage"] = usage
        if judged is None:
            warnings.append(f"{problem}; the attempt is unjudged and cannot pass")
            checks["judge"] = {"ok": False, "gate": True,
                               "detail": "The judge's answer was unusable twice, so this attempt is unjudged."}
        else:
            values = judged.model_dump()
            dimensions = {d: float(values[d]) for d in rubric.dimensions_for(str(request.get("content_type")
                                                                                 or "blog_post"))}
            reasoning = str(values.get("reasoning") or "")
            checks["judge"] = {"ok": True, "gate": True, "detail": ""}
            low = [d for d, v in dimensions.items() if v <= rubric.FLOOR]
            checks["rubric_floor"] = {
                "ok": not low, "gate": True,
                "detail": f"The judge scored {', '.join(low)} at {rubric.FLOOR} or below." if low else ""}
            issues += sentences_only(list(values.get("issues") or []))
            suggestions = sentences_only(list(values.get("suggestions") or []))
    score = rubric.to_percent(sum(dimensions.values()) / len(dimensions)) if dimensions else 0.0
    gates_ok = all(c.get("ok") for c in checks.values())
    passed = gates_ok and score >= settings.quality_threshold

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
    verdict: dict[str, Any] = {"score": score, "passed": passed, "dimensions": dimensions, "checks": checks,
                               "issues": issues, "suggestions": suggestions, "reasoning": reasoning,
                               "number": attempt["number"]}
    update["attempts"] = [attempt]
    update["critique"] = verdict
    revision = int(state.get("revision") or 0)
    if not passed and revision >= settings.max_revisions:
        # Out of revisions: the best attempt of this turn is the one that ships, marked as failing.
        # An attempt the reviewer rejected is not offered again as the best one.
        rejected = set((state.get("approval") or {}).get("rejected") or [])
        candidates = [a for a in [*turn_attempts(state), attempt] if a.get("number") not in rejected]
        best = best_attempt(candidates or [attempt])
        update["draft"] = {**current, "title": best.get("title", ""), "markdown": best.get("markdown", ""),
                           "word_count": best.get("word_count", 0), "excerpt": md.excerpt_of(best.get("markdown", "")),
                           "number": best.get("number")}
        update["critique"] = {**verdict, "score": best.get("score", 0), "passed": False,
                              "dimensions": best.get("dimensions", {}), "checks": best.get("checks", {}),
                              "issues": best.get("issues", []), "number": best.get("number"),
                              "best_attempt": best.get("number"), "exhausted": True}
    elif not passed:
        update["revision"] = revision + 1
        short = [d for d in RESEARCH_DIMENSIONS if d in dimensions and dimensions[d] <= rubric.FLOOR]
        if short:
            # The research node decides whether a round is still allowed (wants_revision_research).
            verdict["research_gaps"] = sentences_only(list(issues))[:3] or [
                f"more evidence on {request.get('topic', '')}"]
    if warnings:
        update["warnings"] = warnings
    return update


def after_critique(state: State) -> str:
    verdict = state.get("critique", {})
    if verdict.get("passed") or verdict.get("exhausted"):
        return "approval" if state.get("request", {}).get("require_approval") else "finalize"
    return "research" if wants_revision_research(state) else "draft"
