"""Stream mode "messages" as langgraph-api serves it: the model's messages as they grow.

LangGraph's "messages" mode yields (message, metadata) per token chunk and per message a node
returns. langgraph-api turns that into three SSE events, keyed by message id:
- ``messages/metadata`` ``{id: {"metadata": metadata}}``, once, before a message's first event;
- ``messages/partial`` ``[message]``: a streamed message, its chunks so far added up;
- ``messages/complete`` ``[message]``: a whole message (one a node returned).
Both carry the message as a plain message ("ai", not "AIMessageChunk"). LangGraph gives a
message without an id a uuid4 before it gets here, so every message has one.

Each partial repeats the whole text so far, and every event is a stored row: partials of one
message are coalesced to one per ``interval`` seconds (the latest wins; a client that reads
them sees the same text, a little less often), which keeps a long draft at dozens of rows
rather than a row per token, each as long as the text so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

METADATA = "messages/metadata"
PARTIAL = "messages/partial"
COMPLETE = "messages/complete"


class MessageStream:
    """Accumulates a run's "messages" chunks into langgraph-api's events, for ``emit``."""

    def __init__(self, emit: Callable[[str, Any], None], *, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.interval = interval
        self.clock = clock
        self._messages: dict[str, BaseMessage] = {}
        # The partial held back by coalescing, and when its message last went out.
        self._pending: BaseMessage | None = None
        self._sent_at: dict[str, float] = {}

    def add(self, message: BaseMessage, metadata: Mapping[str, Any]) -> None:
        message_id = str(message.id)
        previous = self._messages.get(message_id)
        if previous is None:
            self.flush()
            self.emit(METADATA, {message_id: {"metadata": dict(metadata)}})
            current = message
        elif isinstance(previous, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
            current = previous + message
        else:
            # A whole message under an id already streamed: it is the message, not more of it.
            current = message
        self._messages[message_id] = current
        if not isinstance(message, BaseMessageChunk):
            self._pending = None
            self.emit(COMPLETE, [message_chunk_to_message(current)])
            return
        if self._pending is not None and str(self._pending.id) != message_id:
            self.flush()
        now = self.clock()
        if now - self._sent_at.get(message_id, float("-inf")) >= self.interval:
            self._pending = None
            self._sent_at[message_id] = now
            self.emit(PARTIAL, [message_chunk_to_message(current)])
        else:
            self._pending = current

    def flush(self) -> None:
        """Send the partial held back, if any: before any other event of the run, so that the
        stream's order stays the graph's."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._sent_at[str(pending.id)] = self.clock()
            self.emit(PARTIAL, [message_chunk_to_message(pending)])

    @property
    def holding(self) -> bool:
        return self._pending is not None
