"""Settings that shape a run of the content graph, and everything a run's dependencies are
built from (PipelineSettings), read through the one environment reader (tools/settings_reader.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.client_settings import ClientSettings
from tools.llm.settings import JUDGE, LLMSettings, role_settings
from tools.settings_reader import (
    Placement,
    Setting,
    bool_setting,
    declared,
    float_setting,
    int_setting,
    optional_str_setting,
    read_declared,
)

# USD per million tokens (input, output). Local providers are free but their tokens still count.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "ollama": (0.0, 0.0),
    "embedded": (0.0, 0.0),
}

_GRAPH: Placement = {"section": "Graph", "read_by": "GraphSettings"}
QUALITY_THRESHOLD = int_setting(
    "QUALITY_THRESHOLD", 70, "Score from 0 to 100 that a draft needs to pass critique: the judge's rubric mean as "
    "`(mean − 1) × 25` (70 is a mean of 3.8). Every hard gate must hold as well.", low=0, high=100, **_GRAPH)
MAX_REVISIONS = int_setting(
    "MAX_REVISIONS", 2, "Revisions after the first draft (0–10). At the cap, the best attempt is kept and marked "
    "as not passing.", low=0, high=10, **_GRAPH)
RESEARCH_ENABLED = bool_setting(
    "RESEARCH_ENABLED", True, "`1`, `true`, `yes` and `on` enable web research; `0`, `false`, `no` and `off` "
    "disable it.", **_GRAPH)
IMAGES_ENABLED = bool_setting("IMAGES_ENABLED", True, "The same values enable Pexels image search.", **_GRAPH)
DEFAULT_TARGET_WORDS = int_setting(
    "DEFAULT_TARGET_WORDS", 600, "Length (100–5000) of a blog post whose request states none. Other types have "
    "built-in lengths: an X post 40, a LinkedIn post 150, an email 200, a newsletter 400, a research brief 700.",
    low=100, high=5000, **_GRAPH)
SEARCH_RESULTS = int_setting("SEARCH_RESULTS", 5, "Results per search (1–20).", low=1, high=20, **_GRAPH)
RESEARCH_TIMEOUT = float_setting(
    "RESEARCH_TIMEOUT", 30.0, "Seconds (0.1–600, decimals allowed) allowed for each search in the research step, "
    "and for reading the top sources' pages together.", low=0.1, high=600, **_GRAPH)
RESEARCH_FETCH_PAGES = bool_setting(
    "RESEARCH_FETCH_PAGES", True, "Read the top 3 sources' pages and keep an excerpt as evidence. `false` keeps "
    "research to the search snippets.", **_GRAPH)
MODEL_PRICES = optional_str_setting(
    "MODEL_PRICES", 'JSON of USD per million tokens, e.g. `{"openai/gpt-4o-mini": [0.15, 0.6]}`. Keys are '
    "`provider/model`, `model` or `provider`, and the most specific key wins. Unknown models cost 0.",
    shown_default="unset (`ollama` and `embedded` free)", **_GRAPH)
GRAPH_SETTINGS: tuple[Setting[Any], ...] = (
    QUALITY_THRESHOLD, MAX_REVISIONS, RESEARCH_ENABLED, IMAGES_ENABLED, DEFAULT_TARGET_WORDS, SEARCH_RESULTS,
    RESEARCH_TIMEOUT, RESEARCH_FETCH_PAGES, MODEL_PRICES)


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
    quality_threshold: int = declared(QUALITY_THRESHOLD)
    max_revisions: int = declared(MAX_REVISIONS)
    research_enabled: bool = declared(RESEARCH_ENABLED)
    images_enabled: bool = declared(IMAGES_ENABLED)
    default_target_words: int = declared(DEFAULT_TARGET_WORDS)
    search_results: int = declared(SEARCH_RESULTS)
    research_timeout: float = declared(RESEARCH_TIMEOUT)
    research_fetch_pages: bool = declared(RESEARCH_FETCH_PAGES)
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GraphSettings:
        return cls(**read_declared(cls, env), prices=parse_price_table(MODEL_PRICES.read(env)))

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
        """Most specific price wins: provider/model, then model, then provider; unknown is free."""
        pair = (
            self.prices.get(f"{provider}/{model}")
            or self.prices.get(model)
            or self.prices.get(provider)
            or (0.0, 0.0)
        )
        return round((input_tokens * pair[0] + output_tokens * pair[1]) / 1_000_000, 8)


@dataclass(frozen=True)
class PipelineSettings:
    """Everything a run's dependencies (graph/context.py) are built from: the graph's settings,
    the writer's model, the critique's judge (None: the writer judges) and the outbound clients."""

    graph: GraphSettings
    llm: LLMSettings
    judge: LLMSettings | None
    clients: ClientSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PipelineSettings:
        llm = LLMSettings.from_env(env)
        return cls(graph=GraphSettings.from_env(env), llm=llm, judge=role_settings(env, llm, JUDGE),
                   clients=ClientSettings.from_env(env))
