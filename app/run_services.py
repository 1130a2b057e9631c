"""The run side of a process: event bus, executor and cross-process wake-ups, shared by the
HTTP service's lifespan and by `draftloop worker` (which serves no HTTP)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app.events import EventBus, EventListener
from app.executor import Executor
from app.graph_runtime import GraphRuntime
from app.settings import ServiceSettings
from app.task_cache import TaskDetailCache
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL, Handler, NotificationListener

log = logging.getLogger("draftloop")


@dataclass
class RunServices:
    bus: EventBus
    executor: Executor
    notifications: NotificationListener
    task_cache: TaskDetailCache


@asynccontextmanager
async def open_run_services(
    runtime: GraphRuntime, settings: ServiceSettings, *, listener: EventListener | None = None
) -> AsyncIterator[RunServices]:
    """Start the executor (claiming only if this process runs graphs) and the notification
    listener; on exit stop the executor first, so its last status events still wake followers."""
    notifications = NotificationListener(runtime.database_url, {})
    task_cache = TaskDetailCache(notifications.connected.is_set, settings.task_cache_seconds)

    def on_local_event(task_id: str, event_type: str, data: dict[str, Any]) -> None:
        # Before the writer answers its client, so that client's next read sees its change.
        task_cache.forget(task_id)
        if listener is not None:
            listener(task_id, event_type, data)

    def on_task_notification(task_id: str) -> None:
        # Drop the cached body first: a follower woken here may make its client read again.
        task_cache.forget(task_id)
        bus.wake(task_id)

    bus = EventBus(runtime.sessions, poll_seconds=settings.poll_seconds, listener=on_local_event,
                   read_sessions=runtime.read_sessions)
    executor = Executor(runtime, settings, bus)
    handlers: dict[str, Handler] = {TASK_CHANNEL: on_task_notification}
    if executor.claims:
        handlers[QUEUE_CHANNEL] = lambda _payload: executor.wake()
    notifications.handlers.update(handlers)
    await notifications.start()
    try:
        await executor.start()
        try:
            yield RunServices(bus, executor, notifications, task_cache)
        finally:
            try:
                await executor.stop()
            finally:
                await bus.aclose()
    finally:
        await notifications.aclose()
