"""Measurement hook for bench/load.py: event-loop lag measured inside the server process.

bench/load.py puts this directory on PYTHONPATH of the `draftloop serve` subprocess it starts
and sets DRAFTLOOP_BENCH_LAG_FILE. Python imports `sitecustomize` at start-up, so this wraps
uvicorn's Server.startup to start one extra asyncio task in the server's own loop: it sleeps
DRAFTLOOP_BENCH_LAG_INTERVAL seconds (default 0.01) over and over and records how late each
wake-up is. A daemon thread appends "<unix time> <lag seconds>" lines to the file every 0.5 s.

Without DRAFTLOOP_BENCH_LAG_FILE this module does nothing. Nothing in app/ knows about it; it
is measurement scaffolding like py-spy, not part of the service.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_PATH = os.environ.get("DRAFTLOOP_BENCH_LAG_FILE", "").strip()
_MAX_SAMPLES = 2_000_000  # ~5.5 h at 100 Hz; a bound, not a target


def _install() -> None:
    import asyncio
    import contextvars
    import socket
    import threading
    import time

    try:
        import uvicorn.server as uvicorn_server
    except Exception:  # noqa: BLE001 - no uvicorn, nothing to hook
        return

    interval = float(os.environ.get("DRAFTLOOP_BENCH_LAG_INTERVAL", "0.01") or 0.01)
    samples: list[tuple[float, float]] = []
    # The loop only holds tasks weakly: this keeps the monitor alive.
    monitors: list[asyncio.Task[None]] = []
    original = uvicorn_server.Server.startup

    async def monitor() -> None:
        while len(samples) < _MAX_SAMPLES:
            started = time.perf_counter()
            await asyncio.sleep(interval)
            samples.append((time.time(), time.perf_counter() - started - interval))

    def flusher() -> None:
        written = 0
        with open(_PATH, "a", encoding="ascii") as out:
            while True:
                time.sleep(0.5)
                end = len(samples)
                if end > written:
                    out.write("".join(f"{wall:.4f} {lag:.6f}\n" for wall, lag in samples[written:end]))
                    out.flush()
                    written = end

    async def startup(self: uvicorn_server.Server, sockets: list[socket.socket] | None = None) -> None:
        await original(self, sockets=sockets)
        loop = asyncio.get_running_loop()
        monitors.append(loop.create_task(monitor(), name="bench-loop-lag"))
        threading.Thread(target=flusher, name="bench-lag-flush", daemon=True).start()

    # Replacing a method is the point of this hook; mypy refuses method assignment on principle.
    uvicorn_server.Server.startup = startup  # type: ignore[method-assign]

    if os.environ.get("DRAFTLOOP_ROLE") == "worker":
        # `draftloop worker` (started by `serve --workers K`) has no uvicorn: wrap the coroutine
        # it hands to asyncio.Runner (app/event_loop.py) instead; each worker writes its own
        # file, <path>.worker-<pid>.
        global _PATH
        _PATH = f"{_PATH}.worker-{os.getpid()}"
        original_run = asyncio.Runner.run

        def run(self: asyncio.Runner, coro: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> T:
            async def wrapped() -> T:
                task = asyncio.get_running_loop().create_task(monitor(), name="bench-loop-lag")
                threading.Thread(target=flusher, name="bench-lag-flush", daemon=True).start()
                try:
                    return await coro
                finally:
                    task.cancel()

            return original_run(self, wrapped(), context=context)

        # As above: replacing the method is the hook.
        asyncio.Runner.run = run  # type: ignore[method-assign]


if _PATH:
    _install()
