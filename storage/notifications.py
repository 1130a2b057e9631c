"""Cross-process wake-ups over Postgres LISTEN/NOTIFY.

With several processes on one Postgres (an API process and its workers, or servers scaled out),
a task queued, cancelled or answered, or an event written, in one process must wake the others
at once: polling alone adds up to QUEUE_POLL_SECONDS to every claim and every SSE event.
Notifications are sent inside the writer's transaction, so they are delivered exactly when (and
only if) it commits. SQLite has no such channel; there, processes poll.

A notification is only a hint to look at the database, which stays the source of truth: one
lost while a listener reconnects costs a poll interval, nothing else, and every handler is
called once after a reconnect to cover that gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.checkpoints import postgres_conninfo
from storage.engine import is_postgres

log = logging.getLogger("draftloop.notifications")

# Payload: empty. A task was queued (new, released, or a decision to resume it).
QUEUE_CHANNEL = "draftloop_queue"
# Payload: a task id. A task's events or status changed (SSE followers re-read), or it was cancelled.
TASK_CHANNEL = "draftloop_task"

CONNECT_TIMEOUT_SECONDS = 5.0
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0

Handler = Callable[[str], None]


def _is_postgres_session(session: AsyncSession) -> bool:
    bind = session.bind
    return bind is not None and bind.dialect.name == "postgresql"


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """Queue a notification in the session's transaction (a no-op on SQLite)."""
    if _is_postgres_session(session):
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


async def notify_each(session: AsyncSession, channel: str, payloads: Sequence[str]) -> None:
    """``notify`` once per payload, in one round trip (a batch of events of many tasks would
    otherwise cost one per task)."""
    if payloads and _is_postgres_session(session):
        await session.execute(
            text("SELECT count(pg_notify(:channel, payload)) FROM unnest(CAST(:payloads AS text[])) AS payload"),
            {"channel": channel, "payloads": list(payloads)},
        )


# A process's LISTEN connection, outside every pool (storage/connection_budget.py counts it).
LISTENER_CONNECTIONS = 1


class NotificationListener:
    """One LISTEN connection per process that calls ``handlers[channel](payload)`` in the event
    loop for every notification; reconnects with back-off when the connection drops."""

    def __init__(self, database_url: str, handlers: Mapping[str, Handler]) -> None:
        self.database_url = database_url
        self.handlers = dict(handlers)
        self.connected = asyncio.Event()
        self.received_total = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return is_postgres(self.database_url) and bool(self.handlers)

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="draftloop-listen")

    async def aclose(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        self._task = None

    def _deliver(self, _connection: object, _pid: int, channel: str, payload: str) -> None:
        self.received_total += 1
        handler = self.handlers.get(channel)
        if handler is None:
            return
        try:
            handler(payload)
        except Exception:  # noqa: BLE001 - one bad handler must not stop the listener
            log.exception("notification handler for %s failed", channel)

    async def _run(self) -> None:
        delay = RETRY_SECONDS
        first = True
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(postgres_conninfo(self.database_url), timeout=CONNECT_TIMEOUT_SECONDS)
                lost = asyncio.Event()
                # Bound now: asyncpg calls the listener later (call_soon), and `lost` is rebound on each reconnect.
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self.handlers:
                    await connection.add_listener(channel, self._deliver)
                self.connected.set()
                if not first:
                    # Whatever was sent while we were away: look once, as if notified.
                    for handler in self.handlers.values():
                        handler("")
                first = False
                delay = RETRY_SECONDS
                await lost.wait()
                log.warning("notification connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cannot listen for notifications (%s); polling until it works again", exc)
            finally:
                self.connected.clear()
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=CONNECT_TIMEOUT_SECONDS)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
