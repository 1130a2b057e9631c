"""The engine's counters since start, and the view of its running runs that /metrics reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class RunStats:
    """Counters since start, for /metrics."""

    claimed_total: int = 0
    completed_total: int = 0
    failed_total: int = 0
    cancelled_total: int = 0
    awaiting_approval_total: int = 0
    released_total: int = 0
    lease_lost_total: int = 0
    resumed_total: int = 0  # runs that continued from a checkpoint instead of starting fresh
    claim_errors_total: int = 0


# Runtime-checkable: Litestar checks an injected value against the handler's annotation.
@runtime_checkable
class RunningRuns(Protocol):
    """How many runs this process drives right now (the dispatcher answers)."""

    @property
    def running_count(self) -> int: ...
