"""Server-Sent Events framing: one JSON line per event, ids for resumption, heartbeat comments."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.response import Stream

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


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


def last_event_id(request: Request[Any, Any, Any], query_value: str | None = None) -> int:
    """Where a reconnecting client left off: the Last-Event-ID header, else ?last_event_id."""
    raw = request.headers.get("last-event-id") or query_value or ""
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> Stream:
    return Stream(body, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})
