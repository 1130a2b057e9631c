"""`draftloop run "<request>"`: one request through the graph, with live progress."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any, TextIO

import uvicorn
from litestar import Litestar
from sqlalchemy.exc import SQLAlchemyError

from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command

from app.graph_runtime import GraphRuntime, open_graph_runtime
from app.http.app import create_app
from app.logs import configure_logging
from app.run_services import open_run_services
from app.security import MIN_PASSWORD_LENGTH, hash_password
from app.settings import ServiceSettings, load_dotenv
from app.supervisor import SUPERVISOR_PID_ENV
from graph.nodes.finalize import usage_totals
from storage.engine import adatabase_url_from_env, create_engine, normalize_database_url, session_factory
from storage.migrate import upgrade_database
from storage.models import Role
from storage.repositories import UserExists, UserRepository
from tools.llm import ModelCallError, ModelProviderError

log = logging.getLogger("draftloop")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
ORPHAN_CHECK_SECONDS = 0.5


class Progress:
    """Human-readable progress on stderr; silent in --json mode except for errors."""

    def __init__(self, out: TextIO, enabled: bool, tokens: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.tokens = tokens
        self.streaming_tokens = False

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.streaming_tokens:
            self.out.write("\n")
            self.streaming_tokens = False
        self.out.write(text + "\n")
        self.out.flush()

    def token(self, text: str) -> None:
        if self.enabled and self.tokens and text:
            self.streaming_tokens = True
            self.out.write(text)
            self.out.flush()

    def node_started(self, name: str) -> None:
        self.line(f"→ {name}")

    def node_finished(self, name: str, update: dict[str, Any]) -> None:
        if name == "route_intent":
            intent = update.get("intent", {})
            request = update.get("request", {})
            self.line(f"✓ route_intent: {intent.get('kind')} {intent.get('content_type') or ''} "
                      f"({intent.get('source')}, {request.get('target_words', '?')} words)")
        elif name == "research":
            research = update.get("research", {})
            self.line(f"✓ research: {len(research.get('sources', []))} sources, "
                      f"{len(research.get('images', []))} images, {len(research.get('warnings', []))} warnings")
        elif name == "draft":
            draft = update.get("draft", {})
            self.line(f"✓ draft {draft.get('number')}: {draft.get('word_count')} words")
        elif name == "critique":
            for attempt in update.get("attempts", []):
                verdict = "passed" if attempt.get("passed") else "below threshold"
                self.line(f"✓ critique: attempt {attempt.get('number')} scored {attempt.get('score')} ({verdict})")
        else:
            self.line(f"✓ {name}")
        for warning in update.get("warnings", []):
            self.line(f"  ! {warning}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="draftloop", description="Draftloop content pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one request through the content graph")
    run.add_argument("request", nargs="?", help="what to write or ask; omit with --thread to resume")
    run.add_argument("--thread", help="thread id: a new id starts a run on it, an existing one continues it")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    decision = run.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the draft the thread waits on")
    decision.add_argument("--reject", metavar="FEEDBACK", help="reject the draft with feedback; it is drafted again")
    run.add_argument("--require-approval", action="store_true", help="pause for a human before finalising")
    run.add_argument("--database-url", help="overrides DATABASE_URL")
    serve = commands.add_parser("serve", help="serve the HTTP API (task API, SSE, health, metrics)")
    serve.add_argument("--host", help="overrides HOST (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="overrides PORT (default 8000)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="overrides WORKERS: run graphs in N worker processes this server starts and "
                            "supervises, and only serve HTTP here (default 0: all in this process)")
    serve.add_argument("--role", choices=["all", "api"],
                       help="overrides DRAFTLOOP_ROLE: api serves HTTP only and leaves graph runs to "
                            "`draftloop worker` processes started separately on the same database")
    commands.add_parser("worker", help="run queued tasks without serving HTTP (beside a `serve --role api`)")
    user = commands.add_parser("create-user", help="create a user who can log in to the API")
    user.add_argument("name", help="the user name to log in with")
    user.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value,
                      help="admin: everything; editor: tasks, approvals, runs and threads; viewer: read only")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from the first line of stdin instead of prompting")
    user.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args(argv)
    if args.command == "run" and not args.request and not args.thread:
        parser.error("give a request, or --thread ID to resume a thread")
    # Only `run` has these options: `serve` must not trip over them.
    deciding = args.command == "run" and (args.approve or args.reject is not None)
    if deciding and not args.thread:
        parser.error("--approve/--reject need --thread ID")
    if deciding and args.request:
        parser.error("--approve/--reject take no request")
    return args


async def choose_input(args: argparse.Namespace, runtime: GraphRuntime, config: dict[str, Any]) -> tuple[Any, str | None]:
    """(graph input, problem). None input means: continue from the last checkpoint."""
    snapshot = await runtime.graph.aget_state(config)
    waiting = bool(snapshot.interrupts)
    if args.approve or args.reject is not None:
        if not waiting:
            return None, "this thread is not waiting for approval"
        return Command(resume={"approved": bool(args.approve), "feedback": args.reject or ""}), None
    if args.request:
        if waiting:
            return None, "this thread waits for approval: answer with --approve or --reject \"feedback\""
        fields = {"require_approval": True} if args.require_approval else {}
        return {"messages": [HumanMessage(args.request)], "request": fields}, None
    if waiting or snapshot.next:
        return None, None
    if snapshot.values.get("result"):
        return "done", None
    return None, "nothing to resume on this thread: give a request"


def summary(thread_id: str, values: dict[str, Any], status: str, interrupts: list[Any]) -> dict[str, Any]:
    result = values.get("result") or {}
    turn = int(values.get("turn") or 1)
    attempts = [a for a in values.get("attempts") or [] if int(a.get("turn", 1)) == turn]
    usage = [u for u in values.get("usage") or [] if int(u.get("turn", 1)) == turn]
    research = values.get("research") or {}
    last = usage[-1] if usage else {}
    return {
        "thread_id": thread_id,
        "status": status,
        "intent": values.get("intent") or {},
        "attempts": [{"number": a.get("number"), "score": a.get("score"), "passed": a.get("passed"),
                      "word_count": a.get("word_count")} for a in attempts],
        "result": {
            "title": result.get("title", ""),
            "markdown": result.get("markdown", ""),
            "word_count": result.get("word_count", 0),
            "passed": result.get("passed", False),
            "score": result.get("score"),
            "answer": result.get("answer"),
            "seo": result.get("seo"),
            "featured_image": result.get("featured_image"),
        },
        "sources": research.get("sources", []) if result.get("kind") != "answer" else result.get("sources", []),
        "images": research.get("images", []),
        "usage": {k: v for k, v in usage_totals(usage).items() if k != "calls"},
        "model": {"provider": last.get("provider", ""), "name": last.get("model", "")},
        "warnings": list(dict.fromkeys(values.get("warnings") or [])),
        "interrupt": interrupts[0] if interrupts else None,
    }


def print_report(data: dict[str, Any], seconds: float, out: TextIO) -> None:
    result = data["result"]
    if data["status"] == "awaiting_approval":
        out.write(f"Waiting for approval on thread {data['thread_id']}.\n")
        out.write(f"  draftloop run --thread {data['thread_id']} --approve\n")
        out.write(f"  draftloop run --thread {data['thread_id']} --reject \"what to change\"\n\n")
    body = result.get("markdown") or result.get("answer") or ""
    if body:
        out.write(body.rstrip() + "\n\n")
    intent = data["intent"]
    out.write("── summary ──\n")
    out.write(f"thread:   {data['thread_id']}  status: {data['status']}\n")
    out.write(f"intent:   {intent.get('kind')} {intent.get('content_type') or ''} ({intent.get('source')})\n")
    if data["attempts"]:
        scores = ", ".join(f"#{a['number']}={a['score']}" for a in data["attempts"])
        out.write(f"attempts: {scores}  passed: {result.get('passed')}\n")
    out.write(f"sources:  {len(data['sources'])}  images: {len(data['images'])}\n")
    usage = data["usage"]
    out.write(f"tokens:   {usage['input_tokens']} in / {usage['output_tokens']} out  cost: ${usage['cost_usd']:.6f}\n")
    out.write(f"model:    {data['model']['provider']} {data['model']['name']}  duration: {seconds:.1f}s\n")
    for warning in data["warnings"]:
        out.write(f"warning:  {warning}\n")


async def run_command(args: argparse.Namespace) -> int:
    progress = Progress(sys.stderr, enabled=not args.json, tokens=sys.stderr.isatty())
    thread_id = args.thread or str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    started = time.perf_counter()
    async with open_graph_runtime(args.database_url) as runtime:
        graph_input, problem = await choose_input(args, runtime, config)
        if problem:
            sys.stderr.write(f"draftloop: {problem}\n")
            return EXIT_USAGE
        if graph_input != "done":
            progress.line(f"thread {thread_id}")
            async for mode, chunk in runtime.graph.astream(
                graph_input,
                config,
                context=runtime.context(require_approval=True if args.require_approval else None),
                stream_mode=["tasks", "updates", "messages"],
                durability="sync",
            ):
                if mode == "tasks" and "input" in chunk:
                    progress.node_started(chunk["name"])
                elif mode == "updates":
                    for name, update in chunk.items():
                        if name == "__interrupt__":
                            progress.line("⏸ waiting for approval")
                        elif isinstance(update, dict):
                            progress.node_finished(name, update)
                elif mode == "messages":
                    message, meta = chunk
                    if meta.get("langgraph_node") == "draft" and isinstance(message, AIMessageChunk):
                        progress.token(str(message.content))
        snapshot = await runtime.graph.aget_state(config)
    interrupts = [i.value for i in snapshot.interrupts]
    status = "awaiting_approval" if interrupts else ("completed" if snapshot.values.get("result") else "failed")
    data = summary(thread_id, snapshot.values, status, interrupts)
    if args.json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        print_report(data, time.perf_counter() - started, sys.stdout)
    return EXIT_OK if status != "failed" else EXIT_FAILED


class DraftloopServer(uvicorn.Server):
    """Starts the drain on the shutdown signal itself: open SSE streams end and runs head for a
    checkpoint while uvicorn waits for connections, instead of after that wait."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.litestar_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.litestar_app.state
        if state is not None:
            bus, executor = state.get("bus"), state.get("executor")
            if bus is not None:
                bus.close()
            if executor is not None:
                executor.begin_drain()
        super().handle_exit(sig, frame)


def serve_command(args: argparse.Namespace) -> int:
    load_dotenv()
    settings = ServiceSettings.from_env()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides.update({k: v for k, v in (("workers", args.workers), ("role", args.role)) if v is not None})
    if settings.role == "worker" and "role" not in overrides:
        raise ValueError("DRAFTLOOP_ROLE=worker is for `draftloop worker`; `serve` takes all or api")
    settings = replace(settings, **overrides)
    if not 0 <= settings.workers <= 64:
        raise ValueError(f"--workers must be between 0 and 64, got {settings.workers}")
    configure_logging(settings.log_format, settings.log_level)
    print(f"Draftloop serving on http://{settings.host}:{settings.port}  (API docs: /schema)", flush=True)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5)
    DraftloopServer(config, app).run()
    return EXIT_OK


async def run_worker(settings: ServiceSettings) -> int:
    """Claim and run tasks until SIGTERM/SIGINT, then drain like the server does."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with open_graph_runtime(settings.database_url) as runtime, open_run_services(runtime, settings) as services:

        def on_signal() -> None:
            services.executor.begin_drain()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        log.info("worker %s running up to %d tasks at a time", services.executor.worker_id, settings.concurrency)
        orphan_watch = asyncio.create_task(_stop_when_orphaned(on_signal), name="draftloop-orphan-watch")
        try:
            await stop.wait()
        finally:
            orphan_watch.cancel()
    return EXIT_OK


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
    load_dotenv()
    settings = replace(ServiceSettings.from_env(), role="worker", workers=0)
    configure_logging(settings.log_format, settings.log_level)
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    return asyncio.run(run_worker(settings))


def read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line for scripts, else a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise ValueError("the passwords differ")
    return password


async def create_user_command(args: argparse.Namespace, password: str) -> int:
    url = normalize_database_url(args.database_url) if args.database_url else await adatabase_url_from_env()
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            await UserRepository(session).create(args.name, await hash_password(password), args.role)
    finally:
        await engine.dispose()
    sys.stdout.write(f"created {args.role} {args.name!r}; log in with POST /api/auth/token\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "serve":
        try:
            return serve_command(args)
        except ValueError as exc:
            # A refused start-up setting (e.g. no DRAFTLOOP_SECRET_KEY outside dev mode).
            sys.stderr.write(f"draftloop: {exc}\n")
            return EXIT_USAGE
    if args.command == "worker":
        try:
            return worker_command(args)
        except ValueError as exc:
            sys.stderr.write(f"draftloop: {exc}\n")
            return EXIT_USAGE
    if args.command == "create-user":
        load_dotenv()
        try:
            password = read_password(args.password_stdin)
            if len(password) < MIN_PASSWORD_LENGTH:
                raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
            return asyncio.run(create_user_command(args, password))
        except (ValueError, UserExists) as exc:
            sys.stderr.write(f"draftloop: {exc}\n")
            return EXIT_USAGE
        except SQLAlchemyError as exc:
            sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check DATABASE_URL\n")
            return EXIT_FAILED
    load_dotenv()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_command(args))
    except (ModelProviderError, ModelCallError) as exc:
        sys.stderr.write(f"draftloop: {exc}\n")
        if args.thread or isinstance(exc, ModelCallError):
            sys.stderr.write("draftloop: finished steps are checkpointed; run again with --thread to resume\n")
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check DATABASE_URL\n")
        return EXIT_FAILED
    except ValueError as exc:
        # Settings read from the environment raise ValueError naming the variable.
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("draftloop: interrupted; resume with --thread (progress is checkpointed)\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
