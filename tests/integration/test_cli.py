"""`draftloop run` as a user runs it: a separate process, talking to the loopback fakes, storing
into a real database (SQLite and Postgres).

Each test starts `.venv/bin/draftloop` with asyncio's subprocess API (the event loop keeps
serving the fakes while the CLI runs) and an environment that points every provider at a fake.
Every wait on a process is bounded, and every process still running when a test ends is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from devtools.fakes.ollama import OllamaReply
from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes, ScriptedWriter
from storage.attempts import AttemptRepository
from storage.engine import create_engine, session_factory
from storage.models import Attempt, Task, Usage
from storage.tasks import TaskRepository

DRAFTLOOP = Path(sys.executable).parent / "draftloop"
REQUEST = "Write a 300-word blog post about async Python for backend developers, with a cover photo"
# A run against the fakes takes a few seconds (mostly imports); the slack is for a loaded CI box.
RUN_TIMEOUT = 60.0
# The embedded model on CPU: loading plus three short generations, about 20 s; the rest is slack.
REAL_MODEL_TIMEOUT = 90.0
KILL_TIMEOUT = 10.0
SUMMARY_KEYS = {"thread_id", "status", "intent", "attempts", "result", "sources", "images", "usage", "model", "warnings"}
RESULT_KEYS = {"title", "markdown", "word_count", "passed", "score"}
# Settings from a developer's shell that would send the CLI somewhere other than the fakes.
_LEAKY_ENV = (
    "DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY",
    "SERPER_API_KEY", "SERPER_BASE_URL", "PEXELS_API_KEY", "PEXELS_BASE_URL", "EMBEDDED_MODEL_PATH",
    "QUALITY_THRESHOLD", "MAX_REVISIONS", "RESEARCH_ENABLED", "IMAGES_ENABLED", "DEFAULT_TARGET_WORDS",
    "SEARCH_RESULTS", "MODEL_PRICES", "LLM_MAX_TOKENS",
)


# process handling ------------------------------------------------------------------------------


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int | None  # None: still running when the output was taken
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"draftloop {' '.join(self.args)} -> {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def json(self) -> dict[str, Any]:
        """The one JSON object --json promises; anything else on stdout is a failure."""
        assert self.returncode == 0, self.describe()
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"expected exactly one line of JSON\n{self.describe()}"
        data = json.loads(lines[0])
        assert isinstance(data, dict), self.describe()
        return data


@dataclass
class CliProcess:
    """A running CLI whose output is drained as it comes, so it never blocks on a full pipe and a
    test can wait for a given progress line."""

    args: tuple[str, ...]
    process: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            asyncio.create_task(_drain(self.process.stdout, self.stdout)),
            asyncio.create_task(_drain(self.process.stderr, self.stderr)),
        ]

    def snapshot(self) -> CliResult:
        return CliResult(self.args, self.process.returncode, "".join(self.stdout), "".join(self.stderr))

    async def wait_for_stderr(self, text: str, timeout: float = RUN_TIMEOUT) -> None:
        await wait_until(lambda: any(text in line for line in self.stderr), timeout,
                         f"{text!r} on stderr", self)

    async def finish(self, timeout: float = RUN_TIMEOUT) -> CliResult:
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            pytest.fail(f"draftloop did not exit within {timeout:.0f}s\n{self.snapshot().describe()}")
        # The pipes close when the process exits; the readers then hit EOF.
        await asyncio.wait_for(asyncio.gather(*self.readers), KILL_TIMEOUT)
        return self.snapshot()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), KILL_TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*self.readers), KILL_TIMEOUT)


async def _drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str, proc: CliProcess | None = None) -> None:
    """Poll until predicate holds; fail (with the CLI's output so far) on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.process.returncode is not None:
            pytest.fail(f"draftloop exited before {what}\n{proc.snapshot().describe()}")
        if time.monotonic() > deadline:
            detail = f"\n{proc.snapshot().describe()}" if proc is not None else ""
            pytest.fail(f"no {what} within {timeout:.0f}s{detail}")
        await asyncio.sleep(0.05)


class Cli:
    """Starts `draftloop run ...` with one environment; kills whatever is still running at close."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[CliProcess] = []

    async def start(self, *args: str) -> CliProcess:
        process = await asyncio.create_subprocess_exec(
            str(DRAFTLOOP), "run", *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        running = CliProcess(args, process)
        self.processes.append(running)
        return running

    async def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> CliResult:
        return await (await self.start(*args)).finish(timeout)

    async def close(self) -> None:
        # Signal every process before waiting on any, so one slow exit cannot leave others running.
        for running in self.processes:
            if running.process.returncode is None:
                running.process.kill()
        for running in self.processes:
            await running.kill()


def cli_env(fakes: GraphFakes | None, data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update({
        "DRAFTLOOP_DATA_DIR": str(data_dir),
        "LANGSMITH_TRACING": "false",
        "PYTHONUNBUFFERED": "1",
        "QUALITY_THRESHOLD": "70",
        "MAX_REVISIONS": "2",
        # A misbehaving fake should fail a run in seconds, not after production timeouts.
        "LLM_TIMEOUT": "15",
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


@pytest.fixture
async def cli(graph_fakes: GraphFakes, database_url: str, tmp_path: Path) -> AsyncIterator[Cli]:
    """The CLI on each backend, starting from an empty database: it must migrate by itself."""
    launcher = Cli(cli_env(graph_fakes, tmp_path, database_url))
    try:
        yield launcher
    finally:
        await launcher.close()


@pytest.fixture
async def sqlite_cli(graph_fakes: GraphFakes, tmp_path: Path) -> AsyncIterator[Cli]:
    """The CLI with no DATABASE_URL: its default SQLite file under DRAFTLOOP_DATA_DIR."""
    launcher = Cli(cli_env(graph_fakes, tmp_path, None))
    try:
        yield launcher
    finally:
        await launcher.close()


# fake scripting and inspection -----------------------------------------------------------------


def schema_title(body: dict[str, Any]) -> str | None:
    """Which structured call a chat request is (IntentChoice, Score), None for free text."""
    fmt = body.get("format")
    return fmt.get("title") if isinstance(fmt, dict) else None


@dataclass
class SlowJudge:
    """The scripted writer, except that the critique call takes `latency` seconds to answer: a
    window in which the CLI is known to be inside the critique node."""

    writer: ScriptedWriter
    latency: float = 30.0

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        reply = self.writer(body)
        if schema_title(body) == "CritiqueVerdict" and self.latency:
            return replace(reply, latency=self.latency)
        return reply


@dataclass
class StoredRun:
    task: Task
    attempts: list[Attempt]
    usage: list[Usage]


async def stored_run(database_url: str, thread_id: str) -> StoredRun:
    """What the CLI persisted for a thread, read back as the task API reads it."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            task = await TaskRepository(session).get_by_thread(thread_id)
            assert task is not None, f"no task row for thread {thread_id}"
            attempts = await AttemptRepository(session).list_for_task(task.id)
            usage = list(await session.scalars(
                select(Usage).where(Usage.task_id == task.id).order_by(Usage.created_at, Usage.id)))
            return StoredRun(task, attempts, usage)
    finally:
        await engine.dispose()


def progress_nodes(stderr: str) -> list[str]:
    """Nodes the progress output reported as finished, in order."""
    return [line[2:].split(":")[0].split(" ")[0] for line in stderr.splitlines() if line.startswith("✓ ")]


# tests -----------------------------------------------------------------------------------------


async def test_json_mode_prints_one_summary_object_and_stores_the_run(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    result = await cli.run(REQUEST, "--json")
    data = result.json()

    assert SUMMARY_KEYS <= set(data), data.keys()
    assert RESULT_KEYS <= set(data["result"]), data["result"].keys()
    # --json keeps stderr for errors only: no progress lines mixed into scripts' logs.
    assert "→ " not in result.stderr and "✓ " not in result.stderr, result.describe()
    assert data["status"] == "completed"
    assert data["intent"]["kind"] == "content" and data["intent"]["content_type"] == "blog_post"
    assert graph_fakes.writer.calls == ["intent", "plan", "gaps", "draft", "score"]

    final = data["result"]
    assert final["title"].startswith("A practical guide to")
    assert final["markdown"].startswith("# A practical guide to")
    assert final["word_count"] > 200
    assert final["passed"] is True and final["score"] >= 70
    assert [(a["number"], a["score"], a["passed"]) for a in data["attempts"]] == [(1, final["score"], True)]

    assert {s["url"] for s in data["sources"]} >= {"https://realpython.com/async-io-python/",
                                                   "https://news.example.com/python-314"}
    assert data["images"] and all(i["src"].startswith(graph_fakes.pexels.base_url) for i in data["images"])
    assert data["model"] == {"provider": "ollama", "name": "llama3.2"}
    assert data["warnings"] == []

    calls = len(graph_fakes.ollama.chat_requests)
    assert calls == 5  # intent, query plan, research gaps, draft, judge
    assert data["usage"] == {"input_tokens": graph_fakes.ollama.prompt_tokens * calls,
                             "output_tokens": graph_fakes.ollama.completion_tokens * calls,
                             "cost_usd": 0.0}

    stored = await stored_run(database_url, data["thread_id"])
    assert stored.task.status == "completed"
    assert stored.task.request == REQUEST
    assert stored.task.finished_at is not None
    assert stored.task.result is not None and stored.task.result["markdown"] == final["markdown"]
    assert (stored.task.input_tokens, stored.task.output_tokens) == (
        data["usage"]["input_tokens"], data["usage"]["output_tokens"])
    assert [(a.number, a.score, a.passed) for a in stored.attempts] == [(1, final["score"], True)]
    assert [u.node for u in stored.usage] == ["route_intent", "research", "research", "draft", "critique"]
    assert sum(u.input_tokens for u in stored.usage) == data["usage"]["input_tokens"]


async def test_plain_mode_streams_progress_on_stderr_and_prints_markdown_and_summary_on_stdout(
    sqlite_cli: Cli, graph_fakes: GraphFakes, tmp_path: Path
) -> None:
    result = await sqlite_cli.run(REQUEST)

    assert result.returncode == 0, result.describe()
    assert progress_nodes(result.stderr) == ["route_intent", "research", "draft", "critique", "finalize"]
    # The engine's node summaries (app/engine/messages.py), as the task API's events carry them.
    assert "✓ route_intent: content blog_post request, 300 words" in result.stderr
    assert re.search(r"^✓ research: 5 sources \(\d+ pages read\) from \d+ searches: '.+'; 3 images, 0 warnings$",
                     result.stderr, re.MULTILINE), result.describe()
    assert "→ draft" in result.stderr
    # The piece itself goes to stdout only, so `draftloop run ... > post.md` captures it cleanly.
    assert "# A practical guide" not in result.stderr
    assert result.stdout.startswith("# A practical guide to async Python")
    body, _, report = result.stdout.partition("── summary ──\n")
    assert "## Conclusion" in body
    assert "status: completed" in report
    assert "intent:   content blog_post (model)" in report
    assert "passed: True" in report
    calls = len(graph_fakes.ollama.chat_requests)
    tokens_in, tokens_out = graph_fakes.ollama.prompt_tokens * calls, graph_fakes.ollama.completion_tokens * calls
    assert f"tokens:   {tokens_in} in / {tokens_out} out" in report
    assert "model:    ollama llama3.2" in report
    # No DATABASE_URL: the run lands in the data directory's default SQLite file.
    assert await asyncio.to_thread((tmp_path / "draftloop.db").is_file)


async def test_a_run_killed_mid_critique_resumes_in_a_new_process_without_redoing_finished_nodes(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    slow = SlowJudge(graph_fakes.writer)
    graph_fakes.ollama.responder = slow
    thread_id = str(uuid.uuid4())

    first = await cli.start("--thread", thread_id, REQUEST)
    await first.wait_for_stderr("✓ draft")
    # The "✓ draft" line is streamed before the step's checkpoint is written; the critique call
    # reaching the fake proves the next step started, which durability="sync" only allows once
    # the draft checkpoint is saved. Killing earlier would test a race, not resumption.
    await wait_until(lambda: "score" in graph_fakes.writer.calls, RUN_TIMEOUT, "critique call", first)
    await first.kill()
    assert first.process.returncode == -signal.SIGKILL
    assert graph_fakes.writer.calls == ["intent", "plan", "gaps", "draft", "score"]

    before_restart = len(graph_fakes.ollama.chat_requests)
    slow.latency = 0
    resumed = await cli.run("--thread", thread_id, "--json")
    data = resumed.json()

    after_restart = graph_fakes.ollama.chat_requests[before_restart:]
    assert [schema_title(body) for body in after_restart] == ["CritiqueVerdict"], "only the critique may run again"
    assert graph_fakes.writer.calls == ["intent", "plan", "gaps", "draft", "score", "score"]
    assert data["thread_id"] == thread_id
    assert data["status"] == "completed"
    assert data["result"]["markdown"].startswith("# A practical guide to")
    assert data["result"]["passed"] is True
    assert [a["number"] for a in data["attempts"]] == [1]
    # Intent, research and draft usage came from the killed process, through the checkpoint.
    assert data["usage"]["input_tokens"] == graph_fakes.ollama.prompt_tokens * 5

    stored = await stored_run(database_url, thread_id)
    assert stored.task.status == "completed"
    assert [u.node for u in stored.usage] == ["route_intent", "research", "research", "draft", "critique"]


async def test_approval_waits_then_reject_drafts_again_and_approve_completes(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    writer = graph_fakes.writer
    waiting = (await cli.run("--require-approval", REQUEST, "--json")).json()
    thread_id = waiting["thread_id"]
    assert waiting["status"] == "awaiting_approval"
    assert waiting["interrupt"]["type"] == "approval"
    assert waiting["interrupt"]["markdown"].startswith("# A practical guide to")
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score"]

    rejected = (await cli.run("--thread", thread_id, "--reject", "Mention uvloop", "--json")).json()
    assert rejected["status"] == "awaiting_approval"
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score", "draft", "score"]
    assert "Mention uvloop" in writer.prompts[-1]
    assert [a["number"] for a in rejected["attempts"]] == [1, 2]

    approved = (await cli.run("--thread", thread_id, "--approve", "--json")).json()
    assert approved["status"] == "completed"
    assert approved["interrupt"] is None
    assert approved["result"]["passed"] is True
    assert approved["result"]["markdown"].startswith("# A practical guide to")
    assert len(writer.calls) == 7, "approving must not call the model again"

    stored = await stored_run(database_url, thread_id)
    assert stored.task.status == "completed"
    assert [a.number for a in stored.attempts] == [1, 2]
    assert stored.attempts[1].feedback == "Mention uvloop"

    again = await cli.run("--thread", thread_id, "--approve", "--json")
    assert again.returncode == 2, again.describe()
    assert "not waiting for approval" in again.stderr
    assert again.stdout == ""


async def test_a_follow_up_on_the_same_thread_revises_the_previous_draft(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    writer = graph_fakes.writer
    thread_id = str(uuid.uuid4())
    first = (await cli.run("--thread", thread_id, REQUEST, "--json")).json()
    assert first["status"] == "completed"

    # A model that recognises the edit; the graph still has to find the previous draft in the
    # thread's checkpoint, or it downgrades the request to new content.
    writer.intent = {"kind": "revise", "confidence": 90, "reason": "an edit of the last draft"}
    follow_up = "make it shorter, about 150 words"
    second = (await cli.run("--thread", thread_id, follow_up, "--json")).json()

    assert second["thread_id"] == thread_id
    assert second["status"] == "completed"
    assert second["intent"]["kind"] == "revise"
    assert second["intent"]["content_type"] == "blog_post"
    # The follow-up revises without researching again.
    assert writer.calls == ["intent", "plan", "gaps", "draft", "score", "intent", "draft", "score"]
    revision_prompt = writer.prompts[-1]
    assert "Length: about 150 words" in revision_prompt
    assert follow_up in revision_prompt
    assert first["result"]["markdown"] in revision_prompt
    assert 0 < second["result"]["word_count"] < first["result"]["word_count"]
    # The summary reports this turn (its three calls, not all eight); numbering runs across the
    # thread, so this turn's attempt is the thread's second.
    assert [a["number"] for a in second["attempts"]] == [2]
    assert second["usage"]["input_tokens"] == graph_fakes.ollama.prompt_tokens * 3

    stored = await stored_run(database_url, thread_id)
    # Storage keeps the whole thread: the first turn's attempt and usage are not replaced.
    assert [a.number for a in stored.attempts] == [1, 2]
    assert len(stored.usage) == 8
    assert stored.task.request == follow_up
    assert stored.task.params["target_words"] == 150
    assert stored.task.intent is not None and stored.task.intent["kind"] == "revise"


async def thread_rows(database_url: str, thread_id: str) -> list[Task]:
    """Every task row of a thread, oldest first."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return list(reversed(await TaskRepository(session).runs_of_thread(thread_id)))
    finally:
        await engine.dispose()


async def test_each_cli_turn_gets_its_own_task_row_dated_when_it_started(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    thread_id = str(uuid.uuid4())
    await cli.run("--thread", thread_id, "--require-approval", REQUEST, "--json")
    [waiting] = await thread_rows(database_url, thread_id)
    assert waiting.status == "awaiting_approval" and waiting.request == REQUEST
    assert waiting.pending_approval is not None and waiting.pending_approval["attempt"] == 1
    # Dated when the turn started, not when it ended.
    assert waiting.created_at < waiting.updated_at

    await cli.run("--thread", thread_id, "--approve", "--json")
    graph_fakes.writer.intent = {"kind": "revise", "confidence": 90, "reason": "an edit of the last draft"}
    await cli.run("--thread", thread_id, "make it shorter, about 150 words", "--json")
    first, second = await thread_rows(database_url, thread_id)
    assert first.id == waiting.id and first.status == "completed" and first.request == REQUEST
    assert first.created_at < first.finished_at <= second.created_at
    # The revision carries the thread's approval rule over, so it waits on its own row.
    assert second.status == "awaiting_approval" and second.request == "make it shorter, about 150 words"
    assert second.pending_approval is not None and second.pending_approval["attempt"] == 2
    assert first.lease_owner is None and second.lease_owner is None


async def test_a_request_too_long_for_the_model_exits_2_naming_the_limit_and_records_nothing(
    cli: Cli, graph_fakes: GraphFakes, database_url: str
) -> None:
    # (3072 - 2048 tokens kept for the prompts) * 3 characters a token: 3,072 characters.
    cli.env["MODEL_CONTEXT_TOKENS"] = "3072"
    thread_id = str(uuid.uuid4())
    result = await cli.run("--thread", thread_id, "x" * 3073)

    assert result.returncode == 2, result.describe()
    assert result.stderr == ("draftloop: the request is 3,073 characters; at most 3,072 fit the model's context "
                             "(MODEL_CONTEXT_TOKENS=3072 tokens)\n")
    assert await thread_rows(database_url, thread_id) == []
    assert graph_fakes.ollama.chat_requests == []


@pytest.mark.parametrize("decision", [("--approve",), ("--reject", "add a section on uv")])
async def test_approve_or_reject_without_a_thread_exits_2_naming_the_flag_used(
    sqlite_cli: Cli, decision: tuple[str, ...]
) -> None:
    result = await sqlite_cli.run(*decision)

    assert result.returncode == 2, result.describe()
    assert result.stderr.startswith("usage: draftloop run"), result.describe()
    assert f"draftloop run: error: {decision[0]} needs --thread ID" in result.stderr


@pytest.mark.parametrize("thread", [(), ("--thread", "my-post")])
async def test_a_blank_request_exits_2_saying_it_is_empty_and_records_nothing(
    sqlite_cli: Cli, tmp_path: Path, thread: tuple[str, ...]
) -> None:
    result = await sqlite_cli.run(*thread, "   ")

    assert result.returncode == 2, result.describe()
    assert "draftloop run: error: the request is empty" in result.stderr
    assert result.stdout == ""
    assert not await asyncio.to_thread((tmp_path / "draftloop.db").exists)


async def test_an_unusable_database_url_flag_is_named_not_database_url(sqlite_cli: Cli) -> None:
    result = await sqlite_cli.run("--database-url", "nonsense", REQUEST)

    assert result.returncode == 2, result.describe()
    assert result.stderr.startswith("draftloop: --database-url is not a database URL; use e.g. "), result.describe()
    assert "DATABASE_URL" not in result.stderr.replace("--database-url", "")


async def test_run_without_request_or_thread_exits_2_with_usage(sqlite_cli: Cli) -> None:
    result = await sqlite_cli.run()

    assert result.returncode == 2, result.describe()
    assert "usage: draftloop" in result.stderr
    assert "give a request, or --thread ID" in result.stderr
    assert result.stdout == ""


@pytest.mark.real_model
async def test_embedded_model_runs_the_whole_pipeline_from_the_cli(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path, None)
    # No search keys: research degrades to warnings. One attempt, greedy decoding (the same
    # output every run) and a cap on each reply keep the run short and repeatable. One thread:
    # llama.cpp's threads spin-wait on each other, so on a 2-core runner shared with other work
    # two threads ran 55-130 s where one runs 15-20 s.
    env.update({"LLM_PROVIDER": "embedded", "MAX_REVISIONS": "0", "LLM_TIMEOUT": "60",
                "LLM_TEMPERATURE": "0", "LLM_MAX_TOKENS": "200", "EMBEDDED_THREADS": "1"})
    launcher = Cli(env)
    try:
        result = await launcher.run("A 100-word blog post about tea", "--json", timeout=REAL_MODEL_TIMEOUT)
    finally:
        await launcher.close()
    data = result.json()

    # Plumbing only: a small model's prose and scores are not asserted.
    assert data["status"] == "completed"
    assert data["result"]["markdown"].strip()
    assert data["model"]["provider"] == "embedded"
    # The usage records name the model as its GGUF file does, not by the server's alias.
    assert data["model"]["name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    assert any("SERPER_API_KEY" in w for w in data["warnings"])

    stored = await stored_run(f"sqlite+aiosqlite:///{tmp_path / 'draftloop.db'}", data["thread_id"])
    assert len(stored.attempts) == 1
    assert stored.task.input_tokens > 0
