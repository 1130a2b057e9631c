"""`draftloop serve` (the HTTP API, optionally supervising worker processes) and
`draftloop worker` (graph runs without HTTP)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar

from app import event_loop, gc_tuning
from app.cli import EXIT_OK, EXIT_USAGE
from app.configuration import Configuration
from app.engine.services import RunServices, open_run_services
from app.graph_runtime import open_graph_runtime
from app.http.app import create_app
from app.logs import configure_logging
from app.service_settings import ServiceSettings
from app.supervisor import SUPERVISOR_PID_ENV, WAKE_PIPE_ENV
from tools.llm.errors import ModelProviderError

log = logging.getLogger("draftloop")

ORPHAN_CHECK_SECONDS = 0.5


class DraftloopServer(uvicorn.Server):
    """Starts the drain on the shutdown signal itself: open SSE streams end and runs head for a
    checkpoint while uvicorn waits for connections, instead of after that wait."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.litestar_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        gc_tuning.settle_after_startup()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.litestar_app.state
        if state is not None:
            bus, dispatcher = state.get("bus"), state.get("dispatcher")
            if bus is not None:
                bus.close()
            if dispatcher is not None:
                dispatcher.begin_drain()
        super().handle_exit(sig, frame)


def proxy_header_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling. uvicorn believes the header from loopback by default:
    then any local client, or anything a local reverse proxy passes on, picks the address the
    login limit counts and the audit trail records. Only the proxies FORWARDED_ALLOW_IPS names
    are believed, and with it unset none are."""
    if not settings.forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.forwarded_allow_ips)}


def serve_command(args: argparse.Namespace) -> int:
    # A setting that cannot be used (a bad DATABASE_URL too) is a usage error here, a ValueError
    # naming the variable, not a traceback from the server's start-up.
    configuration = Configuration.load()
    settings = configuration.service
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides.update({k: v for k, v in (("workers", args.workers), ("role", args.role)) if v is not None})
    if settings.role == "worker" and "role" not in overrides:
        raise ValueError("DRAFTLOOP_ROLE=worker is for `draftloop worker`; `serve` takes all or api")
    settings = replace(settings, **overrides)
    if not 0 <= settings.workers <= 64:
        raise ValueError(f"--workers must be between 0 and 64, got {settings.workers}")
    configure_logging(settings.log_format, settings.log_level)
    print(f"Draftloop serving on http://{settings.host}:{settings.port}  (API docs: /schema)", flush=True)
    app = create_app(settings, configuration.pipeline)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_config=None, access_log=False, lifespan="on",
                            timeout_keep_alive=settings.keep_alive_seconds,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
                            **proxy_header_options(settings))
    DraftloopServer(config, app).run()
    return EXIT_OK


async def run_worker(config: Configuration) -> int:
    """Claim and run tasks until SIGTERM/SIGINT, then drain like the server does."""
    settings = config.service
    async with open_graph_runtime(config.database_url, config.pipeline, settings.markdown_render_seconds) as runtime:
        gc_tuning.settle_after_startup()
        async with open_run_services(runtime, settings) as services:
            await _serve_until_stopped(services, settings)
    return EXIT_OK


async def _serve_until_stopped(services: RunServices, settings: ServiceSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        services.dispatcher.begin_drain()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    log.info("worker %s running up to %d tasks at a time", services.dispatcher.worker_id, settings.concurrency)
    orphan_watch = asyncio.create_task(_stop_when_orphaned(on_signal), name="draftloop-orphan-watch")
    wake_reader = (asyncio.create_task(_wake_on_stdin(services.dispatcher.wake), name="draftloop-wake-pipe")
                   if os.environ.get(WAKE_PIPE_ENV) == "stdin" else None)
    try:
        await stop.wait()
    finally:
        orphan_watch.cancel()
        if wake_reader is not None:
            wake_reader.cancel()


async def _wake_on_stdin(wake: Callable[[], None]) -> None:
    """Claim at once whenever the supervising server writes to our stdin (app/supervisor.py);
    at end of file (the server is gone) the orphan watch takes over."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        wake()


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """A worker started by `serve --workers` stops when its server is gone, even if the server
    died by SIGKILL and could not tell it: a leftover worker would run tasks nobody asked for."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if not supervisor.isdigit():
        return
    while os.getppid() == int(supervisor):
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
    log.warning("the server that started this worker (pid %s) is gone; stopping", supervisor)
    stop()


def worker_command(args: argparse.Namespace) -> int:
    loaded = Configuration.load()
    config = replace(loaded, service=replace(loaded.service, role="worker", workers=0))
    settings = config.service
    configure_logging(settings.log_format, settings.log_level)
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    return event_loop.run(run_worker(config))




def main(args: argparse.Namespace) -> int:
    try:
        return serve_command(args) if args.command == "serve" else worker_command(args)
    except (ValueError, ModelProviderError) as exc:
        # A refused start-up setting (e.g. no DRAFTLOOP_SECRET_KEY outside dev mode, a bad LLM_TIMEOUT).
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
