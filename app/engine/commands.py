"""What controllers call: queue a task or a LangGraph API run, cancel, answer an approval.

Each writes the row and its ``status`` event together, then wakes the dispatcher (in this
process, and through ``wake`` the others it reaches) so a worker picks the work up at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.api_runs import END
from app.engine.driver import decision_resume, task_config
from app.engine.events import STATUS, Event, EventBus
from app.engine.rollback import forget_run
from app.engine.webhooks import ThreadValues, planned_delivery
from app.graph_runtime import GraphRuntime
from storage.models import Task, TaskStatus
from storage.notifications import QUEUE_CHANNEL, notify
from storage.tasks import TaskNotFound, TaskRepository, queue_new_task
from storage.threads import ThreadRepository
from storage.webhooks import DeliveryRepository


class DecisionConflict(RuntimeError):
    """An approval decision for a task that is not awaiting approval (HTTP 409)."""

    def __init__(self, task_id: str, status: TaskStatus | str) -> None:
        status_value = TaskStatus(status).value
        super().__init__(f"task {task_id} is {status_value}, not awaiting_approval")
        self.task_id = task_id
        self.status = TaskStatus(status)


class ThreadBusy(RuntimeError):
    """A run with multitask_strategy 'reject' on a thread that has a run queued or running (HTTP 409)."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id} is busy: a run is pending or running")
        self.thread_id = thread_id


def owner_config(owner: str | None) -> dict[str, Any] | None:
    """A task's graph config naming its creator under the key a LangGraph API run of theirs
    carries (app/http/runs.py start_run), so both share one memory; None without one."""
    return {"configurable": {"langgraph_auth_user_id": owner}} if owner else None


async def _nothing_to_wait_for(task_id: str) -> None:
    return None


class RunCommands:
    """The engine as controllers see it. ``wake``: work was queued; ``stop_local``: a task was
    cancelled, stop its run if this process drives it; ``stopped``: returns once this process's
    run of a task (if any) has stopped (the dispatcher gives them)."""

    def __init__(self, runtime: GraphRuntime, bus: EventBus, *, wake: Callable[[], None],
                 stop_local: Callable[[str], None], values: ThreadValues,
                 stopped: Callable[[str], Awaitable[None]] = _nothing_to_wait_for) -> None:
        self.runtime = runtime
        self.bus = bus
        # The thread's values for the webhook of a run cancelled here.
        self.values = values
        self._wake = wake
        self._stop_local = stop_local
        self._stopped = stopped

    async def enqueue(self, request: str, params: Mapping[str, Any] | None = None, *, thread_id: str | None = None,
                      webhook: str | None = None, owner: str | None = None) -> Task:
        """Queue a new task: the row and its ``queued`` event commit together (a worker could
        otherwise claim the row and publish ``running`` before ``queued`` exists), then wake.

        ``thread_id`` defaults to a fresh id; the finalize node finds the row through it.
        ``owner``: the user who asked, whose memory the run reads and writes (graph/memory.py).
        """
        metadata = {"graph_id": "draftloop"}
        queued = {"status": TaskStatus.QUEUED.value}
        config = owner_config(owner)
        if thread_id is None:
            # The hot path of POST /api/tasks: one statement on Postgres (storage.tasks).
            new = await queue_new_task(
                self.runtime.writes, request=request, params=dict(params or {}),
                thread_metadata=metadata, event_type=STATUS, event_data=queued, notify_channel=QUEUE_CHANNEL,
                webhook=webhook, config=config)
            task = new.task
            event = Event(id=new.event_id, task_id=task.id, type=STATUS, data=queued, created_at=task.created_at)
        else:
            async with self.runtime.sessions.begin() as session:
                task = await TaskRepository(session).create(request=request, params=dict(params or {}),
                                                            thread_id=thread_id, webhook=webhook, config=config)
                # A task is a thread with one run: LangGraph API clients (Studio) see it as one.
                threads = ThreadRepository(session)
                if await threads.get(task.thread_id) is None:
                    await threads.create(task.thread_id, {**metadata, "task_id": task.id})
                await threads.after_run(task.thread_id, task.id, TaskStatus.QUEUED)
                event = await self.bus.record(session, task.id, STATUS, queued, new_task=True)
                await notify(session, QUEUE_CHANNEL)
        self.bus.announce([event])
        self._wake()
        return task

    async def enqueue_run(self, thread_id: str, run: Mapping[str, Any], *, reject_if_busy: bool = False) -> Task:
        """Queue a LangGraph API run on an existing thread (``run``: the run columns).

        Runs of one thread run one at a time in order (the claim enforces it). With
        ``reject_if_busy`` a thread with a run queued or running raises ThreadBusy instead.
        """
        async with self.runtime.sessions.begin() as session:
            task, event = await self.queue_run_in(session, thread_id, run, reject_if_busy=reject_if_busy)
        self.queued([event])
        return task

    async def queue_run_in(self, session: AsyncSession, thread_id: str, run: Mapping[str, Any], *,
                           reject_if_busy: bool = False) -> tuple[Task, Event]:
        """enqueue_run's writes in the caller's transaction (the cron scheduler claims a tick
        and queues its run in one); after the commit the caller hands the event to queued()."""
        tasks = TaskRepository(session)
        if reject_if_busy and await tasks.active_run_ids(thread_id):
            raise ThreadBusy(thread_id)
        task = await tasks.create(thread_id=thread_id, run=dict(run))
        await ThreadRepository(session).after_run(thread_id, task.id, TaskStatus.QUEUED)
        event = await self.bus.record(session, task.id, STATUS, {"status": TaskStatus.QUEUED.value}, new_task=True)
        await notify(session, QUEUE_CHANNEL)
        return task, event

    def queued(self, events: list[Event]) -> None:
        """Committed runs: their followers and the dispatchers learn of them."""
        if events:
            self.bus.announce(events)
            self._wake()

    async def cancel(self, task_id: str) -> bool:
        """Cancel a task wherever it runs. True if this call cancelled it, False if it had
        already ended (completed, failed or cancelled). Raises TaskNotFound.

        The row and its ``status`` event are written first; a run in this process is stopped
        at once, one in another process at its next cancel check (a fraction of a second).
        The checkpoint is kept.
        """
        events: list[Event] = []
        async with self.runtime.sessions.begin() as session:
            tasks = TaskRepository(session)
            changed = await tasks.cancel(task_id)
            if changed:
                events.append(await self.bus.record(session, task_id, STATUS, {"status": TaskStatus.CANCELLED.value}))
                task = await tasks.require(task_id)
                await ThreadRepository(session).after_run(task.thread_id, task.id, TaskStatus.CANCELLED)
                # The webhook of a cancelled run: in the outbox with the cancel, like any end, with
                # the values of the thread's last checkpoint.
                values = await self.values.of(task) if task.webhook else None
                if (webhook := planned_delivery(task, TaskStatus.CANCELLED, task.updated_at,
                                                values=values)) is not None:
                    await DeliveryRepository(session).plan(webhook, task.id, now=task.updated_at)
                if task.kind == "run":
                    events.append(await self.bus.record(session, task_id, END, {"payload": None}))
        self.bus.announce(events)
        self._stop_local(task_id)
        return changed

    async def rollback(self, task_id: str) -> bool:
        """Cancel a run, then delete it and the checkpoints it wrote, so its thread is as it
        was before the run (app/engine/rollback.py). False, deleting nothing, when it had
        already ended. Raises TaskNotFound."""
        async with self.runtime.sessions() as session:
            run = await TaskRepository(session).require(task_id)
        if not await self.cancel(task_id):
            return False
        # A run this process drives may be saving a checkpoint as it unwinds.
        await self._stopped(task_id)
        await forget_run(self.runtime, run)
        return True

    async def submit_decision(self, task_id: str, approved: bool, feedback: str = "", publish: bool = False,
                              attempt: int | None = None, decisions: list[Any] | None = None) -> None:
        """Answer the approval a task waits on; the task is queued and a worker resumes it
        (approve -> finalize, reject -> a new draft with ``feedback``). ``publish`` with an
        approval publishes the post finalize makes. ``decisions`` (LangChain's standard answer,
        already parsed by the caller) replaces the other fields; what only the thread's state
        can judge (an edit the gates fail) the graph asks again.

        Raises TaskNotFound, or DecisionConflict when the task is not awaiting approval.
        """
        async with self.runtime.sessions() as session:
            task = await TaskRepository(session).require(task_id)
        if task.status != TaskStatus.AWAITING_APPROVAL.value:
            raise DecisionConflict(task_id, task.status)
        snapshot = await self.runtime.graph.aget_state(task_config(task))
        # The decision is for this interrupt only: if the graph has moved on by the time a worker
        # picks it up (see RunDriver._choose_input), it must not answer a later one.
        interrupt_id = snapshot.interrupts[0].id if snapshot.interrupts else None
        resume = ({"decisions": list(decisions)} if decisions is not None
                  else decision_resume(snapshot, approved, feedback, publish=publish, attempt=attempt))
        command = {"resume": resume, "interrupt_id": interrupt_id}
        async with self.runtime.sessions.begin() as session:
            repo = TaskRepository(session)
            queued = await repo.queue_decision(task_id, command)
            event = await self.bus.record(session, task_id, STATUS, {"status": TaskStatus.QUEUED.value}) if queued else None
            current = None if queued else await repo.status_of(task_id)
            if queued:
                await notify(session, QUEUE_CHANNEL)
        if event is None:
            if current is None:
                raise TaskNotFound(task_id)
            raise DecisionConflict(task_id, current)
        self.bus.announce([event])
        self._wake()
