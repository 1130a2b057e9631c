"""The dispatcher: durable background runs, claimed from the database with leases.

One per service process. It claims queued tasks (and tasks whose worker died: their lease
expired) up to the concurrency setting at a time, and drives each through the graph in an
asyncio task of its own (app/engine/driver.py), its progress published on the EventBus
(app/engine/publishers.py) and its end recorded by app/engine/run_end.py. The leases are kept
alive and watched by app/engine/heartbeat.py, so a cancel written by any process stops the run
within a second.

Every run resumes from the thread's checkpoint, so a run that stopped anywhere — a crash, a
shutdown, a lost lease, an approval — continues where it left off without repeating finished
nodes. The task row is the source of truth for status; every status change is written together
with its ``status`` event in one transaction, so the event log and the row never disagree.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from app.engine.cancelling import cancel_and_wait, wait_done
from app.engine.commands import RunCommands
from app.engine.driver import RunDriver
from app.engine.events import STATUS, EventBus
from app.engine.heartbeat import DEFAULT_CANCEL_CHECK_SECONDS, LeaseKeeper, StopReason
from app.engine.messages import failure_message, gave_up_message
from app.engine.publishers import ApiRunPublisher, Publisher, RunPublisher
from app.engine.rollback import drop_if_rolled_back
from app.engine.run_end import Ending, RunEnd
from app.engine.run_settings import RunSettings
from app.engine.stats import RunStats
from app.engine.webhooks import ThreadValues
from app.graph_runtime import GraphRuntime
from app.logs import current_task_id
from app.service_settings import ServiceSettings
from storage.errors import storage_unreachable
from storage.leases import LeaseRepository
from storage.models import Task, TaskStatus

log = logging.getLogger("draftloop.executor")

# How long a rollback waits for a run of this process to stop (it stops at its next await).
STOP_WAIT_SECONDS = 10.0


class Dispatcher:
    def __init__(
        self,
        runtime: GraphRuntime,
        settings: ServiceSettings,
        bus: EventBus,
        *,
        run_settings: RunSettings | None = None,
        wake_others: Callable[[], None] | None = None,
        cancel_check_seconds: float = DEFAULT_CANCEL_CHECK_SECONDS,
    ) -> None:
        """``wake_others``: tells the other processes that work was queued where no NOTIFY
        reaches them (the HTTP service's supervised workers on SQLite, app/supervisor.py)."""
        self.runtime = runtime
        self.settings = settings
        self.bus = bus
        self.sessions = runtime.sessions
        self.worker_id = settings.worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.concurrency = max(1, settings.concurrency)
        self.stats = RunStats()
        # The settings registry: applied to every run start and to the claim size (app/engine/run_settings.py).
        self.run_settings = run_settings or RunSettings(runtime.sessions, runtime.deps, settings)
        self.wake_others = wake_others
        self.driver = RunDriver(runtime, runtime.deps, self.run_settings, self.stats, self.worker_id)
        values = ThreadValues(runtime.graph, settings.webhooks.max_values_bytes)
        self.run_end = RunEnd(runtime.writes, bus, self.worker_id, self.stats, values)
        self.leases = LeaseKeeper(runtime.sessions, bus, settings, self.worker_id, self.stats,
                                  running=lambda: list(self._runs), stop=self._stop_local,
                                  cancel_check_seconds=cancel_check_seconds)
        self.commands = RunCommands(runtime, bus, wake=self.wake,
                                    stop_local=lambda task_id: self._stop_local(task_id, StopReason.CANCELLED),
                                    values=values,
                                    stopped=lambda task_id: wait_done(self._runs.get(task_id), STOP_WAIT_SECONDS))
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._stop_reasons: dict[str, StopReason] = {}
        self._wakeup = asyncio.Event()
        # Whether a claim could find work: a run ending frees a slot, but when the last claim
        # came back short the queue held nothing claimable, and asking again after every run
        # (100 empty claims at the end of a batch) cost the workers more than the claims that
        # found work. New tasks, decisions and other workers' hand-backs wake() with it set;
        # the periodic poll claims regardless.
        self._queue_may_have_work = True
        self._dispatcher: asyncio.Task[None] | None = None
        self._draining = False
        self._started = False

    @property
    def running_count(self) -> int:
        return len(self._runs)

    @property
    def running_task_ids(self) -> list[str]:
        return list(self._runs)

    @property
    def claimed_total(self) -> int:
        return self.stats.claimed_total

    @property
    def is_running(self) -> bool:
        return self._started and not self._draining

    @property
    def claims(self) -> bool:
        """False in an api-only process: it queues, cancels and answers, workers run."""
        return self.settings.runs_graphs

    async def start(self) -> None:
        """Start claiming. Tasks left running under this worker id (a restart with a fixed
        WORKER_ID) are handed back first; other workers' expired leases are claimed as usual."""
        if self._started:
            return
        self._started = True
        self._draining = False
        if not self.claims:
            log.info("executor %s: api only, graph runs are left to worker processes", self.worker_id)
            return
        # Runs a previous process under this id left behind without ending them: resumes.
        await self.leases.release(None, interrupted=True)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="draftloop-dispatcher")
        self.leases.start()
        log.info("executor %s started (concurrency %d)", self.worker_id, self.concurrency)

    def begin_drain(self) -> None:
        """Stop claiming now and let runs pause at their next node boundary; stop() finishes the
        job. Called from the shutdown signal, before the server waits for connections."""
        self._draining = True
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop claiming; give running tasks ``shutdown_grace_seconds`` to finish or reach a
        checkpoint boundary, cancel the rest, and hand them all back to the queue (their
        leases released) for this process after a restart, or another one, to resume."""
        if not self._started:
            return
        if not self.claims:
            self._started = False
            return
        grace = self.settings.shutdown_grace_seconds
        self._draining = True
        self._wakeup.set()
        if self._dispatcher is not None:
            # Let a claim in progress finish rather than cancel it between its commit and the
            # launch of its runs; what it claimed then drains like everything else.
            await asyncio.wait({self._dispatcher}, timeout=grace)
            await cancel_and_wait(self._dispatcher)
            self._dispatcher = None
        runs = dict(self._runs)
        if runs:
            _, pending = await asyncio.wait(set(runs.values()), timeout=grace)
            for task_id, run in runs.items():
                if run in pending:
                    self._stop_reasons.setdefault(task_id, StopReason.SHUTDOWN)
                    run.cancel()
            await asyncio.gather(*runs.values(), return_exceptions=True)
        await self.leases.stop()
        # Everything still leased to this worker: paused or cancelled runs, and any claim whose
        # run never started.
        await self.leases.release(None)
        await self.run_settings.aclose()
        self._started = False
        log.info("executor %s stopped", self.worker_id)

    def wake(self) -> None:
        """A task was queued: claim now instead of at the next poll, and wake the other
        processes that ``wake_others`` reaches."""
        self._queue_may_have_work = True
        self._wakeup.set()
        if self.wake_others is not None:
            self.wake_others()

    async def _dispatch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while not self._draining:
            self._wakeup.clear()
            self.concurrency = await self.run_settings.concurrency()
            free = self.concurrency - len(self._runs)
            # Polled on a deadline, not per wait: frequent wake-ups must not postpone the poll
            # that finds what no notification announces (SQLite between processes, expired leases).
            # A poll that falls due while every slot is taken is owed to the next free slot; left
            # due, the wait below would time out at once, again and again, for as long as the
            # slots stayed full (a busy loop that took a tenth of a SQLite worker's CPU).
            if loop.time() >= next_poll:
                next_poll = loop.time() + self.settings.poll_seconds
                self._queue_may_have_work = True
            if free > 0 and self._queue_may_have_work:
                self._queue_may_have_work = False
                for task in await self._claim(free):
                    self._launch(task)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, next_poll - loop.time()))
            except TimeoutError:
                pass

    async def _claim(self, free: int) -> list[Task]:
        try:
            async with self.sessions.begin() as session:
                claimed = await LeaseRepository(session).claim(self.worker_id, free, self.settings.lease_seconds)
        except (SQLAlchemyError, OSError) as exc:
            # The database may be restarting; the queue is still there at the next poll.
            self.stats.claim_errors_total += 1
            log.warning("claiming tasks failed: %s", exc)
            self._queue_may_have_work = True
            return []
        if len(claimed) == free:
            self._queue_may_have_work = True
        return claimed

    def _launch(self, task: Task) -> None:
        running = self._runs.get(task.id)
        if running is not None and not running.done():
            # Our own lease ran out during a stall and we claimed the task again: the run we
            # have is still going and its heartbeat renews the lease; a second would double it.
            return
        self.stats.claimed_total += 1
        self._runs[task.id] = asyncio.create_task(self._run(task), name=f"draftloop-run-{task.id}")

    def _stop_local(self, task_id: str, reason: StopReason) -> None:
        run = self._runs.get(task_id)
        if run is None or run.done() or task_id in self._stop_reasons:
            return
        log.info("stopping run of task %s: %s", task_id, reason.value)
        self._stop_reasons[task_id] = reason
        run.cancel()

    async def _run(self, task: Task) -> None:
        token = current_task_id.set(task.id)
        publisher: Publisher = (ApiRunPublisher(self.bus, task.id, task.stream_modes or [])
                                if task.kind == "run" else RunPublisher(self.bus, task.id))
        # Whether the run's end left its thread with no other run queued or running: then
        # nothing of it became claimable.
        ended_alone = False
        try:
            if task.resume_count > self.settings.max_resumes:
                # Every run of it stopped before it ended: a task that kills its workers, or a
                # database that keeps going away under it. Resuming it again would not end.
                log.error("giving up task %s: interrupted %d times", task.id, task.resume_count)
                ended_alone = await self.run_end.record(
                    task, Ending.FAILED, error=gave_up_message(task.resume_count, self.settings.max_resumes))
                return
            self.bus.post(task.id, STATUS, {"status": TaskStatus.RUNNING.value})
            await publisher.started(task)
            ending = await self.driver.drive(task, publisher, lambda: self._draining)
            if ending is Ending.DRAINED:
                log.info("run of task %s paused at a checkpoint for shutdown", task.id)
            else:
                ended_alone = await self.run_end.record(task, ending)
        except asyncio.CancelledError:
            reason = self._stop_reasons.get(task.id)
            if reason is None:
                raise
            # Our own stop request, handled: this task is no longer being cancelled, so the
            # clean-up below may await normally.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self._count_stop(reason)
            if task.kind == "run" and reason in (StopReason.CANCELLED, StopReason.DELETED):
                await drop_if_rolled_back(self.runtime, task)
        except Exception as exc:  # noqa: BLE001 - a lost database pauses the run, anything else fails it
            if storage_unreachable(exc):
                # Not failed: its lease lapses and a worker resumes it from the checkpoint once
                # storage is back (at most MAX_RESUMES times).
                log.error("run of task %s lost its storage (%s); it resumes once its lease expires", task.id, exc)
            else:
                node = publisher.failed_node or publisher.current_node
                log.warning("run of task %s failed in %s: %s", task.id, node or "executor", exc, exc_info=exc)
                # No token batch may land after the terminal status event.
                await publisher.aclose()
                ended_alone = await self.run_end.fail(task, failure_message(exc, node, self.runtime.deps.secrets),
                                                      type(exc).__name__)
        finally:
            await publisher.aclose()
            if self._runs.get(task.id) is asyncio.current_task():
                del self._runs[task.id]
            self._stop_reasons.pop(task.id, None)
            if not ended_alone:
                # Stopped, failed to record, or its thread has more runs: one may be claimable now.
                self._queue_may_have_work = True
            self._wakeup.set()
            current_task_id.reset(token)

    def _count_stop(self, reason: StopReason) -> None:
        if reason == StopReason.CANCELLED:
            self.stats.cancelled_total += 1
        elif reason == StopReason.LEASE_LOST:
            self.stats.lease_lost_total += 1
