"""The leases of the runs a process drives: kept alive, watched, and handed back.

A heartbeat extends the leases every ``heartbeat_seconds``; several times a second one cheap
query reads their state, so that a cancel written by any process, a lease another worker took
over or a deleted task stops the run here within a second. ``release`` hands tasks back to the
queue (shutdown, or what a previous process under this worker id left behind).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.cancelling import cancel_and_wait
from app.engine.events import STATUS, Event, EventBus
from app.engine.stats import RunStats
from app.service_settings import ServiceSettings
from storage.leases import LeaseRepository, LeaseState
from storage.models import TaskStatus
from storage.notifications import QUEUE_CHANNEL, notify

log = logging.getLogger("draftloop.executor")

# Often enough that a cancel made in another process stops the run well within a second.
DEFAULT_CANCEL_CHECK_SECONDS = 0.25


class StopReason(enum.StrEnum):
    """Why the engine cancelled a run's asyncio task; decides what happens to the row."""

    CANCELLED = "cancelled"  # a user cancelled: the row already says so
    LEASE_LOST = "lease_lost"  # another worker owns it now: leave the row alone
    DELETED = "deleted"  # the row is gone
    SHUTDOWN = "shutdown"  # this process stops: hand the task back to the queue


def stop_reason(state: LeaseState | None) -> StopReason | None:
    """Why a run must stop, given its lease's state now; None while it may go on."""
    if state is None:
        return StopReason.DELETED
    if state.held:
        return None
    if state.status == TaskStatus.CANCELLED:
        return StopReason.CANCELLED
    if state.status in (TaskStatus.RUNNING, TaskStatus.QUEUED):
        return StopReason.LEASE_LOST
    # Completed, failed or awaiting approval: the run itself just wrote that and is ending.
    return None


class LeaseKeeper:
    """Heartbeats and watches the leases of ``running()``; ``stop`` ends a run that must end."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus, settings: ServiceSettings,
                 worker_id: str, stats: RunStats, *, running: Callable[[], list[str]],
                 stop: Callable[[str, StopReason], None],
                 cancel_check_seconds: float = DEFAULT_CANCEL_CHECK_SECONDS) -> None:
        self.sessions = sessions
        self.bus = bus
        self.settings = settings
        self.worker_id = worker_id
        self.stats = stats
        self.cancel_check_seconds = cancel_check_seconds
        self._running = running
        self._stop = stop
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="draftloop-heartbeat"),
            asyncio.create_task(self._watch_loop(), name="draftloop-cancel-check"),
        ]

    async def stop(self) -> None:
        for loop in self._loops:
            await cancel_and_wait(loop)
        self._loops = []

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            task_ids = self._running()
            if not task_ids:
                continue
            try:
                async with self.sessions.begin() as session:
                    states = await LeaseRepository(session).heartbeat(
                        self.worker_id, task_ids, self.settings.lease_seconds
                    )
            except (SQLAlchemyError, OSError) as exc:
                # Leases outlive a few missed beats (lease_seconds >> heartbeat_seconds).
                log.warning("lease heartbeat failed: %s", exc)
                continue
            self._apply(task_ids, states)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cancel_check_seconds)
            task_ids = self._running()
            if not task_ids:
                continue
            try:
                async with self.sessions() as session:
                    states = await LeaseRepository(session).lease_states(self.worker_id, task_ids)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("cancel check failed: %s", exc)
                continue
            self._apply(task_ids, states)

    def _apply(self, task_ids: list[str], states: dict[str, LeaseState]) -> None:
        for task_id in task_ids:
            reason = stop_reason(states.get(task_id))
            if reason is not None:
                self._stop(task_id, reason)

    async def release(self, task_ids: list[str] | None, *, interrupted: bool = False) -> None:
        """Hand this worker's running tasks back to the queue, each with a ``status`` event
        (``interrupted``: their runs stopped without ending, see LeaseRepository.release)."""
        events: list[Event] = []
        try:
            await self.bus.flush()
            async with self.sessions.begin() as session:
                released = await LeaseRepository(session).release(self.worker_id, task_ids, interrupted=interrupted)
                for task_id in released:
                    events.append(await self.bus.record(session, task_id, STATUS, {"status": TaskStatus.QUEUED.value}))
                if released:
                    await notify(session, QUEUE_CHANNEL)
        except (SQLAlchemyError, OSError) as exc:
            # Their leases expire instead and another worker resumes them a little later.
            log.error("could not release leases: %s", exc)
            return
        self.bus.announce(events)
        self.stats.released_total += len(events)
        if events:
            log.info("released %d task(s) back to the queue", len(events))
