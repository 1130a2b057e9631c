"""The run side of a process: event bus, executor and cross-process wake-ups, shared by the
HTTP service's lifespan and by `draftloop worker` (which serves no HTTP)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app.events import EventBus, EventListener
from app.executor import Executor
from app.graph_runtime import GraphRuntime
from app.run_log import RunLog
from app.service_settings import ServiceSettings
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL, Handler, NotificationListener

log = logging.getLogger("draftloop")


@dataclass
class RunServices:
    bus: EventBus
    executor: Executor
    notifications: NotificationListener


@asynccontextmanager
async def open_run_services(
    runtime: GraphRuntime, settings: ServiceSettings, *, listener: EventListener | None = None
) -> AsyncIterator[RunServices]:
    """Start the executor (claiming only if this process runs graphs) and the notification
    listener; on exit stop the executor first, so its last status events still wake followers.
    Every process logs its own runs' progress for operators (app/run_log.py)."""
    model = await runtime.deps.models.describe()
    run_log = RunLog(runtime.read_engine, f"{model.provider}/{model.model}" if model.model else model.provider)
    bus = EventBus(runtime.sessions, poll_seconds=settings.poll_seconds, listener=run_log.listener(listener),
                   read_sessions=runtime.read_sessions, autocommit_engine=runtime.autocommit_engine)
    executor = Executor(runtime, settings, bus)
    handlers: dict[str, Handler] = {TASK_CHANNEL: bus.wake}
    if executor.claims:
        handlers[QUEUE_CHANNEL] = lambda _payload: executor.wake()
    notifications = NotificationListener(runtime.database_url, handlers)
    await notifications.start()
    try:
        await executor.start()
        try:
            yield RunServices(bus, executor, notifications)
        finally:
            try:
                await executor.stop()
            finally:
                await bus.aclose()
                await run_log.aclose()
    finally:
        await notifications.aclose()
