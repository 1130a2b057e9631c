"""Task progress events: stored in the database, followed live by SSE clients.

Events are rows of ``task_events``; their autoincrement id is the SSE event id. Publishing
inserts in a short transaction of its own and wakes followers in this process at once. The run
that writes the events may live in another process (api/worker split, scale-out): on Postgres a
notification (storage/notifications.py) wakes followers there; followers also poll the table
every ``poll_seconds``, which is all SQLite has.

Event types and their ``data``:
- ``status``         {"status": <task status>, "error"?: str}
- ``node_started``   {"node": str}
- ``node_finished``  {"node": str, "summary": str}
- ``token``          {"node": str, "text": str}  (batched: ~100 ms or 50 tokens per event)
- ``attempt_scored`` {"number": int, "score": float, "passed": bool, "dimensions": {str: float}}
- ``research_query`` {"round": int, "kind": "web"|"news"|"shopping"|"images", "query": str,
                      "results": int, "error": str|None, "revision": int}  (one per search, as it finishes)
- ``interrupt``      {"value": <what the graph asks the reviewer>, "id": str}
- ``error``          {"message": str}

LangGraph API runs (tasks rows of kind 'run') store their SSE events here too, named as the SSE
event (``metadata``, ``values``, ``updates``, ``messages``, ``debug``, ``custom``, ``error``,
``end``...) with the payload under ``data["payload"]``; their ``status`` events stay internal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.models import TaskEvent, TaskStatus
from storage.notifications import TASK_CHANNEL, notify
from storage.task_events import EVENT_PAGE_SIZE, EventRepository, append_events
from storage.tasks import TaskRepository
from storage.write_paths import WritePaths

log = logging.getLogger("draftloop.events")

STATUS = "status"
NODE_STARTED = "node_started"
NODE_FINISHED = "node_finished"
TOKEN = "token"
ATTEMPT_SCORED = "attempt_scored"
RESEARCH_QUERY = "research_query"
INTERRUPT = "interrupt"
ERROR = "error"
EVENT_TYPES = frozenset({STATUS, NODE_STARTED, NODE_FINISHED, TOKEN, ATTEMPT_SCORED, RESEARCH_QUERY, INTERRUPT, ERROR})

DEFAULT_HEARTBEAT_SECONDS = 15.0
# post()'s writer: at most this many events per transaction; back-off while the database is away.
WRITE_BATCH_MAX = 500
WRITE_RETRY_SECONDS = 0.1
WRITE_RETRY_MAX_SECONDS = 5.0
CLOSE_FLUSH_SECONDS = 10.0
# Errors that say the database is away rather than that it refuses these rows: retry later.
UNREACHABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError)

# Called with (task_id, event_type, data) for every event published through this bus, after it
# is committed: metrics hang off it. It must be quick and must not raise.
EventListener = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    task_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: TaskEvent) -> Event:
        return cls(id=row.id, task_id=row.task_id, type=row.type, data=dict(row.data or {}), created_at=row.created_at)

    @property
    def is_terminal(self) -> bool:
        """A status event that ends the task: followers stop after it."""
        if self.type != STATUS:
            return False
        try:
            return TaskStatus(str(self.data.get("status"))).is_terminal
        except ValueError:
            return False


class EventBus:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        poll_seconds: float = 1.0,
        *,
        listener: EventListener | None = None,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        autocommit_engine: AsyncEngine | None = None,
    ) -> None:
        """``autocommit_engine`` (Postgres): the writer stores each batch in one statement
        (storage.task_events.append_events) instead of a transaction of five round trips."""
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.sessions = sessions
        self.writes = WritePaths(sessions, autocommit_engine)
        # Followers' polling reads need no transaction (storage.engine.read_session_factory).
        self.read_sessions = read_sessions or sessions
        self.poll_seconds = poll_seconds
        self.listener = listener
        # task id -> wake-up flags of the followers in this process.
        self._followers: dict[str, set[asyncio.Event]] = {}
        self.published_total = 0
        self.closed = False
        # Write-behind queue of post(): (task id, type, data), oldest first.
        self._queue: list[tuple[str, str, dict[str, Any]]] = []
        self._queue_ready = asyncio.Event()
        self._written = asyncio.Event()
        self._queued_total = 0
        self._written_total = 0
        self._writer: asyncio.Task[None] | None = None

    def close(self) -> None:
        """End every follow() at its next step: the server is shutting down, and an open SSE
        stream would otherwise hold the shutdown until the connection timeout."""
        self.closed = True
        for flags in self._followers.values():
            for flag in flags:
                flag.set()

    async def publish(self, task_id: str, event_type: str, data: Mapping[str, Any] | None = None) -> int:
        """Store one event in its own transaction and wake this process's followers; its id."""
        async with self.sessions.begin() as session:
            row = await EventRepository(session).append(task_id, event_type, dict(data or {}))
            await notify(session, TASK_CHANNEL, task_id)
        event = Event.from_row(row)
        self.announce([event])
        return event.id

    def post(self, task_id: str, event_type: str, data: Mapping[str, Any] | None = None) -> None:
        """Queue an event for the write-behind writer and return at once.

        A run's progress events go this way: the run does not wait for a transaction per
        event, and one writer commits whatever has queued up meanwhile in one multi-row insert
        (group commit), so under load ~18 transactions per task become a handful. Events of a
        task keep their order (one FIFO writer). Call ``flush`` before anything that must be
        ordered after them, such as the run's terminal status. Queued events die with the
        process; a resumed run publishes its own.
        """
        self._queue.append((task_id, event_type, dict(data or {})))
        self._queued_total += 1
        self._queue_ready.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="draftloop-event-writer")

    async def flush(self) -> None:
        """Wait until every event queued by ``post`` before this call is committed."""
        target = self._queued_total
        while self._written_total < target:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_loop(), name="draftloop-event-writer")
            self._written.clear()
            await self._written.wait()

    async def aclose(self, timeout: float = CLOSE_FLUSH_SECONDS) -> None:
        """Write what is still queued (for at most ``timeout`` seconds), then stop the writer."""
        if self._queue:
            try:
                await asyncio.wait_for(self.flush(), timeout)
            except TimeoutError:
                log.error("dropping %d progress event(s): the database did not take them within %.0f s",
                          len(self._queue), timeout)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _write_loop(self) -> None:
        delay = WRITE_RETRY_SECONDS
        while True:
            if not self._queue:
                self._queue_ready.clear()
                await self._queue_ready.wait()
            batch = self._queue[:WRITE_BATCH_MAX]
            try:
                written = await self._write(batch)
            except UNREACHABLE as exc:
                # Kept in the queue: written once the database answers again.
                log.warning("writing %d event(s) failed (%s); retrying in %.1f s", len(batch), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_SECONDS)
                continue
            delay = WRITE_RETRY_SECONDS
            del self._queue[:len(batch)]
            self._written_total += len(batch)
            self._written.set()
            self._announce_written(written)

    async def _write(self, batch: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
        """Commit a batch; the events that were stored. One event the database refuses for
        itself (not for being unreachable), such as data it cannot encode, is dropped with an
        error in the log instead of blocking every event behind it."""
        try:
            await self._insert(batch)
            return batch
        except UNREACHABLE:
            raise
        except Exception:  # noqa: BLE001 - sorted out one by one below (bad data, a deleted task)
            if len(batch) == 1:
                log.exception("dropping a %s event of task %s that cannot be stored", batch[0][1], batch[0][0])
                return []
        stored = []
        for item in batch:
            stored.extend(await self._write([item]))
        return stored

    async def _insert(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        await append_events(self.writes, batch, channel=TASK_CHANNEL)

    def _announce_written(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        for task_id, event_type, data in batch:
            self.published_total += 1
            for flag in self._followers.get(task_id, ()):
                flag.set()
            self._tell_listener(task_id, event_type, data)

    async def record(
        self, session: AsyncSession, task_id: str, event_type: str, data: Mapping[str, Any] | None = None, *,
        new_task: bool = False,
    ) -> Event:
        """Store an event inside the caller's transaction, so it commits (or not) together with a
        status change. Call ``announce`` with it once that transaction has committed.
        ``new_task``: the task is created in this transaction; nobody can follow it yet, so
        neither the ordering lock nor a notification is needed (two round trips per POST)."""
        row = await EventRepository(session).append(task_id, event_type, dict(data or {}), new_task=new_task)
        if not new_task:
            # Postgres folds repeats of one notification within a transaction into one.
            await notify(session, TASK_CHANNEL, task_id)
        return Event.from_row(row)

    def wake(self, task_id: str) -> None:
        """Another process wrote events of ``task_id`` (a notification): followers read now
        instead of at their next poll."""
        for flag in self._followers.get(task_id, ()):
            flag.set()

    def announce(self, events: Iterable[Event]) -> None:
        """Tell local followers and the listener about committed events."""
        for event in events:
            self.published_total += 1
            for flag in self._followers.get(event.task_id, ()):
                flag.set()
            self._tell_listener(event.task_id, event.type, event.data)

    def _tell_listener(self, task_id: str, event_type: str, data: dict[str, Any]) -> None:
        if self.listener is not None:
            try:
                self.listener(task_id, event_type, data)
            except Exception:  # noqa: BLE001 - a metrics bug must not fail a run
                log.exception("event listener failed on %s", event_type)

    async def history(self, task_id: str, after_id: int = 0, limit: int = EVENT_PAGE_SIZE) -> list[Event]:
        """Stored events of a task with id > ``after_id``, oldest first."""
        async with self.read_sessions() as session:
            rows = await EventRepository(session).list_after(task_id, after_id, limit)
        return [Event.from_row(row) for row in rows]

    async def follow(
        self,
        task_id: str,
        after_id: int = 0,
        heartbeat: float = DEFAULT_HEARTBEAT_SECONDS,
        *,
        until: Callable[[Event], bool] | None = None,
    ) -> AsyncIterator[Event | None]:
        """Every event of a task with id > ``after_id`` in id order, live, without gaps or repeats.

        Yields None when nothing happened for ``heartbeat`` seconds (SSE sends a comment so
        proxies keep the connection). Ends right after the terminal status event; a task that
        already ended replays its history and ends. A task that ended without a terminal event
        (e.g. run by the CLI, or deleted) ends the stream once its history is drained.
        ``until`` replaces "a terminal status event" as the last event (runs end with ``end``).
        """
        is_last = until or (lambda event: event.is_terminal)
        flag = asyncio.Event()
        self._followers.setdefault(task_id, set()).add(flag)
        last_id = after_id
        quiet_since = time.monotonic()
        try:
            while not self.closed:
                # Cleared before reading: a publish landing during the read sets it again, so the
                # wait below returns at once instead of missing it.
                flag.clear()
                events = await self.history(task_id, last_id)
                for event in events:
                    yield event
                    last_id = event.id
                    if is_last(event):
                        return
                if len(events) == EVENT_PAGE_SIZE:
                    continue
                if events:
                    quiet_since = time.monotonic()
                elif await self._has_ended(task_id):
                    # Status and terminal event commit together; read once more in case both
                    # landed between the two queries above.
                    for event in await self.history(task_id, last_id):
                        yield event
                        last_id = event.id
                        if is_last(event):
                            return
                    return
                remaining = quiet_since + heartbeat - time.monotonic()
                if remaining <= 0:
                    yield None
                    quiet_since = time.monotonic()
                    continue
                try:
                    await asyncio.wait_for(flag.wait(), timeout=min(self.poll_seconds, remaining))
                except TimeoutError:
                    pass
        finally:
            followers = self._followers.get(task_id)
            if followers is not None:
                followers.discard(flag)
                if not followers:
                    del self._followers[task_id]

    @property
    def follower_count(self) -> int:
        return sum(len(flags) for flags in self._followers.values())

    async def _has_ended(self, task_id: str) -> bool:
        async with self.read_sessions() as session:
            status = await TaskRepository(session).status_of(task_id)
        return status is None or status.is_terminal
