"""The real JS SDK (@langchain/langgraph-sdk, pinned in tests/js/package.json) from pytest: one
long-lived Node process (tests/js/sdk_driver.mjs) serves every call of a test module, so Node
starts once, not once per call. Calls go out as JSON lines on its stdin and come back on its
stdout; the tests assert on the results in Python.

Node and the npm package are installed by `make js-setup`. Without them the JS tests are skipped,
unless REQUIRE_JS=1 (CI), where their absence is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "sdk_driver.mjs"
SDK_PACKAGE = "@langchain/langgraph-sdk"
SDK_MANIFEST = JS_DIR / "node_modules" / SDK_PACKAGE / "package.json"
CALL_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STDERR_TAIL = 60  # lines of Node's stderr kept in failure messages
# One answer is one line, and a whole stream's parts can make a long one (asyncio's default is 64 KiB).
LINE_LIMIT = 64 * 1024 * 1024
# Keys the SDK would read from the environment when a client names none: a test decides what it sends.
_SDK_ENV_KEYS = ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")


def pinned_sdk_version() -> str:
    return str(json.loads((JS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"][SDK_PACKAGE])


def missing_js() -> str | None:
    """Why the JS SDK cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm, then make js-setup)"
    if not SDK_MANIFEST.is_file():
        return f"{SDK_PACKAGE} is not installed in tests/js/node_modules (run make js-setup)"
    return None


def require_js() -> None:
    """Skip the calling module when node or the SDK is missing, unless REQUIRE_JS=1 (CI), where
    that is a failure. Called at import time, so a skipped module starts no server."""
    reason = missing_js()
    if reason is None:
        return
    if os.environ.get("REQUIRE_JS") == "1":
        pytest.fail(f"REQUIRE_JS=1 but {reason}", pytrace=False)
    pytest.skip(f"JS SDK tests skipped: {reason}", allow_module_level=True)


class JsSdkError(Exception):
    """An SDK call that threw in Node: the error's name, message and HTTP status (if any)."""

    def __init__(self, call: str, error: Mapping[str, Any]) -> None:
        self.status: int | None = error.get("status")
        self.name = str(error.get("name"))
        self.text = str(error.get("message"))
        super().__init__(f"{call} threw {self.name} (status {self.status}): {self.text}")


@dataclass
class NodeDriver:
    """The running `node sdk_driver.mjs --serve`; ``client()`` makes a handle with credentials."""

    process: asyncio.subprocess.Process
    sdk_version: str
    node_version: str
    stderr: list[str] = field(default_factory=list)
    failure: str | None = None  # why the driver stopped answering, once it has
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls) -> NodeDriver:
        env = {k: v for k, v in os.environ.items() if k not in _SDK_ENV_KEYS}
        process = await asyncio.create_subprocess_exec(
            "node", str(DRIVER), "--serve", cwd=JS_DIR, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
        assert process.stdout is not None and process.stderr is not None
        stderr: list[str] = []
        drain = asyncio.create_task(_drain(process.stderr, stderr))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                first = await process.stdout.readline()
            hello = json.loads(first)
        except (TimeoutError, json.JSONDecodeError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drain, 5)
            pytest.fail(f"node {DRIVER.name} did not start (exit {process.returncode})\n{''.join(stderr)}")
        driver = cls(process, str(hello["sdk"]), str(hello["node"]), stderr)
        driver._tasks = [drain, asyncio.create_task(driver._read_answers())]
        return driver

    def client(self, api_url: str, *, api_key: str | None = None,
               headers: Mapping[str, str] | None = None) -> JsClient:
        return JsClient(self, {"apiUrl": api_url, "apiKey": api_key, "defaultHeaders": dict(headers or {})})

    async def request(self, client: Mapping[str, Any], call: str, args: list[Any],
                      until: Mapping[str, Any] | None = None) -> Any:
        assert self.process.stdin is not None
        if self.failure is not None:
            pytest.fail(f"the JS SDK driver is gone: {self.failure}\n{self.tail()}")
        request_id = next(self._ids)
        answered = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answered
        message: dict[str, Any] = {"id": request_id, "client": client, "call": call, "args": args}
        if until is not None:
            message["until"] = until
        line = json.dumps(message)
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                reply = await answered
        except TimeoutError:
            pytest.fail(f"the JS SDK's {call} did not answer within {CALL_TIMEOUT:.0f}s\n{self.tail()}")
        finally:
            self._waiting.pop(request_id, None)
        if not reply["ok"]:
            raise JsSdkError(call, reply["error"])
        return reply["result"]

    def tail(self) -> str:
        return "".join(self.stderr[-STDERR_TAIL:])

    async def _read_answers(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                reply = json.loads(line)
                waiting = self._waiting.get(reply.get("id"))
                if waiting is not None and not waiting.done():
                    waiting.set_result(reply)
            self.failure = f"node exited ({self.process.returncode})"
        except (ValueError, OSError) as exc:  # a line past LINE_LIMIT, or one that is not JSON
            self.failure = f"unreadable answer from node: {exc!r}"
        # Nothing else will answer: every waiting call fails now rather than at its timeout.
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(RuntimeError(f"{self.failure}\n{self.tail()}"))

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, 5)


@dataclass(frozen=True)
class JsClient:
    """One `new Client({apiUrl, apiKey, defaultHeaders})` on the Node side."""

    driver: NodeDriver
    config: Mapping[str, Any]

    async def call(self, method: str, *args: Any, until: Mapping[str, Any] | None = None) -> Any:
        """``client.<method>(...args)`` in Node, e.g. ``call("runs.wait", thread_id, "draftloop",
        {"input": ...})``; a stream comes back as the list of ``{event, data, id}`` it yielded, up
        to its end or to the first part ``until`` matches (its keys and values, at any depth)."""
        return await self.driver.request(self.config, method, list(args), until)


async def _drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))
