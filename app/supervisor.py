"""`draftloop serve --workers N`: the API process starts N `draftloop worker` processes on the
same database, restarts any that dies, and stops them (gracefully) when it stops.

Graph steps are CPU work in the interpreter; in the process that also answers HTTP they queue
requests behind them on one event loop (bench/RESULTS.md measured P95s in the hundreds of ms).
Run in worker processes, they leave the API's loop to requests and use the other cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from types import TracebackType

from app.service_settings import ServiceSettings
from storage.engine import is_sqlite

log = logging.getLogger("draftloop.supervisor")

RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
# A worker that lived this long before dying was healthy: its next restart starts quick again.
STABLE_SECONDS = 60.0
KILL_AFTER_EXTRA_SECONDS = 5.0
# Tells a worker which process started it, so it can notice being orphaned (app/cli/serve.py).
SUPERVISOR_PID_ENV = "DRAFTLOOP_SUPERVISOR_PID"
# "stdin": the supervisor writes a byte to the worker's stdin whenever it queued work (wake).
WAKE_PIPE_ENV = "DRAFTLOOP_WAKE_PIPE"
WAKE_BYTE = b"w"


def worker_command() -> list[str]:
    return [sys.executable, "-m", "app.cli", "worker"]


class WorkerSupervisor:
    """An async context manager; with ``settings.workers == 0`` it does nothing."""

    def __init__(self, settings: ServiceSettings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.restarts_total = 0
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        # On Postgres a queued task's NOTIFY wakes the workers; SQLite has no such channel, and
        # without one a worker saw a new task only at its next poll (QUEUE_POLL_SECONDS, half
        # of it on average). A pipe needs no handshake: what is written before the worker
        # reads waits in the pipe, where a signal sent before its handler exists would kill it.
        self.wake_pipe = is_sqlite(database_url)

    @property
    def count(self) -> int:
        return self.settings.workers

    @property
    def alive(self) -> int:
        return sum(1 for proc in self.processes.values() if proc.returncode is None)

    def _env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DRAFTLOOP_ROLE": "worker",
            "WORKERS": "0",
            # The resolved URL: a relative SQLite default must point at the API's file.
            "DATABASE_URL": self.database_url,
            # Stable per slot, so a restarted worker hands back its predecessor's leases at once.
            "WORKER_ID": f"{self.settings.worker_id}-w{index}",
            SUPERVISOR_PID_ENV: str(os.getpid()),
        })
        if self.wake_pipe:
            env[WAKE_PIPE_ENV] = "stdin"
        return env

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(*worker_command(), env=self._env(index),
                                                    stdin=asyncio.subprocess.PIPE if self.wake_pipe else None)
        self.processes[index] = proc
        log.info("started worker %d (pid %d)", index, proc.pid)
        return proc

    async def _watch(self, index: int) -> None:
        delay = RESTART_DELAY_SECONDS
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            code = await self.processes[index].wait()
            if self._stopping:
                return
            delay = RESTART_DELAY_SECONDS if loop.time() - started > STABLE_SECONDS else delay
            log.error("worker %d exited with %s; restarting in %.0f s", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)
            if self._stopping:
                return
            self.restarts_total += 1
            await self._spawn(index)

    def wake(self) -> None:
        """Work was queued: tell each live worker through its wake pipe (a no-op without one)."""
        for proc in self.processes.values():
            if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(WAKE_BYTE)

    async def __aenter__(self) -> WorkerSupervisor:
        for index in range(self.count):
            await self._spawn(index)
            self._watchers.append(asyncio.create_task(self._watch(index), name=f"draftloop-worker-{index}"))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM every worker (each drains to a checkpoint and releases its leases), then
        wait; kill what outlives the grace period."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        running = [proc for proc in self.processes.values() if proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        timeout = self.settings.shutdown_grace_seconds + KILL_AFTER_EXTRA_SECONDS
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.error("worker pid %d did not stop within %.0f s; killing it", proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
