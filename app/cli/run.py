"""`draftloop run "<request>"`: one request through the graph, with live progress."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import uuid
from typing import Any, TextIO

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from sqlalchemy.exc import SQLAlchemyError

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, database_source
from app.cli.task_row import CliTaskRow, ThreadHeld
from app.configuration import Configuration
from app.engine.driver import decision_resume, request_input, stream_graph
from app.engine.messages import node_summary
from app.engine.publishers import TOKEN_NODES, StreamTracker
from app.engine.run_end import Ending, status_of
from app.graph_runtime import GraphRuntime, open_graph_runtime
from graph.nodes.approval import InvalidDecision
from graph.nodes.finalize import usage_totals
from graph.state import NEW_TURN
from storage.engine import normalize_database_url
from tools.llm.errors import ModelCallError, ModelProviderError


class Progress(StreamTracker):
    """A run's stream as human-readable progress on stderr (the engine's node summaries);
    silent in --json mode except for errors."""

    def __init__(self, out: TextIO, enabled: bool, tokens: bool) -> None:
        super().__init__()
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

    async def handle(self, mode: str, chunk: Any) -> None:
        self.track(mode, chunk)
        if mode == "tasks" and "input" in chunk:
            self.line(f"→ {chunk['name']}")
        elif mode == "updates":
            for name, update in chunk.items():
                if name == "__interrupt__":
                    self.line("⏸ waiting for approval")
                elif isinstance(update, dict):
                    self.node_finished(name, update)
        elif mode == "messages":
            message, meta = chunk
            if meta.get("langgraph_node") in TOKEN_NODES and isinstance(message, AIMessageChunk):
                self.token(str(message.content))

    def node_finished(self, name: str, update: dict[str, Any]) -> None:
        self.line(f"✓ {name}: {node_summary(name, update)}")
        for warning in update.get("warnings", []):
            if warning != NEW_TURN:
                self.line(f"  ! {warning}")


async def choose_input(args: argparse.Namespace, runtime: GraphRuntime, config: RunnableConfig) -> tuple[Any, str | None]:
    """(graph input, problem). None input means: continue from the last checkpoint."""
    snapshot = await runtime.graph.aget_state(config)
    waiting = bool(snapshot.interrupts)
    if args.approve or args.reject is not None:
        if not waiting:
            return None, "this thread is not waiting for approval"
        try:
            resume = decision_resume(snapshot, bool(args.approve), args.reject or "", attempt=args.attempt)
        except InvalidDecision as exc:
            return None, f"--{exc.field} {exc.message}"
        return Command(resume=resume), None
    if args.request:
        if waiting:
            return None, "this thread waits for approval: answer with --approve or --reject \"feedback\""
        return request_input(args.request, {"require_approval": True} if args.require_approval else {}), None
    if waiting or snapshot.next:
        return None, None
    if snapshot.values.get("result"):
        return "done", None
    return None, "nothing to resume on this thread: give a request"


async def stream_run(runtime: GraphRuntime, graph_input: Any, config: RunnableConfig, args: argparse.Namespace,
                     progress: Progress) -> None:
    await stream_graph(runtime.graph, graph_input, config, progress,
                       context=runtime.context(require_approval=True if args.require_approval else None),
                       stream_mode=["tasks", "updates", "messages"], durability="sync")


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


async def run_command(args: argparse.Namespace, configuration: Configuration) -> int:
    progress = Progress(sys.stderr, enabled=not args.json, tokens=sys.stderr.isatty())
    thread_id = args.thread or str(uuid.uuid4())
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    started = time.perf_counter()
    service = configuration.service
    async with open_graph_runtime(configuration.database_url, configuration.pipeline,
                                  service.markdown_render_seconds) as runtime:
        # Refused before anything is recorded, rather than failing mid-run with the provider's error.
        if args.request and (too_long := (await runtime.deps.models.request_limit()).problem(args.request)):
            sys.stderr.write(f"draftloop: the request {too_long}\n")
            return EXIT_USAGE
        graph_input, problem = await choose_input(args, runtime, config)
        if problem:
            sys.stderr.write(f"draftloop: {problem}\n")
            return EXIT_USAGE
        if graph_input != "done":
            row = CliTaskRow(runtime.sessions, thread_id, lease_seconds=service.lease_seconds,
                             heartbeat_seconds=service.heartbeat_seconds)
            try:
                # A new request is a new turn with its own task row; anything else continues the
                # thread's current one.
                task_id = (await row.start_turn(args.request, {"require_approval": True} if args.require_approval
                                                else {}) if args.request else await row.continue_turn())
            except ThreadHeld as exc:
                sys.stderr.write(f"draftloop: {exc}\n")
                return EXIT_USAGE
            if task_id is not None:
                config["configurable"]["task_id"] = task_id
            progress.line(f"thread {thread_id}")
            try:
                async with row.leased():
                    await stream_run(runtime, graph_input, config, args, progress)
            except Exception as exc:
                await row.end(status_of(Ending.FAILED), error=f"{type(exc).__name__}: {exc}"[:500])
                raise
            waiting = bool((await runtime.graph.aget_state(config)).interrupts)
            await row.end(status_of(Ending.PAUSED if waiting else Ending.FINISHED))
        snapshot = await runtime.graph.aget_state(config)
    interrupts = [i.value for i in snapshot.interrupts]
    status = "awaiting_approval" if interrupts else ("completed" if snapshot.values.get("result") else "failed")
    data = summary(thread_id, snapshot.values, status, interrupts)
    if args.json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        print_report(data, time.perf_counter() - started, sys.stdout)
    return EXIT_OK if status != "failed" else EXIT_FAILED


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        override = normalize_database_url(args.database_url, "--database-url") if args.database_url else None
        return asyncio.run(run_command(args, Configuration.load(override)))
    except (ModelProviderError, ModelCallError) as exc:
        sys.stderr.write(f"draftloop: {exc}\n")
        if args.thread or isinstance(exc, ModelCallError):
            sys.stderr.write("draftloop: finished steps are checkpointed; run again with --thread to resume\n")
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check {database_source(args)}\n")
        return EXIT_FAILED
    except ValueError as exc:
        # Settings read from the environment raise ValueError naming the variable.
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("draftloop: interrupted; resume with --thread (progress is checkpointed)\n")
        return 130
