"""LLM_* settings read from the environment, a second model's settings, and the request limit
that follows from the model's context window."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tools.embedded import DEFAULT_REPEAT_PENALTY, default_model_path
from tools.llm.errors import ProviderConfigError, UnknownProviderError

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


def _env_positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _env_int(env, name, default)
    if value is None or value <= 0:
        raise ProviderConfigError(f"{name} must be a positive integer, got {env.get(name, '').strip()!r}")
    return value


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
    # The context window the ollama or openai server gives the model; requests are bounded by it.
    model_context_tokens: int = DEFAULT_MODEL_CONTEXT_TOKENS
    embedded_model_path: Path | None = field(default_factory=default_model_path)
    embedded_ctx: int = DEFAULT_EMBEDDED_CTX
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
            model_context_tokens=_env_positive_int(env, "MODEL_CONTEXT_TOKENS", DEFAULT_MODEL_CONTEXT_TOKENS),
            embedded_model_path=Path(model_path) if model_path else default_model_path(),
            embedded_ctx=_env_positive_int(env, "EMBEDDED_CTX", DEFAULT_EMBEDDED_CTX),
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
