"""The run side of a process: event bus, dispatcher, the commands controllers call, and
cross-process wake-ups, shared by the HTTP service's lifespan and by `draftloop worker` (which
serves no HTTP)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app.engine.commands import RunCommands
from app.engine.deliverer import Deliverer
from app.engine.dispatcher import Dispatcher
from app.engine.events import EventBus, EventListener
from app.engine.run_log import RunLog
from app.engine.run_settings import RunSettings
from app.engine.scheduler import CronScheduler
from app.graph_runtime import GraphRuntime
from app.service_settings import ServiceSettings
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL, Handler, NotificationListener

log = logging.getLogger("draftloop")


@dataclass
class RunServices:
    bus: EventBus
    dispatcher: Dispatcher
    notifications: NotificationListener
    deliverer: Deliverer

    @property
    def commands(self) -> RunCommands:
        return self.dispatcher.commands

    @property
    def run_settings(self) -> RunSettings:
        return self.dispatcher.run_settings


@asynccontextmanager
async def open_run_services(
    runtime: GraphRuntime, settings: ServiceSettings, *, listener: EventListener | None = None,
    wake_others: Callable[[], None] | None = None,
) -> AsyncIterator[RunServices]:
    """Start the dispatcher (claiming only if this process runs graphs) and the notification
    listener; on exit stop the dispatcher first, so its last status events still wake followers.
    Every process logs its own runs' progress for operators (app/engine/run_log.py).
    ``wake_others``: see Dispatcher."""
    model = await runtime.deps.models.describe()
    run_log = RunLog(runtime.read_engine, f"{model.provider}/{model.model}" if model.model else model.provider)
    bus = EventBus(runtime.sessions, poll_seconds=settings.poll_seconds, listener=run_log.listener(listener),
                   read_sessions=runtime.read_sessions, autocommit_engine=runtime.autocommit_engine)
    dispatcher = Dispatcher(runtime, settings, bus, wake_others=wake_others)
    # Processes that run graphs send the webhooks of the runs ended anywhere (the outbox).
    deliverer = Deliverer(runtime.sessions, settings.webhooks, dispatcher.worker_id)
    if dispatcher.claims:
        dispatcher.run_end.webhook_queued = deliverer.wake
    handlers: dict[str, Handler] = {TASK_CHANNEL: bus.wake}
    if dispatcher.claims:
        handlers[QUEUE_CHANNEL] = lambda _payload: dispatcher.wake()
    notifications = NotificationListener(runtime.database_url, handlers)
    await notifications.start()
    # Crons are queued where graphs run: an api-only process has workers that do it.
    scheduler = (CronScheduler(runtime, dispatcher.commands, settings.cron_poll_seconds)
                 if dispatcher.claims else None)
    try:
        await dispatcher.start()
        if scheduler is not None:
            scheduler.start()
        if dispatcher.claims:
            deliverer.start()
        try:
            yield RunServices(bus, dispatcher, notifications, deliverer)
        finally:
            try:
                if scheduler is not None:
                    await scheduler.stop()
                await dispatcher.stop()
            finally:
                await deliverer.stop()
                await bus.aclose()
                await run_log.aclose()
    finally:
        await notifications.aclose()
