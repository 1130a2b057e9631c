"""The cron scheduler: queues the runs of scheduled runs (crons) when their ticks fall due.

One per process that runs graphs, beside the dispatcher. Every ``cron_poll_seconds`` it reads
the enabled crons whose ``next_run_date`` has passed and claims each tick by moving that date on
with a conditional UPDATE (storage/crons.py), in the transaction that queues the tick's run, so
of several processes on one database exactly one queues it, and a process killed mid-claim
leaves the tick to the others.

The next date is the first tick after *now*, not after the missed one: a cron whose ticks fell
while no scheduler ran (downtime) fires once when one comes back, not once per missed tick.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.api_runs import ASSISTANT_ID, GRAPH_ID
from app.engine.assistant_context import defaults_of, merged_context, webhook_of
from app.engine.cancelling import cancel_and_wait
from app.engine.commands import RunCommands, ThreadBusy
from app.engine.events import Event
from app.engine.schedules import BadSchedule, load_zone, next_tick
from app.engine.webhooks import run_webhook_url
from app.graph_runtime import GraphRuntime
from storage.assistants import AssistantRepository
from storage.crons import CronRepository
from storage.json_filter import json_filter
from storage.models import Assistant, Cron, Thread, ThreadStatus, utcnow
from storage.threads import ThreadRepository

log = logging.getLogger("draftloop.crons")

# Due crons read per pass; more wait for the next pass, which follows at once.
BATCH = 100
# How often finished threads of stateless crons are looked for: the look filters every thread's
# metadata, too much to do every pass, and a finished thread may well stay a while.
SWEEP_SECONDS = 30.0
# The metadata key that marks a stateless cron's thread for deletion once its run ended
# (on_run_completed="delete").
DELETE_WHEN_DONE = "cron_delete_when_done"


def cron_thread_metadata(cron: Cron) -> dict[str, Any]:
    """A stateless cron's thread per tick: named after the cron, as langgraph-api's are."""
    metadata = {**(cron.meta or {}), "graph_id": GRAPH_ID, "assistant_id": cron.assistant_id, "cron_id": cron.cron_id}
    if cron.user_id:
        metadata["user_id"] = cron.user_id
    if cron.on_run_completed == "delete":
        metadata[DELETE_WHEN_DONE] = True
    return metadata


def tick_run(cron: Cron, assistant: Assistant | None) -> dict[str, Any]:
    """A tick's run: the cron's run over its assistant's current defaults (its webhook, when the
    cron has none, included), its memory the cron's creator's (as a run that user started
    through the API would be)."""
    run = dict(cron.run or {})
    # Not checked here, where no client could be told: the deliverer checks the URL before each
    # attempt and records why it would not call it.
    run["webhook"] = run_webhook_url(run.get("webhook"), default=webhook_of(assistant))
    config = dict(run.get("config") or {})
    configurable = dict(config.get("configurable") or {})
    defaults = defaults_of(assistant) if assistant is not None else {}
    run["context"] = merged_context(defaults, configurable, run.get("context"))
    if cron.user_id:
        configurable["langgraph_auth_user_id"] = cron.user_id
    run["config"] = {**config, "configurable": configurable}
    return run


class CronScheduler:
    def __init__(self, runtime: GraphRuntime, commands: RunCommands, poll_seconds: float) -> None:
        self.runtime = runtime
        self.commands = commands
        self.poll_seconds = poll_seconds
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="draftloop-cron-scheduler")

    async def stop(self) -> None:
        if self._loop is not None:
            await cancel_and_wait(self._loop)
            self._loop = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            try:
                while await self.tick() >= BATCH:
                    pass
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + SWEEP_SECONDS
                    await self.sweep_finished_threads()
            except (SQLAlchemyError, OSError) as exc:
                # The database may be restarting; the due crons are still due at the next pass.
                log.warning("cron scheduler pass failed: %s", exc)
            await asyncio.sleep(self.poll_seconds)

    async def tick(self, now: datetime | None = None) -> int:
        """Queue the runs of every cron due at ``now``; how many due crons were read."""
        now = now or utcnow()
        async with self.runtime.sessions() as session:
            due = await CronRepository(session).due(now, BATCH)
        for cron in due:
            await self._fire(cron, now)
        return len(due)

    async def _fire(self, cron: Cron, now: datetime) -> None:
        try:
            await load_zone(cron.timezone)
            following = next_tick(cron.schedule, cron.timezone, now, cron.end_time)
        except BadSchedule as exc:
            # Checked when stored; a time zone the system no longer knows stops the cron.
            log.error("cron %s stopped: %s", cron.cron_id, exc)
            following = None
        seen = cron.next_run_date or now
        event: Event | None = None
        try:
            async with self.runtime.sessions.begin() as session:
                if not await CronRepository(session).claim_tick(cron.cron_id, seen, following):
                    return
                event = await self._queue(session, cron)
        except (SQLAlchemyError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - one cron's bad run must not stop the others' ticks
            # Rolled back: the tick is skipped rather than retried every pass.
            log.error("cron %s skipped a tick: its run could not be queued: %s", cron.cron_id, exc, exc_info=exc)
            async with self.runtime.sessions.begin() as session:
                await CronRepository(session).claim_tick(cron.cron_id, seen, following)
            return
        if event is not None:
            self.commands.queued([event])

    async def _queue(self, session: AsyncSession, cron: Cron) -> Event | None:
        threads = ThreadRepository(session)
        thread_id = cron.thread_id
        if thread_id is None:
            thread_id = (await threads.create(metadata=cron_thread_metadata(cron))).thread_id
        elif await threads.get(thread_id) is None:
            log.warning("cron %s deleted: its thread %s is gone", cron.cron_id, thread_id)
            await CronRepository(session).delete(cron.cron_id)
            return None
        assistant = await AssistantRepository(session).get(cron.assistant_id)
        # The built-in assistant holds no defaults and is never deleted; its row is made again
        # on demand by the HTTP routes, so a tick does not need it.
        if assistant is None and cron.assistant_id != ASSISTANT_ID:
            log.warning("cron %s deleted: its assistant %s is gone", cron.cron_id, cron.assistant_id)
            await CronRepository(session).delete(cron.cron_id)
            return None
        run = tick_run(cron, assistant)
        try:
            _, event = await self.commands.queue_run_in(
                session, thread_id, run, reject_if_busy=run.get("multitask_strategy") == "reject")
        except ThreadBusy:
            log.info("cron %s skipped a tick: thread %s is busy", cron.cron_id, thread_id)
            return None
        log.info("cron %s queued run %s on thread %s", cron.cron_id, event.task_id, thread_id)
        return event

    async def sweep_finished_threads(self) -> None:
        """Delete the threads of on_run_completed="delete" crons whose run has ended."""
        async with self.runtime.sessions() as session:
            dialect = session.get_bind().dialect.name
            ids = list(await session.scalars(
                select(Thread.thread_id)
                .where(json_filter(Thread.meta, {DELETE_WHEN_DONE: True}, dialect),
                       Thread.status != ThreadStatus.BUSY.value)
                .limit(BATCH)))
        for thread_id in ids:
            async with self.runtime.sessions.begin() as session:
                await ThreadRepository(session).delete(thread_id)
            await self.runtime.checkpointer.adelete_thread(thread_id)
