"""A scripted model behind the fake Ollama that answers each graph call by what it asks for:
intent JSON for route_intent, search queries and gaps for research, a well-formed markdown
draft for draft, scores for critique.

Tests set the intent, the planned queries, the gaps and the sequence of judge scores;
everything else is derived from the prompt, so a test reads as "the judge says 40 then 85"
rather than as a list of raw replies.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from devtools.fakes.drafts import draft_for
from devtools.fakes.ollama import FakeOllama, Fault, OllamaReply
from devtools.fakes.pexels import FAKE_PEXELS_KEY, FakePexels
from devtools.fakes.serper import FAKE_SERPER_KEY, FakeSerper
from graph.configuration import GraphSettings
from graph.context import Dependencies
from graph.rubric import DIMENSIONS
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings
from tools.pexels import PexelsClient
from tools.serper import SerperClient

_KIND = re.compile(r"Write an? (.+?) about: (.+)")
_PLAN_TOPIC = re.compile(r"^Topic: (.+)$", re.MULTILINE)
_LENGTH = re.compile(r"Length: about (\d+) words")
_KEYWORDS = re.compile(r"keywords in naturally: (.+?)\.\n")
_KINDS = {"blog post": "blog_post", "social post": "social_post", "email": "email", "newsletter": "newsletter",
          "research brief": "research_brief"}
DIMENSION_NAMES = frozenset(d for names in DIMENSIONS.values() for d in names)


def well_formed_draft(topic: str, words: int, keywords: list[str]) -> str:
    """A blog post that passes every hard gate for the given request."""
    return draft_for("blog_post", None, topic, words, keywords, "")


def rubric_scores(score: int, names: list[str]) -> dict[str, int]:
    """1–5 scores whose mean is as close as integers allow to `score` on the 0–100 scale."""
    total = round((score / 25 + 1) * len(names))
    base, extra = divmod(total, len(names))
    return {name: max(1, min(5, base + (1 if i < extra else 0))) for i, name in enumerate(names)}


@dataclass
class ScriptedWriter:
    intent: dict[str, Any] = field(default_factory=lambda: {
        "kind": "content", "content_type": "blog_post", "confidence": 90, "reason": "asks for a post"})
    scores: list[int] = field(default_factory=lambda: [85])
    answer_text: str = "Async Python runs many I/O waits on one thread."
    junk_intent: bool = False
    junk_scores: bool = False
    plan: list[str] | None = None  # None: three queries on the prompt's topic
    junk_plan: bool = False
    gaps: list[dict[str, str]] = field(default_factory=list)  # [{"gap": ..., "query": ...}]
    revision_queries: list[str] = field(default_factory=list)  # empty: junk, so the gaps are searched as named
    draft_override: str | None = None
    # Drafts handed out first, in order, before draft_override or generated drafts.
    drafts: list[str] = field(default_factory=list)
    # Rubric scores that replace the ones derived from `scores`, by dimension name.
    dimensions: dict[str, int] = field(default_factory=dict)
    draft_latency: float = 0.0  # seconds before a draft reply starts: keeps a run mid-flight
    calls: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    research_prompts: list[str] = field(default_factory=list)  # system + human of each research call

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        system = str(messages[0].get("content", "")) if messages else ""
        fmt = body.get("format")
        schema: dict[str, Any] = fmt if isinstance(fmt, dict) else {}
        title = schema.get("title")
        if title == "IntentChoice":
            self.calls.append("intent")
            return OllamaReply(fault="junk") if self.junk_intent else OllamaReply(content=self.intent)
        if title == "CritiqueVerdict":
            self.calls.append("score")
            if self.junk_scores:
                return OllamaReply(fault="junk")
            score = self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]
            names = [n for n in schema.get("properties", {}) if n in DIMENSION_NAMES]
            scored = {**rubric_scores(score, names), **{k: v for k, v in self.dimensions.items() if k in names}}
            return OllamaReply(content={"reasoning": f"scripted verdict of {score}", **scored,
                                        "issues": [f"The judge found an issue at score {score}."],
                                        "suggestions": [f"Apply the judge's suggestion after scoring {score}."]})
        if title in ("SearchPlan", "ResearchGaps", "RevisionSearch"):
            return self._research(title, system, prompt)
        if "demanding editor" in system or "classify" in system or "search queries" in system:
            raise AssertionError(f"structured call without a schema: {system[:40]}")
        self.prompts.append(prompt)
        if "Question:" in prompt or "answer questions" in system:
            self.calls.append("answer")
            return OllamaReply(content=self.answer_text)
        self.calls.append("draft")
        if self.drafts:
            return OllamaReply(content=self.drafts.pop(0), latency=self.draft_latency)
        if self.draft_override is not None:
            return OllamaReply(content=self.draft_override, latency=self.draft_latency)
        kind_match = _KIND.search(prompt)
        kind, topic = (kind_match.group(1), kind_match.group(2).strip()) if kind_match else ("blog post", "the topic")
        platform = "x" if kind.endswith("for x") else "linkedin" if kind.endswith("for linkedin") else None
        content_type = _KINDS.get(kind.removesuffix(" for x").removesuffix(" for linkedin"), "blog_post")
        length_match = _LENGTH.search(prompt)
        words = int(length_match.group(1)) if length_match else 300
        keywords_match = _KEYWORDS.search(prompt)
        keywords = [] if not keywords_match or keywords_match.group(1) == "none given" else [
            k.strip() for k in keywords_match.group(1).split(",")]
        draft = draft_for(content_type, platform, topic, words, keywords, prompt)
        return OllamaReply(content=draft, latency=self.draft_latency)

    def _research(self, title: str, system: str, prompt: str) -> OllamaReply:
        self.research_prompts.append(f"{system}\n{prompt}")
        if title == "SearchPlan":
            self.calls.append("plan")
            if self.junk_plan:
                return OllamaReply(fault="junk")
            topic_match = _PLAN_TOPIC.search(prompt)
            topic = topic_match.group(1).strip() if topic_match else "the topic"
            return OllamaReply(content={"queries": self.plan if self.plan is not None else [
                topic, f"{topic} tutorial", f"{topic} common pitfalls"]})
        if title == "ResearchGaps":
            self.calls.append("gaps")
            return OllamaReply(content={"gaps": self.gaps})
        self.calls.append("revision_plan")
        return OllamaReply(content={"queries": self.revision_queries})


@dataclass
class GraphFakes:
    ollama: FakeOllama
    serper: FakeSerper
    pexels: FakePexels
    writer: ScriptedWriter
    http: httpx.AsyncClient

    def dependencies(self, settings: GraphSettings | None = None, **clients: Any) -> Dependencies:
        models = ModelProvider(LLMSettings(provider="ollama", ollama_base_url=self.ollama.base_url,
                                           ollama_model="llama3.2", timeout=5, max_retries=0))
        serper = clients.get("serper") or SerperClient(self.http, FAKE_SERPER_KEY, base_url=self.serper.base_url,
                                                       timeout=2, max_retries=1, backoff_base=0.01)
        pexels = clients.get("pexels") or PexelsClient(self.http, FAKE_PEXELS_KEY, base_url=self.pexels.api_url,
                                                       timeout=2, max_retries=1, backoff_base=0.01)
        # No page reader unless a test brings one: the fake results link to real sites.
        return Dependencies(settings=settings or GraphSettings(), models=models, serper=serper, pexels=pexels,
                            save_outcome=clients.get("save_outcome"), pages=clients.get("pages"))


    def reset(self, writer: ScriptedWriter | None = None) -> ScriptedWriter:
        """Normal answers everywhere again, from a fresh scripted writer (returned): for fakes
        that outlive one test (a module's shared server processes)."""
        self.writer = writer or ScriptedWriter()
        self.ollama.replies.clear()
        self.ollama.responder = self.writer
        self.serper.faults.clear()
        self.pexels.faults.clear()
        return self.writer


@dataclass
class FailingCalls:
    """The scripted writer, except that every call of the given kinds (intent, plan, gaps, draft,
    score, answer; None: every call) gets ``fault`` instead of its answer."""

    writer: ScriptedWriter
    fault: Fault
    kinds: frozenset[str] | None = None

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        reply = self.writer(body)
        if self.kinds is None or self.writer.calls[-1] in self.kinds:
            return OllamaReply(fault=self.fault)
        return reply


@asynccontextmanager
async def open_graph_fakes() -> AsyncIterator[GraphFakes]:
    """The Ollama, Serper and Pexels fakes started on loopback, answered by a scripted writer,
    with no fixture scope of their own: a module-scoped fixture can share them between tests."""
    async with AsyncExitStack() as stack:
        ollama = FakeOllama()
        await ollama.start()
        stack.push_async_callback(ollama.stop)
        serper = await FakeSerper().start()
        stack.push_async_callback(serper.stop)
        pexels = await FakePexels().start()
        stack.push_async_callback(pexels.stop)
        http = await stack.enter_async_context(httpx.AsyncClient())
        fakes = GraphFakes(ollama, serper, pexels, ScriptedWriter(), http)
        fakes.reset()
        yield fakes
