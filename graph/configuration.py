"""Settings that shape a run of the content graph, read from the environment once."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# USD per million tokens (input, output). Local providers are free but their tokens still count.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "ollama": (0.0, 0.0),
    "embedded": (0.0, 0.0),
}


def read_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer setting in [low, high]; blank means the default; errors name the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def read_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number setting in [low, high]; blank means the default; errors name the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no, on/off); anything else is an error, not a silent false."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def parse_price_table(raw: str | None) -> dict[str, tuple[float, float]]:
    """`MODEL_PRICES` is JSON: {"<provider>/<model>" or "<model>" or "<provider>": [in, out]}."""
    prices = dict(DEFAULT_PRICES)
    if not raw:
        return prices
    try:
        data = json.loads(raw)
        for key, pair in data.items():
            prices[str(key)] = (float(pair[0]), float(pair[1]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            'MODEL_PRICES must be JSON like {"openai/gpt-4o-mini": [0.15, 0.6]} (USD per million tokens)'
        ) from exc
    return prices


@dataclass(frozen=True)
class GraphSettings:
    quality_threshold: int = 70
    max_revisions: int = 2
    research_enabled: bool = True
    images_enabled: bool = True
    default_target_words: int = 600
    search_results: int = 5
    research_timeout: float = 30.0
    research_fetch_pages: bool = True
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GraphSettings:
        env = os.environ if env is None else env
        return cls(
            quality_threshold=read_int(env, "QUALITY_THRESHOLD", 70, 0, 100),
            max_revisions=read_int(env, "MAX_REVISIONS", 2, 0, 10),
            research_enabled=read_bool(env, "RESEARCH_ENABLED", True),
            images_enabled=read_bool(env, "IMAGES_ENABLED", True),
            default_target_words=read_int(env, "DEFAULT_TARGET_WORDS", 600, 100, 5000),
            search_results=read_int(env, "SEARCH_RESULTS", 5, 1, 20),
            research_timeout=read_float(env, "RESEARCH_TIMEOUT", 30.0, 0.1, 600),
            research_fetch_pages=read_bool(env, "RESEARCH_FETCH_PAGES", True),
            prices=parse_price_table(env.get("MODEL_PRICES")),
        )

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
        """Most specific price wins: provider/model, then model, then provider; unknown is free."""
        pair = (
            self.prices.get(f"{provider}/{model}")
            or self.prices.get(model)
            or self.prices.get(provider)
            or (0.0, 0.0)
        )
        return round((input_tokens * pair[0] + output_tokens * pair[1]) / 1_000_000, 8)
