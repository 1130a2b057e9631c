"""graph.model_calls against loopback fakes: what each kind of call sends to the model server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from devtools.fakes.ollama import FakeOllama
from devtools.fakes.openai_compat import FakeOpenAI
from graph.configuration import GraphSettings
from graph.model_calls import invoke_structured, invoke_text
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings

WRITER_TEMPERATURE = 0.7


class Verdict(BaseModel):
    kind: Literal["blog_post", "question"]
    reason: str


def on_fake(provider: str, ollama: FakeOllama, openai: FakeOpenAI) -> tuple[LLMSettings, Callable[[], list[float]]]:
    """Settings for ``provider`` on its loopback fake, and a reader of the temperatures it was sent."""
    if provider == "ollama":
        settings = LLMSettings(provider="ollama", ollama_base_url=ollama.base_url, timeout=5.0,
                               temperature=WRITER_TEMPERATURE)
        # Ollama takes sampling settings in "options".
        return settings, lambda: [body["options"]["temperature"] for body in ollama.chat_requests]
    settings = LLMSettings(provider="openai", openai_base_url=f"{openai.base_url}/v1", openai_model="local-model",
                           timeout=5.0, temperature=WRITER_TEMPERATURE)
    return settings, lambda: [body["temperature"] for body in openai.chat_requests]


async def structured_call(provider: ModelProvider) -> Verdict | None:
    parsed, _usage, problem = await invoke_structured(
        await provider.chat_model(), Verdict, [HumanMessage("Route: write a post on asyncio")],
        node="route_intent", provider=provider.settings.provider, model="m", settings=GraphSettings(), turn=1)
    assert problem is None
    return parsed


async def text_call(provider: ModelProvider) -> str:
    reply = await invoke_text(
        await provider.chat_model(), [HumanMessage("Write a post on asyncio")],
        node="draft", provider=provider.settings.provider, model="m", settings=GraphSettings(), turn=1)
    return str(reply.message.content)


@pytest.mark.parametrize("provider_name", ["ollama", "openai"])
async def test_structured_calls_go_out_at_temperature_zero(
    provider_name: str, fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    settings, temperatures = on_fake(provider_name, fake_ollama, fake_openai)
    async with ModelProvider(settings) as provider:
        assert isinstance(await structured_call(provider), Verdict)

    assert temperatures() == [0.0]


@pytest.mark.parametrize("provider_name", ["ollama", "openai"])
async def test_plain_text_calls_keep_llm_temperature_after_a_structured_call(
    provider_name: str, fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    settings, temperatures = on_fake(provider_name, fake_ollama, fake_openai)
    async with ModelProvider(settings) as provider:
        await text_call(provider)
        await structured_call(provider)
        await text_call(provider)

    assert temperatures() == [WRITER_TEMPERATURE, 0.0, WRITER_TEMPERATURE]
