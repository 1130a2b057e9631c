"""`draftloop serve` as an operator runs it: real server processes for process-level tests.

Servers are started with asyncio's subprocess API so the test's event loop keeps serving the
loopback fakes while they run. Their output is drained continuously (a chatty server must never
block on a full pipe, and a failure message should show what it logged), every wait is bounded,
and `ServiceLauncher.close` kills whatever is still running when a test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from devtools.fakes.ollama import OllamaReply
from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes, ScriptedWriter
from devtools.identities import TEST_SECRET, ensure_user, service_database_url
from storage.engine import create_engine, session_factory
from storage.models import Attempt, Task

DRAFTLOOP = Path(sys.executable).parent / "draftloop"
# Imports, migrations and the checkpointer's set-up take 2-3 s; the rest is slack for a busy box.
STARTUP_TIMEOUT = 60.0
KILL_TIMEOUT = 10.0
# A task against the fakes runs in well under a second; waits that cover a restart get more.
RUN_TIMEOUT = 60.0
OUTPUT_TAIL = 150  # lines of server output kept in failure messages

# Short leases, beats and polls so that a dead worker's task is reclaimed, a follower in another
# process sees new events and an idle SSE stream shows a heartbeat within a test's patience.
FAST_SERVICE_ENV = {
    "WORKER_CONCURRENCY": "4",
    "LEASE_SECONDS": "2",
    "HEARTBEAT_SECONDS": "0.3",
    "QUEUE_POLL_SECONDS": "0.1",
    "SSE_HEARTBEAT_SECONDS": "0.3",
    "SHUTDOWN_GRACE_SECONDS": "2",
}
# Settings from a developer's shell that would send the server somewhere other than the fakes.
_LEAKY_ENV = (
    "DATABASE_URL", "HOST", "PORT", "WORKER_ID", "LOG_FORMAT", "LOG_LEVEL", "DRAFTLOOP_DEV_MODE",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY",
    "SERPER_API_KEY", "SERPER_BASE_URL", "PEXELS_API_KEY", "PEXELS_BASE_URL", "EMBEDDED_MODEL_PATH",
    "QUALITY_THRESHOLD", "MAX_REVISIONS", "RESEARCH_ENABLED", "IMAGES_ENABLED", "DEFAULT_TARGET_WORDS",
    "SEARCH_RESULTS", "MODEL_PRICES", "LLM_MAX_TOKENS", "LLM_PROVIDER", "OLLAMA_BASE_URL", "OLLAMA_MODEL",
    "DRAFTLOOP_SECRET_KEY", "DRAFTLOOP_DEV_MODE", "PUBLIC_METRICS", "TOKEN_TTL_SECONDS", "HSTS_SECONDS",
    "FORWARDED_ALLOW_IPS",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(fakes: GraphFakes | None, data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The environment of a server pointed at the loopback fakes (or at nothing, for fakes=None)."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update(FAST_SERVICE_ENV)
    env.update({
        # A known signing secret: tests mint their own tokens (devtools/identities.py).
        "DRAFTLOOP_SECRET_KEY": TEST_SECRET,
        "DRAFTLOOP_DATA_DIR": str(data_dir),
        "LANGSMITH_TRACING": "false",
        "PYTHONUNBUFFERED": "1",
        # SIGABRT then dumps every thread's stack: how a server stuck in start-up is diagnosed.
        "PYTHONFAULTHANDLER": "1",
        "QUALITY_THRESHOLD": "70",
        "MAX_REVISIONS": "2",
        # A misbehaving fake should fail a run in seconds, not after production timeouts.
        "LLM_TIMEOUT": "60",
        "LLM_MAX_RETRIES": "0",
        "RESEARCH_TIMEOUT": "10",
        "SERPER_TIMEOUT": "5",
        "PEXELS_TIMEOUT": "5",
        # The fake search results link to real sites: tests never read their pages.
        "RESEARCH_FETCH_PAGES": "false",
    })
    if fakes is not None:
        env.update({
            "LLM_PROVIDER": "ollama",
            "OLLAMA_BASE_URL": fakes.ollama.base_url,
            "OLLAMA_MODEL": "llama3.2",
            "SERPER_API_KEY": FAKE_SERPER_KEY,
            "SERPER_BASE_URL": fakes.serper.base_url,
            "PEXELS_API_KEY": FAKE_PEXELS_KEY,
            "PEXELS_BASE_URL": fakes.pexels.api_url,
        })
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


# server processes ------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    name: str
    url: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    # Where the test admin is created once the server has migrated it (None: not at all).
    database_url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def tail(self) -> str:
        return "".join(self.output[-OUTPUT_TAIL:])

    def describe(self) -> str:
        return f"server {self.name} at {self.url} (pid {self.pid}, exit {self.returncode})\n{self.tail()}"

    async def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.returncode is not None:
                    pytest.fail(f"draftloop serve exited during start-up\n{self.describe()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/health")).status_code == 200:
                        if self.database_url is not None:
                            # Healthy means migrated: the users table exists now.
                            await ensure_user(self.database_url)
                        return
                await asyncio.sleep(0.1)
        await self.abort()
        pytest.fail(f"draftloop serve did not answer GET /health within {timeout:.0f}s\n{self.describe()}")

    async def abort(self) -> None:
        """SIGABRT: with PYTHONFAULTHANDLER set the process prints where every thread is stuck."""
        if self.returncode is None:
            self.process.send_signal(signal.SIGABRT)
            with contextlib.suppress(TimeoutError):
                await self.wait_exit(KILL_TIMEOUT)
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to release leases or write anything."""
        if self.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.wait_exit(KILL_TIMEOUT)

    async def terminate(self, timeout: float) -> float:
        """SIGTERM and wait for the exit; the seconds it took. Fails (after a kill) on timeout."""
        started = time.monotonic()
        if self.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            pytest.fail(f"draftloop serve did not exit within {timeout:.1f}s of SIGTERM\n{self.describe()}")
        elapsed = time.monotonic() - started
        await self._drain_rest()
        return elapsed

    async def wait_exit(self, timeout: float) -> int:
        await asyncio.wait_for(self.process.wait(), timeout)
        await self._drain_rest()
        assert self.process.returncode is not None
        return self.process.returncode

    async def _drain_rest(self) -> None:
        # The pipe closes when the process exits (children share it, so bound the wait).
        if self.reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.reader), KILL_TIMEOUT)


async def _drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


class ServiceLauncher:
    """Starts `draftloop serve` processes with one base environment; kills the rest at close.

    Once a server is up (it has migrated the database) the test admin of devtools/identities.py exists,
    so requests carrying ``admin_headers()`` are let in.
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        # Not the repository: a developer's .env there must not leak into the server.
        self.cwd = cwd
        self.servers: list[ServerProcess] = []

    async def start(self, name: str, *, wait: bool = True, **overrides: str) -> ServerProcess:
        port = free_port()
        env = {**self.env, "WORKER_ID": name, **overrides}
        process = await asyncio.create_subprocess_exec(
            str(DRAFTLOOP), "serve", "--host", "127.0.0.1", "--port", str(port),
            cwd=self.cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        server = ServerProcess(name=name, url=f"http://127.0.0.1:{port}", process=process,
                               database_url=await service_database_url(env))
        assert process.stdout is not None
        server.reader = asyncio.create_task(_drain(process.stdout, server.output))
        self.servers.append(server)
        if wait:
            await server.wait_healthy()
        return server

    def describe(self) -> str:
        return "\n".join(server.describe() for server in self.servers)

    async def close(self) -> None:
        # Signal every process before waiting on any, so one slow exit cannot leave others running.
        for server in self.servers:
            if server.returncode is None:
                server.process.send_signal(signal.SIGKILL)
        for server in self.servers:
            await server.kill()
            # A grandchild still holding the pipe would keep the reader alive past the test.
            if server.reader is not None and not server.reader.done():
                server.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server.reader


@asynccontextmanager
async def served(fakes: GraphFakes | None, database_url: str | None, workdir: Path, *, name: str = "served",
                 **env: str) -> AsyncIterator[tuple[ServiceLauncher, ServerProcess]]:
    """One healthy `draftloop serve` on ``database_url`` (None: a SQLite file in ``workdir``),
    pointed at ``fakes``, with ``env`` on top of service_env's. Not a fixture itself, so that a
    module-scoped fixture can share one server between its tests, with whatever database URL
    (a proxy in front of the real one, say) and settings it needs. Killed on exit."""
    launcher = ServiceLauncher({**service_env(fakes, workdir, database_url), **env}, cwd=workdir)
    try:
        yield launcher, await launcher.start(name)
    finally:
        await launcher.close()
        # Shown by pytest only when a test failed: what the server logged.
        print(launcher.describe())


# SSE -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    id: int
    event: str
    data: dict[str, Any]
    received_at: float  # monotonic, when the client read it


@dataclass(frozen=True)
class SseComment:
    text: str
    received_at: float


SseItem = SseEvent | SseComment


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseItem]:
    """Events and comments of a streaming text/event-stream response, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield SseComment(line[1:].strip(), time.monotonic())
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "event" in fields:
            yield SseEvent(int(fields["id"]), fields["event"], json.loads(fields.get("data", "null")), time.monotonic())
        fields = {}


async def follow_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: int | None = None,
    stop: Callable[[list[SseItem]], bool] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> tuple[list[SseItem], bool]:
    """Follow a task's event stream live until it closes by itself (True) or ``stop`` says to
    disconnect (False). Fails if neither happens within ``timeout``."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    items: list[SseItem] = []
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(10.0, read=timeout)) as response:
                assert response.status_code == 200, await response.aread()
                assert response.headers["content-type"].startswith("text/event-stream")
                async for item in iter_sse(response):
                    items.append(item)
                    if stop is not None and stop(items):
                        return items, False
    except TimeoutError:
        pytest.fail(f"event stream {url} neither closed nor met its stop condition within {timeout:.0f}s; "
                    f"got {describe_items(items)}")
    return items, True


def events_of(items: Iterable[SseItem]) -> list[SseEvent]:
    return [item for item in items if isinstance(item, SseEvent)]


def describe_items(items: Iterable[SseItem]) -> list[str]:
    return [f"{i.id}:{i.event}:{i.data.get('status') or i.data.get('node') or ''}" if isinstance(i, SseEvent)
            else f":{i.text}" for i in items]


def statuses(events: Iterable[SseEvent]) -> list[str]:
    return [e.data["status"] for e in events if e.event == "status"]


def finished_nodes(events: Iterable[SseEvent]) -> list[str]:
    return [e.data["node"] for e in events if e.event == "node_finished"]


# HTTP and storage helpers -----------------------------------------------------------------------


async def wait_for_status(
    client: httpx.AsyncClient, base_url: str, task_id: str, *wanted: str,
    timeout: float = RUN_TIMEOUT, launcher: ServiceLauncher | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"{base_url}/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in wanted:
            return body
        await asyncio.sleep(0.1)
    servers = f"\n{launcher.describe()}" if launcher is not None else ""
    pytest.fail(f"task {task_id} stayed {body.get('status')} (error {body.get('error')}), wanted {wanted}{servers}")


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT,
                     launcher: ServiceLauncher | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            servers = f"\n{launcher.describe()}" if launcher is not None else ""
            pytest.fail(f"no {what} within {timeout:.0f}s{servers}")
        await asyncio.sleep(0.05)


@dataclass
class StoredTask:
    task: Task
    attempt_numbers: list[int]


async def stored_tasks(database_url: str) -> dict[str, StoredTask]:
    """Every task row and its attempts' numbers, read straight from the database."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            tasks = list(await session.scalars(select(Task)))
            rows = (await session.execute(select(Attempt.task_id, Attempt.number).order_by(Attempt.number))).all()
    finally:
        await engine.dispose()
    numbers: dict[str, list[int]] = {}
    for task_id, number in rows:
        numbers.setdefault(task_id, []).append(number)
    return {task.id: StoredTask(task, numbers.get(task.id, [])) for task in tasks}


async def sample_lease_owners(database_url: str, seen: dict[str, set[str]], stop: asyncio.Event,
                              every: float = 0.05) -> None:
    """Record which worker holds each running task, until ``stop``: the task row clears its
    lease when a run ends, so sampling while runs are in flight is the only way to tell."""
    engine = create_engine(database_url)
    try:
        while not stop.is_set():
            async with session_factory(engine)() as session:
                rows = (await session.execute(
                    select(Task.id, Task.lease_owner).where(Task.status == "running", Task.lease_owner.is_not(None))
                )).all()
            for task_id, owner in rows:
                seen.setdefault(task_id, set()).add(owner)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        await engine.dispose()


# model scripting -------------------------------------------------------------------------------


def schema_title(body: dict[str, Any]) -> str | None:
    """Which structured call a chat request is (IntentChoice, Score), None for free text."""
    fmt = body.get("format")
    return fmt.get("title") if isinstance(fmt, dict) else None


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else ""


@dataclass
class SlowJudge:
    """The scripted writer, except that the critique call takes ``latency`` seconds to answer:
    a window in which a server is known to be inside the critique node, with the draft's
    checkpoint already saved."""

    writer: ScriptedWriter
    latency: float = 30.0

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        reply = self.writer(body)
        if schema_title(body) == "CritiqueVerdict" and self.latency:
            return replace(reply, latency=self.latency)
        return reply
