"""Scripted faults shared by the HTTP fakes: a queue of replies consumed one per request.

A test pushes what the next requests should get (a 429 with Retry-After, a 500, a hang, a reset,
junk JSON); once the queue is empty the fake answers normally again.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tests.fakes.server import Hang, Reset, Response

Scripted = Response | Hang | Reset


def status(code: int, retry_after: str | None = None, payload: object | None = None) -> Response:
    """An error reply with a JSON body, optionally carrying Retry-After."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = payload if payload is not None else {"message": f"scripted {code}"}
    return Response.json(body, code, headers)


def junk(body: bytes = b'{"organic": [ this is not json', content_type: str = "application/json") -> Response:
    """A 200 whose body does not parse as the content type claims."""
    return Response(200, body, {"content-type": content_type})


def hang() -> Hang:
    """Keep the connection open and never answer."""
    return Hang()


def reset() -> Reset:
    """Drop the connection without answering."""
    return Reset()


class FaultQueue:
    """Replies consumed in order, one per request, before the fake's normal behaviour resumes.

    ``always``: what every request gets once the queue is empty (a provider that is down for
    good, however many requests a run makes), until ``clear``.
    """

    def __init__(self) -> None:
        self._items: deque[Scripted] = deque()
        self.latency = 0.0
        self.always: Scripted | None = None

    def push(self, *items: Scripted) -> None:
        self._items.extend(items)

    def clear(self) -> None:
        """Back to normal answers: nothing queued, nothing always."""
        self._items.clear()
        self.always = None
        self.latency = 0.0

    def __len__(self) -> int:
        return len(self._items)

    async def next(self) -> Response | None:
        """The scripted reply for this request, or None to answer normally; raises for hang/reset."""
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._items:
            item = self._items.popleft()
        elif self.always is not None:
            item = self.always
        else:
            return None
        if isinstance(item, (Hang, Reset)):
            # A fresh instance so tracebacks do not pile up on a shared exception object.
            raise type(item)()
        return item
