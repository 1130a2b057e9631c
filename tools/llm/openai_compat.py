"""Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, and the embedded llama.cpp server):
a ChatOpenAI whose failures become the model error types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tools.llm.errors import (
    ModelCallError,
    ModelResponseError,
    ModelTimeoutError,
    ModelTransportError,
    without_credentials,
)
from tools.llm.settings import LLMSettings

LOCAL_API_KEY = "not-needed"


class GuardedChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose failed calls become ModelCallErrors, as GuardedChatOllama's do, so that
    a failed task says what happened and what to do whatever the provider.

    The openai client has already retried them (LLM_MAX_RETRIES), so they are not transient to
    the graph: its retry policy would multiply the client's tries (9 calls of up to LLM_TIMEOUT
    each instead of 3). ``client_tries`` tells the task's error how many there were.
    """

    server_label: str = "the OpenAI-compatible server"

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(*args, **kwargs)
        except openai.APIError as exc:
            raise self._translate(exc) from exc

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk
        except openai.APIError as exc:
            raise self._translate(exc) from exc

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return super()._generate(*args, **kwargs)
        except openai.APIError as exc:
            raise self._translate(exc) from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        try:
            yield from super()._stream(*args, **kwargs)
        except openai.APIError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: openai.APIError) -> Exception:
        server = self.server_label
        base_url = without_credentials(str(self.openai_api_base or "api.openai.com"))
        translated: ModelCallError
        if isinstance(exc, openai.APITimeoutError):
            timeout = self.request_timeout if isinstance(self.request_timeout, (int, float)) else None
            translated = ModelTimeoutError(f"{server} at {base_url} did not answer within the timeout; "
                                           "raise LLM_TIMEOUT if the model is just slow.",
                                           server=server, timeout=timeout)
        elif isinstance(exc, openai.APIConnectionError):
            translated = ModelTransportError(f"Talking to {server} at {base_url} failed: {exc}", server=server)
        elif isinstance(exc, openai.APIStatusError):
            translated = ModelResponseError(f"{server} at {base_url} answered HTTP {exc.status_code}: {exc.message}",
                                            exc.status_code, server=server)
        else:
            return exc
        translated.transient = False
        translated.client_tries = (self.max_retries or 0) + 1
        return translated


def openai_chat_model(
    *, base_url: str | None, api_key: str, model: str, settings: LLMSettings,
    http_async_client: httpx.AsyncClient, server_label: str = "the OpenAI-compatible server",
) -> ChatOpenAI:
    return GuardedChatOpenAI(
        server_label=server_label,
        base_url=base_url,
        api_key=SecretStr(api_key),
        model=model,
        temperature=settings.temperature,
        # The alias of ChatOpenAI's max_tokens field, the name its typed signature takes.
        max_completion_tokens=settings.max_tokens,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        # Local servers do report usage in streams when asked; without it, streamed drafts
        # would carry no token counts.
        stream_usage=True,
        # Our own client, closed by ModelProvider.aclose(): langchain-openai otherwise shares a
        # cached client per base URL across event loops.
        http_async_client=http_async_client,
    )
