"""The bundled SmolLM2 model through the whole graph and through `draftloop eval`: plumbing only.

A 135M model does not reliably write a tweet under 280 characters or an email with a subject
line, so nothing here asserts the prose. What is asserted is that each content type takes its
own path end to end on a real model: routed as that type, written from that type's prompt,
checked by that type's gates, stored with that type; and that the eval instrument runs two
requests on it and reports them.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from app.cli import parse_args
from app.cli.eval import EvalSettings, load_inputs, run_eval
from app.evaluation.report import load_records
from graph.builder import build_graph
from graph.configuration import GraphSettings
from graph.context import Dependencies, DraftloopContext
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings
from tools.pexels import PexelsClient
from tools.serper import SerperClient

pytestmark = [pytest.mark.real_model, pytest.mark.asyncio(loop_scope="module")]
ROOT = Path(__file__).resolve().parents[2]
# Greedy decoding, one thread (two spin-wait on a busy 2-core machine), a cap on every reply.
EMBEDDED_ENV = {"LLM_PROVIDER": "embedded", "LLM_TEMPERATURE": "0", "LLM_TIMEOUT": "90", "LLM_MAX_TOKENS": "200",
                "EMBEDDED_THREADS": "1", "MAX_REVISIONS": "0", "RESEARCH_FETCH_PAGES": "false"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedded() -> AsyncIterator[ModelProvider]:
    provider = ModelProvider(LLMSettings(provider="embedded", temperature=0.0, timeout=90.0, max_tokens=200,
                                         embedded_threads=1))
    try:
        yield provider
    finally:
        await provider.aclose()


async def run_request(models: ModelProvider, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        # No search keys: research degrades to warnings, so only the model is real here.
        deps = Dependencies(settings=GraphSettings(max_revisions=0, research_fetch_pages=False), models=models,
                            serper=SerperClient(http, None), pexels=PexelsClient(http, None))
        graph = build_graph(InMemorySaver())
        return await graph.ainvoke({"messages": [HumanMessage(text)]},
                                   {"configurable": {"thread_id": str(uuid.uuid4())}},
                                   context=DraftloopContext(deps=deps, require_approval=False))


@pytest.mark.parametrize(("text", "content_type", "platform"), [
    ("Write a 30-word tweet about running a team retro", "social_post", "x"),
    ("Write a 60-word email inviting the design team to Thursday's retro", "email", None),
    ("Write a 120-word research brief on standing desks and health", "research_brief", None),
])
async def test_each_content_type_takes_its_own_path_on_the_embedded_model(
        embedded: ModelProvider, text: str, content_type: str, platform: str | None) -> None:
    state = await run_request(embedded, text)
    request, result = state["request"], state["result"]
    assert (request["content_type"], request.get("platform")) == (content_type, platform)
    assert result["kind"] == "content" and result["content_type"] == content_type
    [attempt] = state["attempts"]
    # The type's own format rules were checked, whatever the model wrote.
    assert attempt["checks"]["format"]["gate"] is True
    assert attempt["markdown"].strip() and result["markdown"].strip()
    assert result["passed"] is (attempt["passed"] and all(c["ok"] for c in attempt["checks"].values()))


async def test_eval_runs_two_requests_on_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EMBEDDED_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("EVAL_JUDGE_PROVIDER", "EVAL_JUDGE_BASE_URL", "EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = await asyncio.to_thread(parse_args, [
        "eval", "--evals-dir", str(ROOT / "evals"), "--out", str(tmp_path), "--name", "embedded",
        "--id", "x-run-a-retro", "--id", "answer-what-is-gtm-plan", "--label", "plumbing only"])
    inputs = await asyncio.to_thread(load_inputs, args)
    out = io.StringIO()
    code = await run_eval(args, inputs, out, io.StringIO(), EvalSettings.from_env(os.environ))
    assert code == 0
    records = await asyncio.to_thread(load_records, tmp_path / "embedded.jsonl")
    requests = [r for r in records if r["type"] == "request"]
    assert [r["id"] for r in requests] == ["x-run-a-retro", "answer-what-is-gtm-plan"]
    assert all(r["error"] is None for r in requests), [r["error"] for r in requests]
    assert all(u["provider"] == "embedded" for r in requests for u in r["usage"])
    # The writer judged itself, and the report says so first.
    assert out.getvalue().startswith("**The judge is the writer (embedded/")
