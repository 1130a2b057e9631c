"""The audit trail's writer: requests hand entries over without waiting, one background task
batch-writes them, and shutdown flushes what is still queued.

A request never awaits the database for its audit entry: ``AuditLog.record`` appends to an
in-memory queue and returns. The writer takes up to ``batch_size`` entries at a time (after
waiting up to ``flush_seconds`` for a burst to gather) and inserts them in one transaction. A
failed write is retried with exponential back-off and logged; the batch is kept until it is
written. The queue is bounded: past ``max_queued`` (the database has been down a long while)
new entries are written to the error log as JSON instead, so they are never lost silently and
memory stays bounded. On shutdown the writer drains the queue; whatever it cannot write within
``shutdown_seconds`` goes to the error log the same way.

Handlers enrich their request's entry with ``audit_change`` (resource id, before/after); the
entry itself is made by the middleware in app/http/audit_middleware.py, for every mutation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, cast

from litestar.connection import ASGIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import AuditRecord, AuditRepository

log = logging.getLogger("draftloop.audit")

AuditSink = Callable[[Sequence[AuditRecord]], Awaitable[None]]

# Where a handler's enrichment waits in the ASGI scope for the middleware.
AUDIT_SCOPE_KEY = "draftloop_audit"

# Summary limits: an audit row says what changed, it is not a copy of the content.
MAX_SUMMARY_CHARS = 4096
MAX_STRING_CHARS = 200
MAX_ITEMS = 20
MAX_DEPTH = 4
REDACTED = "[redacted]"
_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie",
                          "set-cookie", "credentials", "private_key", "secret_key", "client_secret"})
_SECRET_SUFFIXES = ("password", "_secret", "_token", "_api_key", "_apikey", "-token", "-key")
_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


def _clip_text(text: str) -> str:
    # NUL is valid JSON but Postgres refuses it in jsonb and text alike.
    text = _JWT.sub(REDACTED, text.replace("\x00", ""))
    return text if len(text) <= MAX_STRING_CHARS else text[:MAX_STRING_CHARS] + "…"


def _clip(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # Neither JSON nor jsonb has NaN or infinity.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clip_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        clipped: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == MAX_ITEMS:
                clipped["…"] = f"{len(value) - MAX_ITEMS} more"
                break
            name = _clip_text(str(key))
            clipped[name] = REDACTED if is_secret_key(name) else _clip(item, depth + 1)
        return clipped
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        clipped_items = [_clip(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            clipped_items.append(f"… {len(items) - MAX_ITEMS} more")
        return clipped_items
    return _clip_text(str(value))


def clip_summary(value: Any) -> Any:
    """``value`` made safe and small for an audit row: JSON types only, secret-looking keys and
    bearer tokens redacted, long strings and collections cut, and the whole bounded."""
    clipped = _clip(value, 0)
    if len(json.dumps(clipped, ensure_ascii=False)) <= MAX_SUMMARY_CHARS:
        return clipped
    if isinstance(clipped, dict):
        return {"truncated": True, "keys": list(clipped)[:MAX_ITEMS]}
    return {"truncated": True}


@dataclass(frozen=True, slots=True)
class AuditActor:
    """Who acted, when the request's token does not say it (a login)."""

    user_id: str
    name: str
    role: str


def audit_change(connection: ASGIConnection[Any, Any, Any, Any], *, action: str | None = None,
                 resource_id: str | None = None, actor: AuditActor | None = None, before: Any = None,
                 after: Any = None, **details: Any) -> None:
    """Enrich this request's audit entry: the middleware writes it when the response starts.
    Values are clipped now, so a handler changing its objects afterwards does not change the
    record. Call again to override (e.g. the action once an outcome is known)."""
    # ASGI lets middleware add keys to the scope, but Litestar's scope TypedDicts name only its own:
    # the note goes into the scope as the plain dict it is at runtime.
    scope = cast("dict[str, Any]", connection.scope)
    note: dict[str, Any] = scope.setdefault(AUDIT_SCOPE_KEY, {})
    if action is not None:
        note["action"] = action
    if actor is not None:
        note["actor"] = actor
    if resource_id is not None:
        note["resource_id"] = str(resource_id)
    summary: dict[str, Any] = note.setdefault("summary", {})
    if before is not None:
        summary["before"] = clip_summary(before)
    if after is not None:
        summary["after"] = clip_summary(after)
    for key, value in details.items():
        summary[key] = REDACTED if is_secret_key(key) else clip_summary(value)


def database_sink(sessions: async_sessionmaker[AsyncSession]) -> AuditSink:
    async def write(records: Sequence[AuditRecord]) -> None:
        async with sessions.begin() as session:
            await AuditRepository(session).add_many(records)

    return write


def _failure(exc: Exception) -> str:
    # Only type names: a driver's message can quote the statement's parameters.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__} ({type(exc.orig).__name__})"
    return type(exc).__name__


class AuditLog:
    """Owned by the app's lifespan: ``async with AuditLog(sink) as audit`` starts the writer and,
    on the way out, flushes the queue. Exit it after everything that records (the executor,
    requests) has stopped and before the database engine is closed."""

    def __init__(self, sink: AuditSink, *, batch_size: int = 200, flush_seconds: float = 0.05,
                 max_queued: int = 50_000, retry_seconds: float = 0.1, max_retry_seconds: float = 5.0,
                 shutdown_seconds: float = 15.0) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_queued = max_queued
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.shutdown_seconds = shutdown_seconds
        self.written = 0
        self.failed_writes = 0
        self.spilled = 0
        self._accepted = 0
        self._spilled_from_queue = 0
        self._progress = asyncio.Event()
        self._queue: deque[AuditRecord] = deque()
        self._inflight: list[AuditRecord] = []
        self._wakeup = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Entries accepted but not yet written."""
        return len(self._queue) + len(self._inflight)

    async def __aenter__(self) -> AuditLog:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def start(self) -> None:
        if self._writer is None:
            self._closing = False
            self._writer = asyncio.create_task(self._run(), name="draftloop-audit-writer")

    def record(self, record: AuditRecord) -> None:
        """Queue one entry; never waits."""
        if self._writer is None or self._writer.done():
            self._spill([record], "the audit writer is not running")
            return
        if len(self._queue) >= self.max_queued:
            self._spill([record], f"the audit queue is full ({self.max_queued} entries waiting; is the database down?)")
            return
        self._queue.append(record)
        self._accepted += 1
        self._wakeup.set()
        if len(self._queue) >= self.batch_size:
            self._batch_ready.set()

    async def flush(self) -> None:
        """Return once every entry recorded before the call is written (or spilled to the log)."""
        target = self._accepted
        while self._writer is not None and self.written + self._spilled_from_queue < target:
            self._progress.clear()
            self._batch_ready.set()  # no point gathering a burst for someone waiting
            await self._progress.wait()

    async def stop(self) -> None:
        """Write everything queued, then stop. Entries still unwritten after ``shutdown_seconds``
        (the database is unreachable) go to the error log rather than vanish."""
        writer = self._writer
        if writer is None:
            return
        self._closing = True
        self._wakeup.set()
        self._batch_ready.set()
        done, _ = await asyncio.wait({writer}, timeout=self.shutdown_seconds)
        if not done:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            left = [*self._inflight, *self._queue]
            self._inflight, self._queue = [], deque()
            self._spilled_from_queue += len(left)
            self._spill(left, "shutting down before the database took it")
        self._writer = None
        self._progress.set()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < self.batch_size and not self._closing:
                # Let a burst gather into one transaction instead of one insert per request.
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self.flush_seconds)
            count = min(self.batch_size, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(count)]
            await self._write(self._inflight)
            self._inflight = []

    async def _write(self, batch: list[AuditRecord]) -> None:
        attempt = 0
        while True:
            try:
                await self.sink(batch)
            except Exception as exc:  # any failure: the batch stays ours until it is written
                attempt += 1
                self.failed_writes += 1
                delay = min(self.retry_seconds * 2 ** (attempt - 1), self.max_retry_seconds)
                level = logging.WARNING if attempt < 5 else logging.ERROR
                log.log(level, "audit write of %d entries failed (attempt %d, %s); retrying in %.2fs, %d waiting",
                        len(batch), attempt, _failure(exc), delay, len(self._queue))
                await asyncio.sleep(delay)
                continue
            self.written += len(batch)
            self._progress.set()
            if attempt:
                log.warning("audit write succeeded after %d failed attempts", attempt)
            return

    def _spill(self, records: Sequence[AuditRecord], reason: str) -> None:
        """The last resort: the entry, whole, in the error log, which is then the trail."""
        self.spilled += len(records)
        for record in records:
            log.error("audit entry not stored (%s): %s", reason, json.dumps(asdict(record), default=str))
