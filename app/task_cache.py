"""Rendered ``GET /api/tasks/{id}`` bodies, kept per process while it hears of every change.

Clients poll this route while their task runs; under load every poll waited for a database
round trip that shares the CPU with the runs (bench/RESULTS.md). On Postgres each status
change and each batch of progress events notifies the task's id (storage.notifications), and
local writes announce their events as they commit: either drops the task's entry, so a read
after a change (in any process) is never served from before it. Fields that change without an
event (token counts during a run) are at most ``ttl_seconds`` old.

Only while the notification connection is up: SQLite has none, and a listener that lost its
connection may have missed changes, so the cache is cleared on reconnect and bypassed until then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DEFAULT_TTL_SECONDS = 1.0
MAX_ENTRIES = 4096


@dataclass
class CacheRead:
    """One database read of a task that may become the cached body, unless the task changed
    while it ran."""

    cache: TaskDetailCache
    task_id: str
    epoch: int

    def store(self, body: dict[str, Any]) -> None:
        self.cache._store(self, body)


class TaskDetailCache:
    def __init__(self, active: Callable[[], bool], ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 max_entries: int = MAX_ENTRIES) -> None:
        # Whether every change is being heard right now (the listener's connection is up).
        self._active = active
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        # Reads in flight per task, and tasks that changed during one of them: such a read may
        # have seen the row before the change, so it must not be stored.
        self._reading: dict[str, int] = {}
        self._changed_while_reading: set[str] = set()
        self._epoch = 0
        self.hits = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self._active()

    def get(self, task_id: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        entry = self._entries.get(task_id)
        if entry is None or time.monotonic() - entry[0] > self.ttl_seconds:
            return None
        self.hits += 1
        return entry[1]

    @contextmanager
    def reading(self, task_id: str) -> Iterator[CacheRead]:
        """Wrap the database read of ``task_id``; call ``store`` on what it yields with the body."""
        self._reading[task_id] = self._reading.get(task_id, 0) + 1
        try:
            yield CacheRead(self, task_id, self._epoch)
        finally:
            remaining = self._reading[task_id] - 1
            if remaining:
                self._reading[task_id] = remaining
            else:
                del self._reading[task_id]
                self._changed_while_reading.discard(task_id)

    def forget(self, task_id: str) -> None:
        """``task_id`` changed (a notification or a local write); an empty id means anything
        may have (the listener reconnected)."""
        if not task_id:
            self.clear()
            return
        self._entries.pop(task_id, None)
        if task_id in self._reading:
            self._changed_while_reading.add(task_id)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def _store(self, read: CacheRead, body: dict[str, Any]) -> None:
        if (not self.enabled or read.epoch != self._epoch
                or read.task_id in self._changed_while_reading):
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[read.task_id] = (time.monotonic(), body)
