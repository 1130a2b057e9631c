"""A scripted model behind the fake Ollama that answers each graph call by what it asks for:
intent JSON for route_intent, a well-formed markdown draft for draft, scores for critique.

Tests set the intent and the sequence of judge scores; everything else is derived from the
prompt, so a test reads as "the judge says 40 then 85" rather than as a list of raw replies.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from graph.configuration import GraphSettings
from graph.context import Dependencies
from tests.fakes.ollama import FakeOllama, OllamaReply
from tests.fakes.pexels import FAKE_PEXELS_KEY, FakePexels
from tests.fakes.serper import FAKE_SERPER_KEY, FakeSerper
from tools.llm import LLMSettings, ModelProvider
from tools.pexels import PexelsClient
from tools.serper import SerperClient

_TOPIC = re.compile(r"about: (.+)")
_LENGTH = re.compile(r"Length: about (\d+) words")
_KEYWORDS = re.compile(r"keywords in naturally: (.+?)\.\n")


def well_formed_draft(topic: str, words: int, keywords: list[str]) -> str:
    """A draft that passes every deterministic check for the given request."""
    intro = f"This piece explains {topic} for busy readers. " + " ".join(keywords)
    body_words = max(words - 40, 30)
    filler = ("Concrete examples make the idea of " + topic + " easy to apply in practice today. ").split()
    per_section = max(body_words // 4, 5)
    sections = []
    for heading in ("Why it matters", "How it works", "Common pitfalls", "Conclusion"):
        text = " ".join((filler * (per_section // len(filler) + 1))[:per_section])
        sections.append(f"## {heading}\n\n{text}.")
    return f"# A practical guide to {topic}\n\n{intro}.\n\n" + "\n\n".join(sections) + "\n"


@dataclass
class ScriptedWriter:
    intent: dict[str, Any] = field(default_factory=lambda: {
        "kind": "content", "content_type": "blog_post", "confidence": 90, "reason": "asks for a post"})
    scores: list[int] = field(default_factory=lambda: [85])
    answer_text: str = "Async Python runs many I/O waits on one thread."
    junk_intent: bool = False
    junk_scores: bool = False
    draft_override: str | None = None
    draft_latency: float = 0.0  # seconds before a draft reply starts: keeps a run mid-flight
    calls: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        system = str(messages[0].get("content", "")) if messages else ""
        fmt = body.get("format")
        title = fmt.get("title") if isinstance(fmt, dict) else None
        if title == "IntentChoice":
            self.calls.append("intent")
            return OllamaReply(fault="junk") if self.junk_intent else OllamaReply(content=self.intent)
        if title == "Score":
            self.calls.append("score")
            if self.junk_scores:
                return OllamaReply(fault="junk")
            score = self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]
            dims = {d: score for d in ("clarity", "accuracy", "completeness", "relevance", "seo", "readability", "engagement")}
            return OllamaReply(content={**dims, "issues": [f"judge issue at {score}"],
                                        "suggestions": [f"judge suggestion after scoring {score}"]})
        if "strict editor" in system or "classify" in system:
            raise AssertionError(f"structured call without a schema: {system[:40]}")
        self.prompts.append(prompt)
        if "Question:" in prompt or "answer questions" in system:
            self.calls.append("answer")
            return OllamaReply(content=self.answer_text)
        self.calls.append("draft")
        if self.draft_override is not None:
            return OllamaReply(content=self.draft_override, latency=self.draft_latency)
        topic = (_TOPIC.search(prompt) or [None, "the topic"])[1].strip()
        words = int((_LENGTH.search(prompt) or [None, "300"])[1])
        keywords_match = _KEYWORDS.search(prompt)
        keywords = [] if not keywords_match or keywords_match.group(1) == "none given" else [
            k.strip() for k in keywords_match.group(1).split(",")]
        return OllamaReply(content=well_formed_draft(topic, words, keywords), latency=self.draft_latency)


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
        return Dependencies(settings=settings or GraphSettings(), models=models, serper=serper, pexels=pexels,
                            save_outcome=clients.get("save_outcome"))


@pytest.fixture
async def graph_fakes(fake_ollama: FakeOllama, fake_serper: FakeSerper, fake_pexels: FakePexels,
                      http_client: httpx.AsyncClient) -> AsyncIterator[GraphFakes]:
    writer = ScriptedWriter()
    fake_ollama.responder = writer
    yield GraphFakes(fake_ollama, fake_serper, fake_pexels, writer, http_client)
