"""Scripted faults shared by the HTTP fakes: a queue of replies consumed one per request.

A test pushes what the next requests should get (a 429 with Retry-After, a 500, a hang, a reset,
junk JSON); once the queue is empty the fake answers normally again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from devtools.fakes.server import Hang, Request, Reset, Response
from tools.errors import MIN_FRAGMENT


@dataclass(frozen=True)
class EchoHeaders:
    """An error whose plain-text body quotes the request's headers, as some gateways and debug
    endpoints answer: upstream text that carries our API key back to us. ``value_at`` pads the
    body so that ``header``'s value starts at that character (to put a key across a cut)."""

    status: int = 400
    header: str = ""
    value_at: int | None = None

    def reply(self, request: Request) -> Response:
        first = [(name, value) for name, value in request.headers.items() if name == self.header]
        others = [(name, value) for name, value in request.headers.items() if name != self.header]
        text = "request rejected; you sent " + ", ".join(f"{name}: {value}" for name, value in first + others)
        if self.value_at is not None and first:
            text = "." * max(0, self.value_at - text.index(first[0][1])) + text
        return Response(self.status, text.encode(), {"content-type": "text/plain"})


Scripted = Response | Hang | Reset | EchoHeaders


def status(code: int, retry_after: str | None = None, payload: object | None = None) -> Response:
    """An error reply with a JSON body, optionally carrying Retry-After."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = payload if payload is not None else {"message": f"scripted {code}"}
    return Response.json(body, code, headers)


def junk(body: bytes = b'{"organic": [ this is not json', content_type: str = "application/json") -> Response:
    """A 200 whose body does not parse as the content type claims."""
    return Response(200, body, {"content-type": content_type})


def echo_headers(status: int = 400, header: str = "", value_at: int | None = None) -> EchoHeaders:
    """An error quoting the request's headers (see EchoHeaders)."""
    return EchoHeaders(status, header.lower(), value_at)


def key_fragments(text: str, key: str, size: int = MIN_FRAGMENT) -> list[str]:
    """Every run of ``size`` characters of ``key`` found in ``text``: what an echoed key left."""
    return [key[i:i + size] for i in range(len(key) - size + 1) if key[i:i + size] in text]


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

    async def next(self, request: Request | None = None) -> Response | None:
        """The scripted reply for ``request``, or None to answer normally; raises for hang/reset."""
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
        if isinstance(item, EchoHeaders):
            if request is None:
                raise TypeError("this fake does not pass its requests on: it cannot echo their headers")
            return item.reply(request)
        return item
