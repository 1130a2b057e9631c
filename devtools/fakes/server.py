"""A minimal HTTP/1.1 server on loopback for protocol-faithful fakes.

It is written on raw asyncio streams rather than an ASGI framework because the fakes must be
able to misbehave at the transport level (hang before answering, reset the connection, send
junk) in ways a framework would smooth over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    """``body``: bytes (Content-Length), or chunks (chunked encoding). A list of chunks is sent
    in one write, an async iterator one chunk per write as it yields them (for pacing)."""

    status: int = 200
    body: bytes | list[bytes] | AsyncIterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )


class Reset(Exception):
    """Raised by a handler to drop the connection without answering (a connection reset)."""


class Hang(Exception):
    """Raised by a handler to keep the connection open and never answer."""


Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


class FakeHTTPServer:
    """Routes `METHOD /path` to async handlers; records every request it receives."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.requests: list[Request] = []
        self._server: asyncio.Server | None = None
        self._hanging: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self.prefix_routes.append((method.upper(), prefix, handler))

    async def start(self, port: int = 0) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for writer in list(self._hanging):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FakeHTTPServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _find(self, method: str, path: str) -> Handler | None:
        handler = self.routes.get((method, path))
        if handler is not None:
            return handler
        for m, prefix, h in self.prefix_routes:
            if m == method and path.startswith(prefix):
                return h
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                handler = self._find(request.method, request.path)
                if handler is None:
                    response = Response.json({"error": f"no route {request.path}"}, status=404)
                else:
                    try:
                        response = await handler(request)
                    except Reset:
                        writer.transport.abort()
                        return
                    except Hang:
                        self._hanging.add(writer)
                        await asyncio.sleep(3600)
                        return
                await self._write_response(writer, response)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        finally:
            self._hanging.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        line = await reader.readline()
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    break
                body += await reader.readexactly(size)
                await reader.readline()
        parts = urlsplit(target)
        return Request(method.upper(), parts.path, parse_qs(parts.query), headers, body)

    async def _write_response(self, writer: asyncio.StreamWriter, response: Response) -> None:
        reason = _REASONS.get(response.status, "Status")
        head = [f"HTTP/1.1 {response.status} {reason}"]
        headers = {k.lower(): v for k, v in response.headers.items()}
        body = response.body
        if isinstance(body, bytes):
            headers["content-length"] = str(len(body))
        else:
            headers["transfer-encoding"] = "chunked"
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if isinstance(body, bytes):
            writer.write(body)
            await writer.drain()
            return
        if isinstance(body, list):
            # The same bytes as chunk by chunk, in one system call instead of one per chunk.
            writer.write(b"".join(_chunk_frame(chunk) for chunk in body if chunk) + b"0\r\n\r\n")
            await writer.drain()
            return
        async for chunk in body:
            if chunk:
                writer.write(_chunk_frame(chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _chunk_frame(chunk: bytes) -> bytes:
    return f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
