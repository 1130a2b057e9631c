"""A loopback TCP proxy in front of Postgres that a test can take down and bring back: how an
outage is simulated without touching the real server, which other tests share.

``take_down()`` stops listening (new connects are refused, as with a server that is not
running) and closes every live connection (as a restart does); ``restore()`` listens on the
same port again, so clients configured with the proxy's URL reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

from sqlalchemy.engine import make_url

PIPE_CHUNK = 65536


class DatabaseProxy:
    """An async context manager; ``url`` is ``upstream_url`` pointed at the proxy."""

    def __init__(self, upstream_url: str) -> None:
        parsed = make_url(upstream_url)
        self.upstream_url = upstream_url
        self.upstream_host = parsed.host or "127.0.0.1"
        self.upstream_port = parsed.port or 5432
        self.port = 0
        self.server: asyncio.Server | None = None
        # Both sockets of every proxied connection, so that an outage can cut them.
        self.writers: set[asyncio.StreamWriter] = set()
        self.pipes: set[asyncio.Task[None]] = set()
        self.accepted = 0
        # Proxied connections open now, and the most open at once since ``peak`` was last reset.
        self.live = 0
        self.peak = 0

    @property
    def url(self) -> str:
        return make_url(self.upstream_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    @property
    def up(self) -> bool:
        return self.server is not None

    async def __aenter__(self) -> DatabaseProxy:
        await self.restore()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.take_down()

    async def restore(self) -> None:
        """Listen again (on the port of the first start, which clients were given)."""
        if self.server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The port was ours moments ago; its closed connections may linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.server = await asyncio.start_server(self._serve, sock=sock)
        self.port = int(sock.getsockname()[1])

    async def take_down(self) -> None:
        """Refuse new connections and close the live ones."""
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in list(self.writers):
            writer.close()
        for pipe in list(self.pipes):
            pipe.cancel()
        if self.pipes:
            await asyncio.gather(*self.pipes, return_exceptions=True)
        if server is not None:
            # Only after the connections are gone: wait_closed waits for their handlers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            client_writer.close()
            self.writers.discard(client_writer)
            return
        self.writers.add(upstream_writer)
        self.live += 1
        self.peak = max(self.peak, self.live)
        pipes = [asyncio.create_task(_pipe(client_reader, upstream_writer)),
                 asyncio.create_task(_pipe(upstream_reader, client_writer))]
        self.pipes.update(pipes)
        try:
            # Either side closing ends the connection: a half-open pair would hold a backend.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.live -= 1
            for pipe in pipes:
                pipe.cancel()
                self.pipes.discard(pipe)
            for writer in (client_writer, upstream_writer):
                writer.close()
                self.writers.discard(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(PIPE_CHUNK):
            writer.write(data)
            await writer.drain()
