"""Server-Sent Events framing: one JSON line per event, ids for resumption, heartbeat comments."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream

from storage.models import MAX_ROW_ID

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
# Event ids are rows of a 64-bit column: past its range an id broke the stream after its 200.
# Both are declared, so that the schema states the bounds. The header is read as text and
# checked here: Litestar would name its error after the handler's argument, not the header.
LastEventIdHeader = Annotated[str | None, HeaderParameter(
    name="last-event-id", description="the id of the last event received: the stream resumes after it",
    schema_extra={"oneOf": [{"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}, {"type": "null"}]})]
LastEventIdQuery = Annotated[int | None, QueryParameter(
    name="last_event_id", ge=0, le=MAX_ROW_ID,
    description="as the Last-Event-ID header, for clients that cannot set headers")]


def sse_event(event: str, data: Any, event_id: str | int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    # Data stays on one line: every consumer can then parse it with one json.loads.
    lines.append("data: " + json.dumps(data, default=str, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str = "heartbeat") -> bytes:
    return f": {text}\n\n".encode()


def resume_after(header: str | None, query: int | None = None) -> int:
    """Where a reconnecting client left off: the Last-Event-ID header, else ?last_event_id,
    else the start (a late client gets the whole history). A header that is not an event id
    is a 4xx naming it; an empty one is no header (as EventSource treats it)."""
    header = (header or "").strip()
    if not header:
        return query or 0
    event_id = int(header) if header.isascii() and header.isdigit() and len(header) <= 19 else -1
    if not 0 <= event_id <= MAX_ROW_ID:
        message = f"must be an event id from 0 to {MAX_ROW_ID}"
        raise ValidationException(detail=f"Last-Event-ID: {message}", extra=[{"key": "Last-Event-ID", "message": message}])
    return event_id


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> Stream:
    return Stream(body, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})
