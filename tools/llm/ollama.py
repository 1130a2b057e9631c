"""Ollama: the /api/tags probe, the messages that say what to do when it is down or lacks the
model, and a ChatOllama whose failures become the model error types.

ChatOllama's underlying httpx client has no timeout by default, so a stuck Ollama would otherwise
hang a run forever: the factory here always sets one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.messages import BaseMessage
from langchain_ollama import ChatOllama
from ollama import ResponseError

from tools.llm.errors import (
    ModelResponseError,
    ModelTimeoutError,
    ModelTransportError,
    OllamaModelNotFoundError,
    OllamaUnreachableError,
    without_credentials,
)
from tools.llm.settings import LLMSettings


@dataclass(frozen=True)
class OllamaProbe:
    base_url: str
    reachable: bool
    models: tuple[str, ...] = ()
    error: str = ""

    def has_model(self, name: str) -> bool:
        wanted = _ollama_tag(name)
        return any(_ollama_tag(listed) == wanted for listed in self.models)


def _ollama_tag(name: str) -> str:
    # Ollama lists "llama3.2:latest" for a model pulled as "llama3.2".
    return name if ":" in name else f"{name}:latest"


async def probe_ollama(base_url: str, timeout: float) -> OllamaProbe:
    """GET /api/tags: is Ollama up, and which models has it pulled?"""
    base_url = base_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{base_url}/api/tags")
            response.raise_for_status()
            payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return OllamaProbe(base_url, reachable=False, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    names: list[str] = []
    for entry in payload.get("models") or []:
        for key in ("name", "model"):
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                names.append(entry[key])
    return OllamaProbe(base_url, reachable=True, models=tuple(dict.fromkeys(names)))


def ollama_unreachable_message(base_url: str, detail: str = "") -> str:
    suffix = f" ({detail})" if detail else ""
    return (
        f"Ollama at {without_credentials(base_url)} did not answer{suffix}. Start it with `ollama serve`, "
        "or set OLLAMA_BASE_URL to where it runs, or set LLM_PROVIDER=embedded "
        "(or auto) to use the bundled model."
    )


def ollama_model_missing_message(base_url: str, model: str) -> str:
    return (
        f"Ollama at {without_credentials(base_url)} does not have the model {model!r}. "
        f"Pull it with `ollama pull {model}`, or set OLLAMA_MODEL to a model it has."
    )


class GuardedChatOllama(ChatOllama):
    """ChatOllama whose transport failures become ModelProviderErrors that say what to do."""

    async def _acreate_chat_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Mapping[str, Any] | str]:
        try:
            async for part in super()._acreate_chat_stream(messages, stop, **kwargs):
                yield part
        except (ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise self._translate(exc) from exc

    def _create_chat_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> Iterator[Mapping[str, Any] | str]:
        try:
            yield from super()._create_chat_stream(messages, stop, **kwargs)
        except (ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> Exception:
        base_url = without_credentials((self.base_url or "").rstrip("/"))
        if isinstance(exc, ResponseError):
            if exc.status_code == 404 and "not found" in str(exc.error).lower():
                return OllamaModelNotFoundError(ollama_model_missing_message(base_url, self.model))
            return ModelResponseError(
                f"Ollama at {base_url} answered HTTP {exc.status_code}: {exc.error}", exc.status_code,
                server="Ollama",
            )
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"Ollama at {base_url} did not answer within the timeout "
                f"({type(exc).__name__}); raise LLM_TIMEOUT if the model is just slow.",
                server="Ollama", timeout=self._read_timeout(),
            )
        if isinstance(exc, httpx.ConnectError) or (
            isinstance(exc, ConnectionError) and "Failed to connect to Ollama" in str(exc)
        ):
            return OllamaUnreachableError(ollama_unreachable_message(base_url, str(exc)))
        if isinstance(exc, httpx.HTTPError):
            return ModelTransportError(
                f"Talking to Ollama at {base_url} failed: {type(exc).__name__}: {exc}", server="Ollama"
            )
        return exc

    def _read_timeout(self) -> float | None:
        timeout = (self.client_kwargs or {}).get("timeout")
        return timeout.read if isinstance(timeout, httpx.Timeout) else None


def ollama_chat_model(settings: LLMSettings) -> ChatOllama:
    return GuardedChatOllama(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        temperature=settings.temperature,
        num_predict=settings.max_tokens,
        # ollama's AsyncClient passes these to httpx.AsyncClient, so the timeout covers the
        # async path that ainvoke/astream use (it has no timeout at all otherwise).
        client_kwargs={"timeout": httpx.Timeout(settings.timeout)},
    )
