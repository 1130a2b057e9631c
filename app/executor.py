"""Durable background runs: tasks queue in the database and workers lease them.

One Executor per service process. Its dispatcher claims queued tasks (and tasks whose worker
died: their lease expired) up to ``settings.concurrency`` at a time and drives each through the
graph in an asyncio task of its own, publishing progress on the EventBus. Leases are extended
every ``heartbeat_seconds``; several times a second one cheap query checks the tasks running
here, so a cancel written by any process stops the run within a second.

Every run resumes from the thread's checkpoint, so a run that stopped anywhere — a crash, a
shutdown, a lost lease, an approval — continues where it left off without repeating finished
nodes. The task row is the source of truth for status; every status change is written together
with its ``status`` event in one transaction, so the event log and the row never disagree.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import psycopg
from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command, Interrupt, StateSnapshot
from sqlalchemy.exc import SQLAlchemyError

from app.events import (
    ATTEMPT_SCORED,
    ERROR,
    INTERRUPT,
    NODE_FINISHED,
    NODE_STARTED,
    RESEARCH_QUERY,
    STATUS,
    TOKEN,
    Event,
    EventBus,
)
from app.graph_runtime import GraphRuntime
from app.logs import current_task_id
from app.run_settings import RunSettings
from app.runs import (
    API_ERROR,
    END,
    METADATA,
    ApiRunPublisher,
    langgraph_modes,
    run_config,
    run_context,
    run_input,
    wanted_modes,
)
from app.service_settings import ServiceSettings
from graph.builder import tries_before_failure
from graph.context import Dependencies, DraftloopContext, OutcomeSaver
from graph.nodes.approval import InvalidDecision
from storage.errors import storage_unreachable
from storage.leases import LeaseRepository, LeaseState, end_run
from storage.models import Task, TaskStatus, ThreadStatus
from storage.notifications import QUEUE_CHANNEL, TASK_CHANNEL, notify
from storage.tasks import TaskNotFound, TaskRepository, queue_new_task
from storage.threads import ThreadRepository
from tools.errors import summarise
from tools.llm.errors import ModelCallError, ModelProviderError

log = logging.getLogger("draftloop.executor")

# "custom": what nodes write to the stream themselves (research reports each search as it ends).
STREAM_MODES = ["tasks", "updates", "messages", "custom"]
# Nodes whose model output is prose worth streaming; the others produce JSON for the graph.
TOKEN_NODES = frozenset({"draft", "answer"})
TOKEN_FLUSH_SECONDS = 0.1
TOKEN_FLUSH_COUNT = 50
# A research summary names this many queries, each cut to this many characters.
SUMMARY_QUERIES = 7
SUMMARY_QUERY_CHARS = 60
# Often enough that a cancel made in another process stops the run well within a second.
DEFAULT_CANCEL_CHECK_SECONDS = 0.25
MAX_ERROR_CHARS = 1000
# Failures the database itself reported: the run did reach it, and it refused what was sent.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, asyncpg.PostgresError, psycopg.Error,
                                                    sqlite3.Error)


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


class StopReason(enum.StrEnum):
    """Why the executor cancelled a run's asyncio task; decides what happens to the row."""

    CANCELLED = "cancelled"  # a user cancelled: the row already says so
    LEASE_LOST = "lease_lost"  # another worker owns it now: leave the row alone
    DELETED = "deleted"  # the row is gone
    SHUTDOWN = "shutdown"  # this process stops: hand the task back to the queue


class _RunEnd(enum.Enum):
    DRAINED = "drained"  # stopped at a checkpoint boundary because the executor is stopping


class _Input(enum.Enum):
    FINISHED = "finished"  # the thread's graph already ran to its end: nothing to feed it


@dataclass
class ExecutorStats:
    """Counters since start, for /metrics."""

    claimed_total: int = 0
    completed_total: int = 0
    failed_total: int = 0
    cancelled_total: int = 0
    awaiting_approval_total: int = 0
    released_total: int = 0
    lease_lost_total: int = 0
    resumed_total: int = 0  # runs that continued from a checkpoint instead of starting fresh
    claim_errors_total: int = 0


def keep_running_outcome(save: OutcomeSaver | None) -> OutcomeSaver | None:
    """The finalize node's writer, but leaving the task ``running``.

    The executor marks the task completed together with the terminal ``status`` event once the
    run has really ended; if finalize's own write flipped the status, a follower could see a
    completed task whose terminal event does not exist yet (or ever, after a crash there).
    """
    if save is None:
        return None

    async def save_keeping_running(outcome: dict[str, Any]) -> None:
        await save({**outcome, "status": TaskStatus.RUNNING.value})

    return save_keeping_running


def failure_message(exc: BaseException, node: str | None, secrets: Sequence[str] = ()) -> str:
    """The task's ``error``, written for whoever reads the task (any viewer may): the step that
    failed, the kind of failure and what to do about it. The exception's own text (SQL and its
    parameters, a driver's message, a server's address) goes to the log, never here. What is
    quoted is redacted of ``secrets`` before it is cut (tools.errors.summarise)."""
    where = f"{node} failed" if node else "the run failed"
    if isinstance(exc, ModelCallError):
        # The node's tries times the client's own (openai's LLM_MAX_RETRIES; 1 for Ollama).
        tries = tries_before_failure(node, exc) * exc.client_tries
        text = f"{where}: {exc.summary}{f' after {tries} tries' if tries > 1 else ''}; {exc.hint}"
    elif isinstance(exc, ModelProviderError):
        # Written for people already: what is wrong with the model set-up and the fix.
        text = f"{where}: {' '.join(str(exc).split())}"
    elif isinstance(exc, DATABASE_ERRORS):
        text = (f"{where}: the database refused to store its work ({type(exc).__name__}); "
                "the service log has the details")
    else:
        text = f"{where}: an unexpected error ({type(exc).__name__}); the service log has the details"
    return summarise(text, secrets, MAX_ERROR_CHARS)


def gave_up_message(resumes: int, max_resumes: int) -> str:
    """The error of a task whose runs kept stopping before they could end."""
    return (f"the run failed: it was interrupted {resumes} times before it could finish (its worker stopped, "
            f"or lost the database, each time) and was given up after {max_resumes} resumes (MAX_RESUMES); "
            "the service log says why the runs stopped")


def node_summary(node: str, update: Mapping[str, Any]) -> str:
    """A one-line account of what a node did, for progress displays."""
    if node == "route_intent":
        intent = update.get("intent") or {}
        request = update.get("request") or {}
        kind = " ".join(str(part) for part in (intent.get("kind"), intent.get("content_type")) if part)
        words = request.get("target_words")
        return f"{kind or 'unknown'} request" + (f", {words} words" if words else "")
    if node == "research":
        return research_summary(update.get("research") or {})
    if node == "draft":
        draft = update.get("draft") or {}
        return f"draft {draft.get('number')}: {draft.get('word_count')} words"
    if node == "critique":
        attempts = update.get("attempts") or []
        if attempts:
            last = attempts[-1]
            verdict = "passed" if last.get("passed") else "below threshold"
            return f"attempt {last.get('number')} scored {last.get('score')} ({verdict})"
        return "critique done"
    if node == "approval":
        decision = update.get("approval") or {}
        return "approved" if decision.get("approved") else "rejected: drafting again"
    if node == "finalize":
        result = update.get("result") or {}
        return f"{result.get('title', '')} — {result.get('word_count', 0)} words, score {result.get('score')}"
    return f"{node} done"


def research_summary(research: Mapping[str, Any]) -> str:
    """Sources, pages read and the searches of the research round that just ran, by query."""
    queries = [q for q in research.get("queries") or [] if isinstance(q, Mapping)]
    revision = max((int(q.get("revision") or 0) for q in queries), default=0)
    searches = [q for q in queries if int(q.get("revision") or 0) == revision and q.get("kind") != "images"]
    named = list(dict.fromkeys(str(q.get("query") or "") for q in searches))
    shown = ", ".join(f"'{_clip(q, SUMMARY_QUERY_CHARS)}'" for q in named[:SUMMARY_QUERIES])
    if len(named) > SUMMARY_QUERIES:
        shown += f" and {len(named) - SUMMARY_QUERIES} more"
    sources = research.get("sources") or []
    pages = sum(1 for s in sources if isinstance(s, Mapping) and s.get("evidence"))
    text = (f"{len(sources)} sources ({pages} pages read) from {len(searches)} searches"
            + (f": {shown}" if shown else ""))
    text += f"; {len(research.get('images') or [])} images, {len(research.get('warnings') or [])} warnings"
    return f"revision {revision} research: {text}" if revision else text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunPublisher:
    """Turns one run's LangGraph stream into events, in stream order.

    Tokens are batched (every ``flush_seconds`` or ``flush_count`` tokens) so that a long draft
    becomes dozens of rows rather than thousands; any other event flushes pending tokens first.
    """

    def __init__(
        self,
        bus: EventBus,
        task_id: str,
        *,
        flush_seconds: float = TOKEN_FLUSH_SECONDS,
        flush_count: int = TOKEN_FLUSH_COUNT,
    ) -> None:
        self.bus = bus
        self.task_id = task_id
        self.flush_seconds = flush_seconds
        self.flush_count = flush_count
        self.current_node: str | None = None
        self.failed_node: str | None = None
        self.interrupts: list[Interrupt] = []
        self._tokens: list[str] = []
        self._token_node: str | None = None
        self._tokens_since = 0.0
        self._timer: asyncio.Task[None] | None = None
        # One writer at a time keeps ids in stream order (the flush timer is a second writer).
        self._lock = asyncio.Lock()

    async def handle(self, mode: str, chunk: Any) -> None:
        if mode == "messages":
            message, meta = chunk
            node = meta.get("langgraph_node") if isinstance(meta, Mapping) else None
            if node in TOKEN_NODES and isinstance(message, AIMessageChunk) and isinstance(message.content, str):
                if message.content:
                    await self._token(str(node), message.content)
            return
        await self.flush()
        if mode == "custom":
            if isinstance(chunk, Mapping) and chunk.get("type") == RESEARCH_QUERY:
                await self._publish(RESEARCH_QUERY, {k: v for k, v in chunk.items() if k != "type"})
            return
        if mode == "tasks":
            if "input" in chunk:
                self.current_node = chunk["name"]
                await self._publish(NODE_STARTED, {"node": chunk["name"]})
            elif chunk.get("error") is not None:
                self.failed_node = chunk["name"]
        elif mode == "updates":
            for node, update in chunk.items():
                if node == "__interrupt__":
                    for item in update:
                        self.interrupts.append(item)
                        await self._publish(INTERRUPT, {"value": item.value, "id": item.id})
                    continue
                values = update if isinstance(update, Mapping) else {}
                for attempt in values.get("attempts") or []:
                    await self._publish(ATTEMPT_SCORED, {
                        "number": attempt.get("number"),
                        "score": attempt.get("score"),
                        "passed": bool(attempt.get("passed")),
                        "dimensions": attempt.get("dimensions") or {},
                    })
                await self._publish(NODE_FINISHED, {"node": node, "summary": node_summary(node, values)})
                if self.current_node == node:
                    self.current_node = None

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def aclose(self) -> None:
        """Stop the flush timer; tokens still buffered are dropped (the run is over anyway)."""
        if self._timer is not None and not self._timer.done():
            await _cancel_and_wait(self._timer)
        self._timer = None

    async def _token(self, node: str, text: str) -> None:
        if self._token_node not in (None, node):
            await self.flush()
        if not self._tokens:
            self._tokens_since = time.monotonic()
        self._tokens.append(text)
        self._token_node = node
        if len(self._tokens) >= self.flush_count or time.monotonic() - self._tokens_since >= self.flush_seconds:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later(), name=f"draftloop-tokens-{self.task_id}")

    async def _flush_later(self) -> None:
        # A model that stalls mid-draft still shows what it wrote so far.
        await asyncio.sleep(self.flush_seconds)
        await self.flush()

    async def _flush_locked(self) -> None:
        if not self._tokens:
            return
        text, node = "".join(self._tokens), self._token_node
        self._tokens.clear()
        self._token_node = None
        self.bus.post(self.task_id, TOKEN, {"node": node, "text": text})

    async def _publish(self, event_type: str, data: dict[str, Any]) -> None:
        async with self._lock:
            await self._flush_locked()
            self.bus.post(self.task_id, event_type, data)
            if event_type == NODE_STARTED:
                # A node that started is on record before it does anything, even if this process
                # is killed during it (a resumed run then shows it starting twice).
                await self.bus.flush()


class Executor:
    def __init__(
        self,
        runtime: GraphRuntime,
        settings: ServiceSettings,
        bus: EventBus,
        *,
        cancel_check_seconds: float = DEFAULT_CANCEL_CHECK_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.bus = bus
        self.sessions = runtime.sessions
        self.worker_id = settings.worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.concurrency = max(1, settings.concurrency)
        self.cancel_check_seconds = cancel_check_seconds
        self.stats = ExecutorStats()
        self._deps: Dependencies = replace(runtime.deps, save_outcome=keep_running_outcome(runtime.deps.save_outcome))
        # The settings registry: applied to every run start and to the claim size (app/run_settings.py).
        self.run_settings = RunSettings(runtime.sessions, runtime.deps, settings)
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._stop_reasons: dict[str, StopReason] = {}
        self._wakeup = asyncio.Event()
        # Whether a claim could find work: a run ending frees a slot, but when the last claim
        # came back short the queue held nothing claimable, and asking again after every run
        # (100 empty claims at the end of a batch) cost the workers more than the claims that
        # found work. New tasks, decisions and other workers' hand-backs wake() with it set;
        # the periodic poll claims regardless.
        self._queue_may_have_work = True
        # Runs whose end left their thread with no other run queued or running: nothing of
        # theirs became claimable.
        self._ended_alone: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._dispatcher: asyncio.Task[None] | None = None
        self._draining = False
        self._started = False
        # Set by the HTTP service when its supervised workers need telling that work was queued
        # (app/supervisor.py: on SQLite, where no NOTIFY reaches them).
        self.wake_others: Callable[[], None] | None = None

    # -- public API ---------------------------------------------------------------------------

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
        await self._release(None, interrupted=True)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="draftloop-dispatcher")
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="draftloop-heartbeat"),
            asyncio.create_task(self._watch_loop(), name="draftloop-cancel-check"),
        ]
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
            await _cancel_and_wait(self._dispatcher)
            self._dispatcher = None
        runs = dict(self._runs)
        if runs:
            _, pending = await asyncio.wait(set(runs.values()), timeout=grace)
            for task_id, run in runs.items():
                if run in pending:
                    self._stop_reasons.setdefault(task_id, StopReason.SHUTDOWN)
                    run.cancel()
            await asyncio.gather(*runs.values(), return_exceptions=True)
        for loop in self._loops:
            await _cancel_and_wait(loop)
        self._loops = []
        # Everything still leased to this worker: paused or cancelled runs, and any claim whose
        # run never started.
        await self._release(None)
        await self.run_settings.aclose()
        self._started = False
        log.info("executor %s stopped", self.worker_id)

    async def enqueue(self, request: str, params: Mapping[str, Any] | None = None, *, thread_id: str | None = None) -> Task:
        """Queue a new task: the row and its ``queued`` event commit together (a worker could
        otherwise claim the row and publish ``running`` before ``queued`` exists), then wake.

        ``thread_id`` defaults to a fresh id; the finalize node finds the row through it.
        """
        metadata = {"graph_id": "draftloop"}
        queued = {"status": TaskStatus.QUEUED.value}
        if thread_id is None:
            # The hot path of POST /api/tasks: one statement on Postgres (storage.tasks).
            new = await queue_new_task(
                self.runtime.writes, request=request, params=dict(params or {}),
                thread_metadata=metadata, event_type=STATUS, event_data=queued, notify_channel=QUEUE_CHANNEL)
            task = new.task
            event = Event(id=new.event_id, task_id=task.id, type=STATUS, data=queued, created_at=task.created_at)
        else:
            async with self.sessions.begin() as session:
                task = await TaskRepository(session).create(request=request, params=dict(params or {}), thread_id=thread_id)
                # A task is a thread with one run: LangGraph API clients (Studio) see it as one.
                threads = ThreadRepository(session)
                if await threads.get(task.thread_id) is None:
                    await threads.create(task.thread_id, {**metadata, "task_id": task.id})
                await threads.after_run(task.thread_id, task.id, TaskStatus.QUEUED)
                event = await self.bus.record(session, task.id, STATUS, queued, new_task=True)
                await notify(session, QUEUE_CHANNEL)
        self.bus.announce([event])
        self.wake()
        return task

    async def enqueue_run(self, thread_id: str, run: Mapping[str, Any], *, reject_if_busy: bool = False) -> Task:
        """Queue a LangGraph API run on an existing thread (``run``: the run columns).

        Runs of one thread run one at a time in order (the claim enforces it). With
        ``reject_if_busy`` a thread with a run queued or running raises ThreadBusy instead.
        """
        async with self.sessions.begin() as session:
            tasks = TaskRepository(session)
            if reject_if_busy and await tasks.active_run_ids(thread_id):
                raise ThreadBusy(thread_id)
            task = await tasks.create(thread_id=thread_id, run=dict(run))
            await ThreadRepository(session).after_run(thread_id, task.id, TaskStatus.QUEUED)
            event = await self.bus.record(session, task.id, STATUS, {"status": TaskStatus.QUEUED.value}, new_task=True)
            await notify(session, QUEUE_CHANNEL)
        self.bus.announce([event])
        self.wake()
        return task

    def wake(self) -> None:
        """A task was queued: claim now instead of at the next poll, and wake the other
        processes that ``wake_others`` reaches."""
        self._queue_may_have_work = True
        self._wakeup.set()
        if self.wake_others is not None:
            self.wake_others()

    async def cancel(self, task_id: str) -> bool:
        """Cancel a task wherever it runs. True if this call cancelled it, False if it had
        already ended (completed, failed or cancelled). Raises TaskNotFound.

        The row and its ``status`` event are written first; a run in this process is stopped
        at once, one in another process at its next cancel check (a fraction of a second).
        The checkpoint is kept.
        """
        events: list[Event] = []
        async with self.sessions.begin() as session:
            tasks = TaskRepository(session)
            changed = await tasks.cancel(task_id)
            if changed:
                events.append(await self.bus.record(session, task_id, STATUS, {"status": TaskStatus.CANCELLED.value}))
                task = await tasks.require(task_id)
                await ThreadRepository(session).after_run(task.thread_id, task.id, TaskStatus.CANCELLED)
                if task.kind == "run":
                    events.append(await self.bus.record(session, task_id, END, {"payload": None}))
        self.bus.announce(events)
        self._stop_local(task_id, StopReason.CANCELLED)
        return changed

    async def submit_decision(self, task_id: str, approved: bool, feedback: str = "", publish: bool = False,
                              attempt: int | None = None) -> None:
        """Answer the approval a task waits on; the task is queued and a worker resumes it
        (approve -> finalize, reject -> a new draft with ``feedback``). ``publish`` with an
        approval publishes the post finalize makes.

        Raises TaskNotFound, or DecisionConflict when the task is not awaiting approval.
        """
        async with self.sessions() as session:
            task = await TaskRepository(session).require(task_id)
        if task.status != TaskStatus.AWAITING_APPROVAL.value:
            raise DecisionConflict(task_id, task.status)
        snapshot = await self.runtime.graph.aget_state(_config(task))
        # The decision is for this interrupt only: if the graph has moved on by the time a worker
        # picks it up (see _choose_input), it must not answer a later one.
        interrupt_id = snapshot.interrupts[0].id if snapshot.interrupts else None
        resume: dict[str, Any] = {"approved": bool(approved), "feedback": feedback or ""}
        if approved and publish:
            resume["publish"] = True
        if approved and attempt is not None:
            offered = snapshot.interrupts[0].value if snapshot.interrupts else {}
            choices = [offered.get("attempt"), *(a.get("attempt") for a in offered.get("alternatives") or [])]
            if attempt not in choices:
                raise InvalidDecision("attempt", f"{attempt} is not on offer; choose one of "
                                                 f"{', '.join(str(c) for c in choices if c is not None)}")
            resume["attempt"] = attempt
        command = {"resume": resume, "interrupt_id": interrupt_id}
        async with self.sessions.begin() as session:
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
        self.wake()

    # -- loops --------------------------------------------------------------------------------

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
                try:
                    async with self.sessions.begin() as session:
                        claimed = await LeaseRepository(session).claim(self.worker_id, free, self.settings.lease_seconds)
                except (SQLAlchemyError, OSError) as exc:
                    # The database may be restarting; the queue is still there at the next poll.
                    self.stats.claim_errors_total += 1
                    log.warning("claiming tasks failed: %s", exc)
                    claimed = []
                    self._queue_may_have_work = True
                if len(claimed) == free:
                    self._queue_may_have_work = True
                for task in claimed:
                    self._launch(task)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, next_poll - loop.time()))
            except TimeoutError:
                pass

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            task_ids = list(self._runs)
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
            self._apply_lease_states(task_ids, states)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cancel_check_seconds)
            task_ids = list(self._runs)
            if not task_ids:
                continue
            try:
                async with self.sessions() as session:
                    states = await LeaseRepository(session).lease_states(self.worker_id, task_ids)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("cancel check failed: %s", exc)
                continue
            self._apply_lease_states(task_ids, states)

    def _apply_lease_states(self, task_ids: list[str], states: dict[str, LeaseState]) -> None:
        for task_id in task_ids:
            state = states.get(task_id)
            if state is None:
                self._stop_local(task_id, StopReason.DELETED)
            elif state.held:
                continue
            elif state.status == TaskStatus.CANCELLED:
                self._stop_local(task_id, StopReason.CANCELLED)
            elif state.status == TaskStatus.RUNNING or state.status == TaskStatus.QUEUED:
                self._stop_local(task_id, StopReason.LEASE_LOST)
            # Completed, failed or awaiting approval: the run itself just wrote that and is ending.

    # -- one run ------------------------------------------------------------------------------

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
        publisher: RunPublisher | ApiRunPublisher = (
            ApiRunPublisher(self.bus, task.id, wanted_modes(task.stream_modes or [])) if task.kind == "run"
            else RunPublisher(self.bus, task.id)
        )
        try:
            if task.resume_count > self.settings.max_resumes:
                # Every run of it stopped before it ended: a task that kills its workers, or a
                # database that keeps going away under it. Resuming it again would not end.
                log.error("giving up task %s: interrupted %d times", task.id, task.resume_count)
                await self._end(task, TaskStatus.FAILED, error=gave_up_message(task.resume_count, self.settings.max_resumes))
                return
            self.bus.post(task.id, STATUS, {"status": TaskStatus.RUNNING.value})
            if isinstance(publisher, ApiRunPublisher):
                # Every (re)start of a run says so first, as langgraph-api does.
                await publisher.publish(METADATA, {"run_id": task.id, "attempt": task.run_count})
            ended = await (self._drive_run(task, publisher) if isinstance(publisher, ApiRunPublisher)
                           else self._drive(task, publisher))
            if ended is _RunEnd.DRAINED:
                log.info("run of task %s paused at a checkpoint for shutdown", task.id)
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
                await self._fail(task, failure_message(exc, node, self._deps.secrets), type(exc).__name__)
        finally:
            await publisher.aclose()
            if self._runs.get(task.id) is asyncio.current_task():
                del self._runs[task.id]
            self._stop_reasons.pop(task.id, None)
            if task.id not in self._ended_alone:
                # Stopped, failed to record, or its thread has more runs: one may be claimable now.
                self._queue_may_have_work = True
            self._ended_alone.discard(task.id)
            self._wakeup.set()
            current_task_id.reset(token)

    async def _drive(self, task: Task, publisher: RunPublisher) -> _RunEnd | None:
        config = _config(task)
        graph = self.runtime.graph
        # A first claim with no decision to deliver starts from the request: no run of this task
        # has left a checkpoint to resume, so reading the thread's state would only cost time.
        resuming = task.run_count > 1 or bool(task.pending_command)
        snapshot = await graph.aget_state(config) if resuming else None
        graph_input = await self._choose_input(task, snapshot)
        if graph_input is _Input.FINISHED:
            # The graph ended before the task was marked (a crash in between): nothing to run.
            await self._end(task, TaskStatus.COMPLETED)
            return None
        params = task.params or {}
        context = await self.run_settings.context_for_run(
            DraftloopContext(deps=self._deps, require_approval=params.get("require_approval")))
        async with aclosing(graph.astream(
            graph_input, config, context=context, stream_mode=STREAM_MODES, durability="sync"
        )) as stream:
            async for mode, chunk in stream:
                if self._draining and mode == "tasks" and "input" in chunk:
                    # The previous step's checkpoint is saved and this node has not done anything
                    # yet: the cheapest place to stop, nothing is redone on resume.
                    return _RunEnd.DRAINED
                await publisher.handle(mode, chunk)
        await publisher.flush()
        # The content graph has no static breakpoints, so a stream that ends without raising
        # ended either at an interrupt (the "updates" mode reports it) or at the graph's end;
        # reading the state back to tell which would cost a checkpoint load per run.
        await self._end(task, TaskStatus.AWAITING_APPROVAL if publisher.interrupts else TaskStatus.COMPLETED)
        return None

    async def _drive_run(self, task: Task, publisher: ApiRunPublisher) -> _RunEnd | None:
        """A LangGraph API run: its own input, config, context and stream modes."""
        config = run_config(task)
        graph = self.runtime.graph
        graph_input: Any = run_input(task)
        if task.run_count > 1:
            # A worker ran this before and stopped (crash, shutdown): continue from the
            # checkpoint its steps left instead of feeding the input a second time.
            snapshot = await graph.aget_state({"configurable": {"thread_id": task.thread_id}})
            if (snapshot.metadata or {}).get("run_id") == task.id:
                if not snapshot.next:
                    await self._end(task, TaskStatus.COMPLETED)
                    return None
                graph_input = None
                config["configurable"].pop("checkpoint_id", None)
                self.stats.resumed_total += 1
        stream = graph.astream(
            graph_input,
            config,
            context=await self.run_settings.context_for_run(run_context(task, self._deps)),
            stream_mode=langgraph_modes(task.stream_modes or []),
            interrupt_before=task.interrupt_before or None,
            interrupt_after=task.interrupt_after or None,
            durability=task.durability or "sync",
        )
        async with aclosing(stream) as chunks:
            async for mode, chunk in chunks:
                if self._draining and mode == "tasks" and "input" in chunk:
                    return _RunEnd.DRAINED
                await publisher.handle(mode, chunk)
        final = await graph.aget_state({"configurable": {"thread_id": task.thread_id}})
        # An interrupt() or an interrupt_before/after breakpoint both leave the thread waiting.
        await self._end(task, TaskStatus.AWAITING_APPROVAL if final.interrupts or final.next else TaskStatus.COMPLETED)
        return None

    async def _choose_input(self, task: Task, snapshot: StateSnapshot | None) -> Any:
        """What to feed the graph: a decision to resume with, None to continue from the
        checkpoint, or the request itself (``snapshot`` None: a first run)."""
        if snapshot is None:
            return _request_input(task)
        command = task.pending_command or {}
        if "resume" in command:
            pending = {item.id for item in snapshot.interrupts}
            wanted = command.get("interrupt_id")
            if pending and (wanted is None or wanted in pending):
                self.stats.resumed_total += 1
                return Command(resume=command["resume"])
            # Taken in already (a crash after resuming): answering again would answer a later
            # interrupt with a stale decision.
            log.info("dropping a stale decision for task %s", task.id)
            async with self.sessions.begin() as session:
                await LeaseRepository(session).clear_pending_command(task.id, self.worker_id)
        if snapshot.next:
            self.stats.resumed_total += 1
            return None
        if snapshot.metadata is not None:
            return _Input.FINISHED
        return _request_input(task)

    async def _end(
        self, task: Task, status: TaskStatus, *, error: str | None = None, error_type: str = "RunError"
    ) -> None:
        """Record the end of this worker's run, its status event and the thread's status in one
        transaction (for an API run also its ``error`` and ``end`` events)."""
        is_run = task.kind == "run"
        planned: list[tuple[str, dict[str, Any]]] = []
        if error is not None:
            planned.append((API_ERROR if is_run else ERROR,
                            {"payload": {"error": error_type, "message": error}} if is_run else {"message": error}))
        planned.append((STATUS, {"status": status.value} if error is None else {"status": status.value, "error": error}))
        if is_run:
            planned.append((END, {"payload": None}))
        # The run's queued progress events come first: followers stop at the terminal status.
        await self.bus.flush()
        ended = await end_run(self.runtime.writes, task_id=task.id, thread_id=task.thread_id, worker_id=self.worker_id,
                              status=status, error=error, events=planned, channel=TASK_CHANNEL)
        if not ended.ended:
            # Cancelled or taken over while finishing: the newer state stands.
            log.info("task %s changed hands before its run could record %s", task.id, status.value)
            return
        events = [Event(id=event_id, task_id=task.id, type=event_type, data=data, created_at=ended.created_at)
                  for event_id, (event_type, data) in zip(ended.event_ids, planned, strict=True)]
        if ended.thread_status != ThreadStatus.BUSY:
            self._ended_alone.add(task.id)
        self.bus.announce(events)
        if status == TaskStatus.COMPLETED:
            self.stats.completed_total += 1
        elif status == TaskStatus.FAILED:
            self.stats.failed_total += 1
        elif status == TaskStatus.AWAITING_APPROVAL:
            self.stats.awaiting_approval_total += 1

    async def _fail(self, task: Task, message: str, error_type: str = "RunError") -> None:
        try:
            await self._end(task, TaskStatus.FAILED, error=message, error_type=error_type)
        except (SQLAlchemyError, OSError) as exc:
            # The lease runs out and another worker retries the task from its checkpoint.
            log.error("could not record the failure of task %s: %s", task.id, exc)

    def _count_stop(self, reason: StopReason) -> None:
        if reason == StopReason.CANCELLED:
            self.stats.cancelled_total += 1
        elif reason == StopReason.LEASE_LOST:
            self.stats.lease_lost_total += 1

    async def _release(self, task_ids: list[str] | None, *, interrupted: bool = False) -> None:
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


def _request_input(task: Task) -> dict[str, Any]:
    return {"messages": [HumanMessage(task.request)], "request": dict(task.params or {})}


def _config(task: Task) -> dict[str, Any]:
    # task_id: the finalize node writes the outcome to this row (a thread may hold several).
    return {"configurable": {"thread_id": task.thread_id, "task_id": task.id}}


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it to unwind, without swallowing a cancellation that
    is aimed at the caller itself."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
