"""Publishers: what a run's LangGraph stream becomes, chunk by chunk, in stream order.

One protocol (``Publisher``) for every consumer of a run's stream: task events
(``RunPublisher``), LangGraph API events (``ApiRunPublisher``) and the CLI's progress lines
(app/cli/run.py). ``StreamTracker`` is what they share: which node runs, which failed, and the
interrupts the run stopped at, read off the "tasks" and "updates" modes that every run streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from langchain_core.messages import AIMessageChunk, BaseMessage
from langgraph.types import Interrupt

from app.engine.api_messages import MessageStream
from app.engine.api_runs import (
    EVENTS,
    METADATA,
    QUIET_MESSAGE_NODES,
    debug_payload,
    jsonable,
    visible_event,
    wanted_modes,
    wants_events,
)
from app.engine.cancelling import cancel_and_wait
from app.engine.events import (
    ATTEMPT_SCORED,
    INTERRUPT,
    NODE_FINISHED,
    NODE_STARTED,
    RESEARCH_QUERY,
    TOKEN,
    EventBus,
)
from app.engine.messages import node_summary
from app.engine.run_log import log_node
from storage.models import Task

# Nodes whose model output is prose worth streaming; the others produce JSON for the graph.
TOKEN_NODES = frozenset({"draft", "answer"})
TOKEN_FLUSH_SECONDS = 0.1
TOKEN_FLUSH_COUNT = 50
# How long a LangGraph API run waits at its start for its running status to be stored.
STARTED_FLUSH_SECONDS = 5.0


class Publisher(Protocol):
    """What the run driver hands a run's stream to (app/engine/driver.py)."""

    @property
    def current_node(self) -> str | None: ...

    @property
    def failed_node(self) -> str | None: ...

    @property
    def interrupts(self) -> list[Interrupt]: ...

    async def started(self, task: Task) -> None:
        """A (re)start of the run, before its first chunk."""

    async def handle(self, mode: str, chunk: Any) -> None:
        """One chunk of the stream, as (mode, chunk)."""

    async def flush(self) -> None:
        """Publish whatever is buffered."""

    async def aclose(self) -> None:
        """Stop for good; what is still buffered may be dropped."""


class StreamTracker:
    """The run's position, read off the stream: the node running, the node that raised, and the
    interrupts the run stopped at (the "updates" mode reports them)."""

    def __init__(self) -> None:
        self.current_node: str | None = None
        self.failed_node: str | None = None
        self.interrupts: list[Interrupt] = []

    def track(self, mode: str, chunk: Any) -> None:
        if mode == "tasks":
            if "input" in chunk:
                self.current_node = chunk["name"]
            elif chunk.get("error") is not None:
                self.failed_node = chunk["name"]
        elif mode == "updates":
            for node, update in chunk.items():
                if node == "__interrupt__":
                    self.interrupts.extend(update)
                elif self.current_node == node:
                    self.current_node = None

    async def started(self, task: Task) -> None:
        """Nothing to say before the first chunk."""

    async def flush(self) -> None:
        """Nothing is buffered."""

    async def aclose(self) -> None:
        """Nothing to stop."""


class RunPublisher(StreamTracker):
    """A task's stream as task events (app/engine/events.py).

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
        super().__init__()
        self.bus = bus
        self.task_id = task_id
        self.flush_seconds = flush_seconds
        self.flush_count = flush_count
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
        self.track(mode, chunk)
        if mode == "tasks" and "input" in chunk:
            await self._publish(NODE_STARTED, {"node": chunk["name"]})
        elif mode == "updates":
            for node, update in chunk.items():
                if node == "__interrupt__":
                    for item in update:
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

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def aclose(self) -> None:
        """Stop the flush timer; tokens still buffered are dropped (the run is over anyway)."""
        if self._timer is not None and not self._timer.done():
            await cancel_and_wait(self._timer)
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


class ApiRunPublisher(StreamTracker):
    """A LangGraph API run's stream as the events a langgraph-sdk client expects, each chunk
    its own event; only "messages" partials are coalesced (app/engine/api_messages.py)."""

    def __init__(self, bus: EventBus, run_id: str, stream_modes: Iterable[str], *,
                 flush_seconds: float = TOKEN_FLUSH_SECONDS) -> None:
        super().__init__()
        self.bus = bus
        self.run_id = run_id
        api_modes = set(stream_modes)
        self.wanted = set(wanted_modes(api_modes))
        self.events = wants_events(api_modes)
        # Both ask for LangGraph's "messages" chunks; with both, langgraph-api sends tuples only.
        self.message_tuples = "messages-tuple" in api_modes
        self.messages = MessageStream(self._post, interval=flush_seconds)
        self._timer: asyncio.TimerHandle | None = None

    async def started(self, task: Task) -> None:
        # Every (re)start of a run says so first, as langgraph-api does.
        await self.publish(METADATA, {"run_id": task.id, "attempt": task.run_count})
        # This publisher logs node lines itself, at once (its node changes are not events), while
        # the run log's "task started" line waits for the running status to be committed: let
        # the write-behind writer take it first, so a busy database cannot put a node line before it.
        # Bounded: only the log's order is at stake, and a database gone meanwhile is the
        # checkpointer's to report, not a reason to hold the run here.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.bus.flush(), STARTED_FLUSH_SECONDS)

    async def handle(self, mode: str, chunk: Any) -> None:
        if mode != "messages":
            # A partial held back goes first: the stream keeps the graph's order.
            self.messages.flush()
        if mode == EVENTS:
            if self.events and visible_event(chunk):
                await self.publish(EVENTS, chunk)
            return
        self.track(mode, chunk)
        if mode == "tasks" and "input" in chunk:
            # A run's node changes are not events unless its client asked for them.
            log_node(self.run_id, chunk["name"])
        if mode not in self.wanted:
            return
        if mode == "messages":
            message, meta = chunk
            if isinstance(meta, Mapping) and meta.get("langgraph_node") in QUIET_MESSAGE_NODES:
                return
            if self.message_tuples:
                await self.publish("messages", [message, meta])
            elif isinstance(message, BaseMessage):
                self.messages.add(message, meta)
                self._flush_later()
        elif mode == "debug":
            await self.publish("debug", debug_payload(chunk))
        else:
            await self.publish(mode, chunk)

    async def flush(self) -> None:
        self.messages.flush()

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def publish(self, event: str, data: Any) -> None:
        self._post(event, data)

    def _post(self, event: str, data: Any) -> None:
        self.bus.post(self.run_id, event, {"payload": jsonable(data)})

    def _flush_later(self) -> None:
        # A model that stalls after a burst of tokens still shows them: the partial held back
        # goes out once its interval is up, not only with the next chunk.
        if self.messages.holding and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.messages.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.messages.flush()
