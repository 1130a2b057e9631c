"""The typed registry of runtime settings an admin may change without a restart.

Each setting's default is what the environment configured (GraphSettings, ServiceSettings,
LLMSettings as this process read them); a value stored through /api/settings overrides it for
new runs. Secrets (API keys, the signing secret) are deliberately not here: they stay in the
environment only.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.service_settings import ServiceSettings
from graph.configuration import GraphSettings
from tools.embedded import EMBEDDED_MODEL_ALIAS
from tools.llm.settings import PROVIDERS, LLMSettings

log = logging.getLogger("draftloop.settings")

Kind = Literal["integer", "number", "boolean", "string"]
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")


class UnknownSetting(KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"unknown setting {self.key!r}; GET /api/settings lists them"


class InvalidSettingValue(ValueError):
    """A value outside a setting's type or bounds; the message names the key and the bound."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class EnvConfig:
    """The environment-derived configuration this process runs on: where defaults come from."""

    graph: GraphSettings
    service: ServiceSettings
    llm: LLMSettings

    def model_for(self, provider: str) -> str:
        """The model the environment configures for ``provider``."""
        if provider == "openai":
            return self.llm.openai_model or ""
        if provider == "embedded":
            return EMBEDDED_MODEL_ALIAS
        return self.llm.ollama_model


# A default may depend on settings listed before it (the model name on the provider).
DefaultOf = Callable[[EnvConfig, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class SettingSpec:
    key: str
    kind: Kind
    description: str
    default: DefaultOf
    env: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None

    def validate(self, value: Any) -> Any:
        """The value in its canonical type, or InvalidSettingValue naming the key and bound."""
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidSettingValue(self.key, f"must be true or false, got {_shown(value)}")
            return value
        if self.kind == "string":
            return self._validate_string(value)
        noun = ("an integer" if self.kind == "integer" else "a number") + self._range()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidSettingValue(self.key, f"must be {noun}, got {_shown(value)}")
        if self.kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise InvalidSettingValue(self.key, f"must be {noun}, got {value:g}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidSettingValue(self.key, "must be a finite number")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise InvalidSettingValue(self.key, f"must be {noun}, got {value:g}")
        return value

    def _range(self) -> str:
        if self.minimum is None or self.maximum is None:
            return ""
        return f" between {self.minimum:g} and {self.maximum:g}"

    def _validate_string(self, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidSettingValue(self.key, f"must be a string, got {_shown(value)}")
        value = value.strip()
        if self.choices is not None:
            if value.lower() not in self.choices:
                raise InvalidSettingValue(self.key, f"must be one of {', '.join(self.choices)}, got {value!r}")
            return value.lower()
        if not value or (self.max_length is not None and len(value) > self.max_length):
            raise InvalidSettingValue(self.key, f"must be 1 to {self.max_length} characters")
        if not MODEL_NAME.match(value):
            raise InvalidSettingValue(self.key, "may only contain letters, digits and . _ : / @ + -")
        return value

    def schema(self) -> dict[str, Any]:
        """Type and bounds, in JSON Schema words, for clients that render a form."""
        described: dict[str, Any] = {"type": self.kind}
        if self.minimum is not None:
            described["minimum"] = self.minimum if self.kind == "number" else int(self.minimum)
        if self.maximum is not None:
            described["maximum"] = self.maximum if self.kind == "number" else int(self.maximum)
        if self.choices is not None:
            described["enum"] = list(self.choices)
        if self.max_length is not None:
            described["maxLength"] = self.max_length
        return described


def _shown(value: Any) -> str:
    # As JSON, since that is how clients send it ("1" is a string, 1 a number).
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("quality_threshold", "integer",
                "Critique score (0-100) a draft needs to pass; below it the draft is revised.",
                lambda env, _: env.graph.quality_threshold, "QUALITY_THRESHOLD", 0, 100),
    SettingSpec("max_revisions", "integer",
                "Revisions after the first draft before the best attempt ships marked as not passing.",
                lambda env, _: env.graph.max_revisions, "MAX_REVISIONS", 0, 10),
    SettingSpec("require_approval", "boolean",
                "New tasks wait for a human's approval unless the request says otherwise.",
                lambda env, _: False),
    SettingSpec("research_enabled", "boolean",
                "Web research (Serper) for content runs; off skips it whatever a request asks.",
                lambda env, _: env.graph.research_enabled, "RESEARCH_ENABLED"),
    SettingSpec("images_enabled", "boolean",
                "Stock photos (Pexels) for content runs; off skips them whatever a request asks.",
                lambda env, _: env.graph.images_enabled, "IMAGES_ENABLED"),
    SettingSpec("default_target_words", "integer",
                "Length of a blog post whose request names none.",
                lambda env, _: env.graph.default_target_words, "DEFAULT_TARGET_WORDS", 100, 5000),
    SettingSpec("search_results", "integer", "Results asked of each web search.",
                lambda env, _: env.graph.search_results, "SEARCH_RESULTS", 1, 20),
    SettingSpec("research_timeout", "number", "Seconds each research call may take before it becomes a warning.",
                lambda env, _: env.graph.research_timeout, "RESEARCH_TIMEOUT", 0.1, 600),
    SettingSpec("model_provider", "string",
                "Who serves the chat model: ollama, openai (OpenAI-compatible server), embedded, or auto.",
                lambda env, _: env.llm.provider, "LLM_PROVIDER", choices=PROVIDERS),
    SettingSpec("model_name", "string",
                "Chat model name for the provider (embedded always runs SmolLM2); defaults to the "
                "provider's model in the environment.",
                lambda env, resolved: env.model_for(resolved["model_provider"]), "OLLAMA_MODEL / OPENAI_MODEL",
                max_length=200),
    SettingSpec("worker_concurrency", "integer",
                "Runs each server process drives at once; the rest wait in the queue.",
                lambda env, _: env.service.concurrency, "WORKER_CONCURRENCY", 1, 1000),
)
REGISTRY: dict[str, SettingSpec] = {spec.key: spec for spec in SPECS}


def spec_of(key: str) -> SettingSpec:
    try:
        return REGISTRY[key]
    except KeyError:
        raise UnknownSetting(key) from None


@dataclass(frozen=True)
class Resolved:
    key: str
    value: Any
    default: Any
    source: Literal["env", "stored"]


def resolve(env: EnvConfig, stored: Mapping[str, Any]) -> dict[str, Resolved]:
    """Every setting's effective value: the stored one when valid, else the default.

    A stored value the registry no longer accepts (a bound tightened since it was written) is
    skipped with a warning rather than failing every run.
    """
    resolved: dict[str, Any] = {}
    result: dict[str, Resolved] = {}
    for spec in SPECS:
        default = spec.default(env, resolved)
        source: Literal["env", "stored"] = "env"
        value = default
        if stored.get(spec.key) is not None:
            try:
                value, source = spec.validate(stored[spec.key]), "stored"
            except InvalidSettingValue as exc:
                log.warning("ignoring the stored setting %s: %s", spec.key, exc)
        resolved[spec.key] = value
        result[spec.key] = Resolved(spec.key, value, default, source)
    return result


def environment_problem(key: str, value: Any, env: EnvConfig) -> str | None:
    """Why ``value`` cannot work with this environment, if it cannot; checked before storing so
    that a setting does not make every later run fail."""
    if key == "model_provider" and value == "openai" and not (env.llm.openai_base_url or env.llm.openai_api_key):
        return "model_provider openai needs OPENAI_BASE_URL (or OPENAI_API_KEY) in the environment"
    return None
