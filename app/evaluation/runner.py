"""Runs one request of the set through the real graph and judges what it shipped.

Every request gets its own thread (all its turns), its own replayed research, and a record:
what was routed and searched, every attempt, the first and the shipped draft, the
deterministic checks on what shipped, the external judge's verdicts, usage and node timings.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import httpx
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from app.evaluation.dataset import EvalRequest
from app.evaluation.judge import Judge, JudgeInput, RubricScore
from app.evaluation.replay import ReplayPageReader, ReplayServer
from graph import draft_text, formats
from graph.builder import ContentGraph
from graph.configuration import GraphSettings
from graph.context import Dependencies, DraftloopContext
from graph.gates import defects, format_checks, grounding
from graph.sources import cited_numbers
from graph.state import ContentRequest, InputState
from tools.llm.provider import ModelProvider
from tools.pexels import PexelsClient
from tools.serper import SerperClient

# Share of the target a shipped piece may miss by and still count as the right length.
LENGTH_ACCURACY = 0.15
# A "shorter"/"longer" follow-up must change the length by at least this share.
RELATIVE_CHANGE = 0.1


@dataclass
class EvalEnvironment:
    graph: ContentGraph
    writer: ModelProvider
    settings: GraphSettings
    http: httpx.AsyncClient
    replay: ReplayServer
    judge: Judge
    request_timeout: float = 1800.0

    def dependencies(self, key: str) -> Dependencies:
        serper = SerperClient(self.http, key, base_url=self.replay.base_url, timeout=10, max_retries=1)
        pexels = PexelsClient(self.http, "replay-pexels", base_url=self.replay.pexels_url, timeout=10,
                              max_retries=1)
        pages = ReplayPageReader(self.http, key, self.replay.base_url, timeout=10)
        return Dependencies(settings=self.settings, models=self.writer, serper=serper, pexels=pexels, pages=pages)


async def _run_turns(env: EvalEnvironment, request: EvalRequest, key: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                              list[int]]:
    """(final state, node timings, shipped word count after each turn)."""
    config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
    context = DraftloopContext(deps=env.dependencies(key), require_approval=False)
    timings: list[dict[str, Any]] = []
    words_after: list[int] = []
    for index, text in enumerate(request.turns):
        graph_input: InputState = {"messages": [HumanMessage(text)]}
        if index == 0 and request.fields:
            # The set's structured fields as a caller would send them; route_intent validates them.
            graph_input["request"] = cast(ContentRequest, dict(request.fields))
        started: dict[str, tuple[str, float]] = {}
        async for chunk in env.graph.astream(graph_input, config, context=context, stream_mode="tasks"):
            if "input" in chunk:
                started[chunk["id"]] = (chunk["name"], time.perf_counter())
            elif chunk.get("id") in started:
                name, began = started.pop(chunk["id"])
                timings.append({"node": name, "ms": round((time.perf_counter() - began) * 1000)})
        snapshot = await env.graph.aget_state(config)
        result = snapshot.values.get("result") or {}
        words_after.append(draft_text.count_words(str(result.get("markdown") or ""), str(result.get("content_type") or
                                                                                     "blog_post")))
    snapshot = await env.graph.aget_state(config)
    return dict(snapshot.values), timings, words_after


def _attempt_summary(attempt: dict[str, Any]) -> dict[str, Any]:
    checks = attempt.get("checks") or {}
    return {
        "number": attempt.get("number"),
        "score": attempt.get("score"),
        "passed": bool(attempt.get("passed")),
        "word_count": attempt.get("word_count"),
        "failed_checks": sorted(name for name, check in checks.items()
                                if isinstance(check, dict) and check.get("ok") is False),
    }


def shipped_checks(markdown: str, request: EvalRequest, routed: dict[str, Any], sources: list[dict[str, Any]],
                   words_before: int | None) -> dict[str, Any]:
    """The deterministic measures of a shipped piece, judged by what the request expected."""
    content_type = str(request.expect.get("content_type") or routed.get("content_type") or "blog_post")
    platform = formats.platform_for(content_type, request.expect.get("platform") or routed.get("platform"))
    words = draft_text.count_words(markdown, content_type)
    target = request.expect.get("target_words")
    relative = request.expect.get("relative_length")
    if target:
        length_ok = abs(words - int(target)) <= LENGTH_ACCURACY * int(target)
    elif relative == "shorter" and words_before:
        length_ok = words <= (1 - RELATIVE_CHANGE) * words_before
    elif relative == "longer" and words_before:
        length_ok = words >= (1 + RELATIVE_CHANGE) * words_before
    else:
        length_ok = None
    text = " ".join(request.turns)
    cited = cited_numbers(markdown, sources)
    return {
        "words": words,
        "target_words": target,
        "words_before": words_before,
        "length_ok": length_ok,
        "format_problems": format_checks.format_problems(markdown, content_type, platform, len(sources)),
        "invented_urls": grounding.invented_urls(markdown, sources, text),
        "citations": len(cited),
        "cited": cited,
        "repetition": defects.find_repetition(markdown) is not None,
        "truncation": defects.find_truncation(markdown, content_type) is not None,
        "preamble": defects.find_preamble(markdown) is not None,
        "placeholders": bool(defects.find_placeholders(markdown)),
    }


def _score(score: RubricScore | None) -> dict[str, Any] | None:
    return None if score is None else {"scores": score.scores, "mean": score.mean, "reasoning": score.reasoning}


async def judge_record(env: EvalEnvironment, request: EvalRequest, routed: dict[str, Any],
                       first: dict[str, Any], shipped: dict[str, Any],
                       sources: list[dict[str, Any]]) -> dict[str, Any]:
    content_type = str(request.expect.get("content_type") or routed.get("content_type") or "blog_post")
    case = JudgeInput(
        request=" / ".join(request.turns),
        content_type=content_type,
        platform=formats.platform_for(content_type, request.expect.get("platform") or routed.get("platform")),
        audience=str(routed.get("audience") or ""),
        tone=str(routed.get("tone") or ""),
        style=str(routed.get("style") or ""),
        target_words=int(request.expect.get("target_words") or routed.get("target_words") or 0),
        sources=sources,
    )
    shipped_score = await env.judge.rubric(case, shipped["markdown"])
    same = first["number"] == shipped["number"]
    first_score = shipped_score if same else await env.judge.rubric(case, first["markdown"])
    pairwise: list[dict[str, Any]] = []
    if not same:
        # Both orders, under neutral names: a judge that prefers whatever comes first cancels out.
        for order, (a, b) in (("shipped_first", (shipped, first)), ("first_first", (first, shipped))):
            winner = await env.judge.prefer(case, a["markdown"], b["markdown"])
            if winner is not None:
                named = {"A": "shipped" if a is shipped else "first",
                         "B": "shipped" if b is shipped else "first", "tie": "tie"}[winner]
                pairwise.append({"order": order, "winner": named})
    claims = await env.judge.claims(case, shipped["markdown"])
    return {
        "shipped": _score(shipped_score),
        "first": _score(first_score),
        "first_is_shipped": same,
        "pairwise": pairwise,
        "claims": claims,
    }


async def evaluate_request(env: EvalEnvironment, request: EvalRequest) -> dict[str, Any]:
    """The record of one request; a failure is recorded, never raised, so one bad request does
    not end a run of forty."""
    key = f"{ReplayServer.key_for(request.fixture)}#{request.id}"
    began = time.perf_counter()
    record: dict[str, Any] = {"type": "request", "id": request.id, "group": request.group,
                              "tags": list(request.tags), "expect": request.expect, "error": None}
    try:
        async with asyncio.timeout(env.request_timeout):
            state, timings, words_after = await _run_turns(env, request, key)
            record.update(await _describe(env, request, key, state, timings, words_after))
    except TimeoutError:
        record["error"] = f"did not finish within {env.request_timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - one request's failure is data for the report, not the end of the run
        record["error"] = f"{type(exc).__name__}: {exc}"[:500]
    record["seconds"] = round(time.perf_counter() - began, 2)
    return record


async def _describe(env: EvalEnvironment, request: EvalRequest, key: str, state: dict[str, Any],
                    timings: list[dict[str, Any]], words_after: list[int]) -> dict[str, Any]:
    intent = state.get("intent") or {}
    routed_request = state.get("request") or {}
    searches = [{"endpoint": e, "q": q} for e, q in env.replay.log.queries.get(key, [])]
    routed = {
        "kind": intent.get("kind"),
        "source": intent.get("source"),
        "content_type": routed_request.get("content_type") if intent.get("kind") in ("content", "revise") else None,
        "platform": routed_request.get("platform"),
        "target_words": routed_request.get("target_words"),
        "audience": routed_request.get("audience"),
        "tone": routed_request.get("tone"),
        "style": routed_request.get("style"),
        "shopping": any(s["endpoint"] == "shopping" for s in searches),
    }
    usage = [{k: u.get(k) for k in ("turn", "node", "provider", "model", "input_tokens", "output_tokens",
                                    "duration_ms", "cost_usd")} for u in state.get("usage") or []]
    out: dict[str, Any] = {"routed": routed, "searches": searches, "pages": list(env.replay.log.pages.get(key, [])),
                           "usage": usage, "nodes": timings,
                           "warnings": list(dict.fromkeys(state.get("warnings") or []))}
    result = state.get("result") or {}
    if result.get("kind") != "content" or intent.get("kind") not in ("content", "revise"):
        out["answer"] = str(result.get("answer") or "")[:2000]
        return out
    turn = int(state.get("turn") or 1)
    attempts = [a for a in state.get("attempts") or [] if int(a.get("turn", 1)) == turn]
    sources = list((state.get("research") or {}).get("sources") or [])
    shipped_number = (state.get("draft") or {}).get("number") or (attempts[-1]["number"] if attempts else None)
    first_attempt = attempts[0] if attempts else {}
    shipped: dict[str, Any] = {"number": shipped_number, "markdown": str(result.get("markdown") or ""),
                               "score": result.get("score"), "passed": bool(result.get("passed"))}
    first = {"number": first_attempt.get("number"), "markdown": str(first_attempt.get("markdown") or ""),
             "score": first_attempt.get("score"), "passed": bool(first_attempt.get("passed"))}
    words_before = words_after[-2] if len(words_after) > 1 else None
    out.update({
        "attempts": [_attempt_summary(a) for a in attempts],
        "first": first,
        "shipped": shipped,
        "sources": [{"url": s.get("url"), "title": s.get("title"), "kind": s.get("kind"),
                     "evidence": bool(s.get("evidence"))} for s in sources],
        "checks": shipped_checks(shipped["markdown"], request, routed, sources, words_before),
        "external": await judge_record(env, request, routed, first, shipped, sources),
    })
    return out
