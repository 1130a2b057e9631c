"""The task row of a `draftloop run`: one row per turn, created when the turn starts.

The CLI runs the graph itself, so it is the worker of its own task: it holds the row's lease
while it runs (renewed like a service worker's), and records how the run ended. A CLI killed
mid-run leaves a running row whose lease runs out; `draftloop run --thread` (or a service
worker on the same database) takes it over from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.leases import LeaseRepository, end_run
from storage.models import TaskStatus
from storage.notifications import TASK_CHANNEL
from storage.tasks import TaskRepository
from storage.write_paths import WritePaths


class ThreadHeld(RuntimeError):
    """Another live process is running this thread's task."""


class CliTaskRow:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], thread_id: str, *, lease_seconds: float,
                 heartbeat_seconds: float) -> None:
        self.sessions = sessions
        self.thread_id = thread_id
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.worker_id = f"cli-{socket.gethostname()}-{os.getpid()}"
        self.task_id: str | None = None

    async def start_turn(self, request: str, params: dict[str, Any]) -> str:
        """A new row for a new turn, created (and so dated) now, and leased to this process."""
        async with self.sessions.begin() as session:
            task = await TaskRepository(session).create(request=request, params=params, thread_id=self.thread_id,
                                                        status=TaskStatus.QUEUED)
            await LeaseRepository(session).take(task.id, self.worker_id, self.lease_seconds)
        self.task_id = task.id
        return task.id

    async def continue_turn(self) -> str | None:
        """Take over the thread's newest row (to resume it, or to answer its approval); None
        when the thread has no row yet. Raises ThreadHeld when a live process runs it."""
        async with self.sessions.begin() as session:
            task = await TaskRepository(session).get_by_thread(self.thread_id)
            if task is None:
                return None
            if TaskStatus(task.status).is_terminal:
                # The turn ended (a crash after the graph's end): resuming only prints it.
                return None
            steal_from = task.lease_owner if self._dead_cli(task.lease_owner) else None
            taken = await LeaseRepository(session).take(task.id, self.worker_id, self.lease_seconds,
                                                        steal_from=steal_from)
            if not taken:
                raise ThreadHeld(f"thread {self.thread_id} is being run by {task.lease_owner}; wait for it to end")
        self.task_id = task.id
        return task.id

    @staticmethod
    def _dead_cli(owner: str | None) -> bool:
        """Whether the lease holder is a `draftloop run` on this machine that has died (killed,
        crashed): its lease would only make the user wait for it to run out."""
        prefix = f"cli-{socket.gethostname()}-"
        if not owner or not owner.startswith(prefix) or not owner[len(prefix):].isdigit():
            return False
        try:
            os.kill(int(owner[len(prefix):]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    @contextlib.asynccontextmanager
    async def leased(self) -> AsyncIterator[None]:
        """Renew the lease while the run goes on."""
        renewer = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self) -> None:
        while self.task_id is not None:
            await asyncio.sleep(self.heartbeat_seconds)
            async with self.sessions.begin() as session:
                await LeaseRepository(session).heartbeat(self.worker_id, [self.task_id], self.lease_seconds)

    async def end(self, status: TaskStatus, error: str | None = None) -> None:
        """Record how the run ended (and its thread's status, when the thread is an API one):
        finalize stores the outcome, the status is this call's to write."""
        if self.task_id is None:
            return
        # No events: the CLI prints its run's progress itself.
        await end_run(WritePaths(self.sessions), task_id=self.task_id, thread_id=self.thread_id,
                      worker_id=self.worker_id, status=status, error=error, events=[], channel=TASK_CHANNEL)
