"""Input record shapes for the repositories and storage.outcomes.save_outcome.

Plain dicts from graph state fit these TypedDicts as they are; unknown keys are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Required, TypedDict


class AttemptRecord(TypedDict, total=False):
    """One draft + critique round. Only ``number`` is required; the rest default to empty/0/None."""

    number: Required[int]  # 1-based, unique per task
    title: str
    markdown: str
    word_count: int
    score: float  # 0-100 combined score
    passed: bool
    dimensions: dict[str, Any]  # clarity, accuracy, completeness, relevance, seo, readability, engagement
    checks: dict[str, Any]  # deterministic checks
    issues: list[Any]
    suggestions: list[Any]
    feedback: str | None  # the human or critique feedback that produced this draft
    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    duration_ms: int
    created_at: datetime  # aware; defaults to now


class UsageRecord(TypedDict, total=False):
    """One model call. Only ``node`` is required."""

    node: Required[str]
    provider: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    duration_ms: int
    cost_usd: float
    created_at: datetime  # aware; defaults to now


ATTEMPT_FIELDS = frozenset(AttemptRecord.__annotations__)
USAGE_FIELDS = frozenset(UsageRecord.__annotations__)


def pick(record: AttemptRecord | UsageRecord | dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """Keep the known columns, drop None so column defaults apply to missing numbers and lists."""
    return {key: value for key, value in record.items() if key in fields and value is not None}
