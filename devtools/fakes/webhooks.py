"""A loopback webhook receiver: records every POST with whether its X-Draftloop-Signature is
valid for the shared secret, and answers with the statuses a test scripts (500 then 200, ...)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from devtools.fakes.server import FakeHTTPServer, Request, Response


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    def json(self) -> Any:
        return json.loads(self.body)


def signature_valid(secret: str, header: str, body: bytes) -> bool:
    """Checked here without the service's code: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    expected = hmac.new(secret.encode(), fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookReceiver:
    """POST /hooks/<anything>: each path is one test's endpoint."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.server = FakeHTTPServer()
        self.server.route_prefix("POST", "/hooks/", self._receive)
        self.received: list[Received] = []
        # Statuses to answer on a path before the 200s, in order.
        self.scripted: dict[str, list[int]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    async def start(self) -> WebhookReceiver:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    def url(self, path: str) -> str:
        return f"{self.server.base_url}/hooks/{path}"

    def answer_first(self, path: str, *statuses: int) -> None:
        self.scripted[f"/hooks/{path}"].extend(statuses)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/hooks/{path}"]

    async def wait_for(self, path: str, count: int, timeout: float) -> list[Received]:
        """The POSTs to ``path`` once there are ``count`` of them; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.at(path)) >= count)
        return self.at(path)

    async def _receive(self, request: Request) -> Response:
        valid = signature_valid(self.secret, request.headers.get("x-draftloop-signature", ""), request.body)
        async with self._arrived:
            self.received.append(Received(request.path, request.headers, request.body, valid))
            self._arrived.notify_all()
        script = self.scripted.get(request.path)
        status = script.pop(0) if script else 200
        return Response.json({"ok": status == 200}, status=status)
