"""The run driver: the one place that drives ``graph.astream``, for a service worker's task or
LangGraph API run and for `draftloop run` (app/cli/run.py).

It picks the graph's input (the request, a decision to resume with, or nothing: continue from
the checkpoint), streams the graph to a publisher (app/engine/publishers.py) and says how the
graph stopped (app/engine/run_end.py ``Ending``); what status that means is not decided here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, cast

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.schema import StreamEvent
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Durability, StateSnapshot, StreamMode

from app.engine.api_runs import EVENTS, langgraph_modes, run_config, run_context, run_input, wants_events
from app.engine.publishers import Publisher
from app.engine.run_end import Ending
from app.engine.run_settings import RunSettings
from app.engine.stats import RunStats
from app.graph_runtime import GraphRuntime
from graph.context import Dependencies, DraftloopContext
from graph.nodes.approval import InvalidDecision
from storage.leases import LeaseRepository
from storage.models import Task

log = logging.getLogger("draftloop.executor")

# "custom": what nodes write to the stream themselves (research reports each search as it ends).
STREAM_MODES: list[StreamMode] = ["tasks", "updates", "messages", "custom"]
# A task's params that are no request fields: its assistant and the graph context it lent.
TASK_CONTEXT_PARAMS = frozenset({"assistant_id", "quality_threshold", "max_revisions", "model"})


class _Input(enum.Enum):
    FINISHED = "finished"  # the thread's graph already ran to its end: nothing to feed it


def _never() -> bool:
    return False


def request_input(request: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The graph input of a new request (a new turn on a thread that had one). The params that
    go to the graph's context (an assistant's quality threshold, say) stay out of its request."""
    fields = {key: value for key, value in (params or {}).items() if key not in TASK_CONTEXT_PARAMS}
    return {"messages": [HumanMessage(request)], "request": fields}


def task_config(task: Task) -> RunnableConfig:
    # task_id: the finalize node writes the outcome to this row (a thread may hold several).
    # The task's own config names its creator, whose memory the graph uses (graph/memory.py).
    given = (task.config or {}).get("configurable") or {}
    return {"configurable": {**given, "thread_id": task.thread_id, "task_id": task.id}}


def decision_resume(snapshot: StateSnapshot, approved: bool, feedback: str = "", *, publish: bool = False,
                    attempt: int | None = None) -> dict[str, Any]:
    """The resume value that answers the approval ``snapshot`` waits on; raises InvalidDecision
    for an ``attempt`` that is not on offer."""
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
    return resume


async def stream_graph(graph: CompiledStateGraph[Any, Any, Any, Any], graph_input: Any, config: RunnableConfig,
                       publisher: Publisher, *, context: DraftloopContext, stream_mode: list[StreamMode],
                       durability: Durability = "sync", interrupt_before: list[str] | None = None,
                       interrupt_after: list[str] | None = None, draining: Callable[[], bool] = _never,
                       events: bool = False) -> bool:
    """Stream the graph into ``publisher``; False when ``draining`` stopped it at a node
    boundary. ``events``: also hand it every astream_events (v2) event, as ("events", event)."""
    kwargs: dict[str, Any] = {"context": context, "stream_mode": stream_mode, "durability": durability,
                              "interrupt_before": interrupt_before, "interrupt_after": interrupt_after}
    # Both are async generators: closed here so that a drained run's generator unwinds now.
    stream = cast(AsyncGenerator[tuple[str, Any], None],
                  _with_events(graph.astream_events(graph_input, config, version="v2", **kwargs)) if events
                  else graph.astream(graph_input, config, **kwargs))
    async with aclosing(stream):
        async for mode, chunk in stream:
            if draining() and mode == "tasks" and "input" in chunk:
                # The previous step's checkpoint is saved and this node has not done anything
                # yet: the cheapest place to stop, nothing is redone on resume.
                return False
            await publisher.handle(mode, chunk)
    await publisher.flush()
    return True


async def _with_events(events: AsyncIterator[StreamEvent]) -> AsyncGenerator[tuple[str, Any], None]:
    """astream_events as (mode, chunk) pairs: the graph's own stream arrives as its root run's
    on_chain_stream events (the pairs astream would have yielded), every other event as
    ("events", event), in the order they happened."""
    async with aclosing(cast(AsyncGenerator[StreamEvent, None], events)) as stream:
        async for event in stream:
            if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                mode, chunk = event["data"]["chunk"]
                yield mode, chunk
            else:
                yield EVENTS, event


class RunDriver:
    """Drives a claimed task or LangGraph API run through the graph, from its checkpoint."""

    def __init__(self, runtime: GraphRuntime, deps: Dependencies, run_settings: RunSettings, stats: RunStats,
                 worker_id: str) -> None:
        self.runtime = runtime
        self.deps = deps
        self.run_settings = run_settings
        self.stats = stats
        self.worker_id = worker_id

    async def drive(self, task: Task, publisher: Publisher, draining: Callable[[], bool] = _never) -> Ending:
        return await (self._drive_run(task, publisher, draining) if task.kind == "run"
                      else self._drive_task(task, publisher, draining))

    async def _drive_task(self, task: Task, publisher: Publisher, draining: Callable[[], bool]) -> Ending:
        config = task_config(task)
        # A first claim with no decision to deliver starts from the request: no run of this task
        # has left a checkpoint to resume, so reading the thread's state would only cost time.
        resuming = task.run_count > 1 or bool(task.pending_command)
        snapshot = await self.runtime.graph.aget_state(config) if resuming else None
        graph_input = await self._choose_input(task, snapshot)
        if graph_input is _Input.FINISHED:
            # The graph ended before the task was marked (a crash in between): nothing to run.
            return Ending.FINISHED
        params = task.params or {}
        context = await self.run_settings.context_for_run(
            DraftloopContext(deps=self.deps, require_approval=params.get("require_approval"),
                             quality_threshold=params.get("quality_threshold"),
                             max_revisions=params.get("max_revisions")),
            model=params.get("model"))
        if not await stream_graph(self.runtime.graph, graph_input, config, publisher, draining=draining,
                                  context=context, stream_mode=STREAM_MODES, durability="sync"):
            return Ending.DRAINED
        # The content graph has no static breakpoints, so a stream that ends without raising
        # ended either at an interrupt (the "updates" mode reports it) or at the graph's end;
        # reading the state back to tell which would cost a checkpoint load per run.
        return Ending.PAUSED if publisher.interrupts else Ending.FINISHED

    async def _drive_run(self, task: Task, publisher: Publisher, draining: Callable[[], bool]) -> Ending:
        """A LangGraph API run: its own input, config, context and stream modes."""
        config = run_config(task)
        thread: RunnableConfig = {"configurable": {"thread_id": task.thread_id}}
        graph_input: Any = run_input(task)
        if task.run_count > 1:
            # A worker ran this before and stopped (crash, shutdown): continue from the
            # checkpoint its steps left instead of feeding the input a second time.
            snapshot = await self.runtime.graph.aget_state(thread)
            if (snapshot.metadata or {}).get("run_id") == task.id:
                if not snapshot.next:
                    return Ending.FINISHED
                graph_input = None
                config["configurable"].pop("checkpoint_id", None)
                self.stats.resumed_total += 1
        if not await stream_graph(
            self.runtime.graph, graph_input, config, publisher, draining=draining,
            context=await self.run_settings.context_for_run(run_context(task, self.deps),
                                                            model=(task.context or {}).get("model")),
            stream_mode=langgraph_modes(task.stream_modes or []),
            events=wants_events(task.stream_modes or []),
            interrupt_before=task.interrupt_before or None,
            interrupt_after=task.interrupt_after or None,
            # Checked against the Durability values when the run was created (app/http/lg_schemas.py).
            durability=cast(Durability, task.durability or "sync"),
        ):
            return Ending.DRAINED
        final = await self.runtime.graph.aget_state(thread)
        # An interrupt() or an interrupt_before/after breakpoint both leave the thread waiting.
        return Ending.PAUSED if final.interrupts or final.next else Ending.FINISHED

    async def _choose_input(self, task: Task, snapshot: StateSnapshot | None) -> Any:
        """What to feed the graph: a decision to resume with, None to continue from the
        checkpoint, or the request itself (``snapshot`` None: a first run)."""
        if snapshot is None:
            return request_input(task.request, task.params)
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
            async with self.runtime.sessions.begin() as session:
                await LeaseRepository(session).clear_pending_command(task.id, self.worker_id)
        if snapshot.next:
            self.stats.resumed_total += 1
            return None
        if snapshot.metadata is not None:
            return _Input.FINISHED
        return request_input(task.request, task.params)
