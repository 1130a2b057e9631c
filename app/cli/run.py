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

from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from sqlalchemy.exc import SQLAlchemyError

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, database_source
from app.cli.task_row import CliTaskRow, ThreadHeld
from app.configuration import Configuration
from app.graph_runtime import GraphRuntime, open_graph_runtime
from graph.nodes.finalize import usage_totals
from graph.state import NEW_TURN
from storage.engine import normalize_database_url
from storage.models import TaskStatus
from tools.llm.errors import ModelCallError, ModelProviderError


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
            if warning != NEW_TURN:
                self.line(f"  ! {warning}")


async def choose_input(args: argparse.Namespace, runtime: GraphRuntime,
                       config: RunnableConfig) -> tuple[Any, str | None]:
    """(graph input, problem). None input means: continue from the last checkpoint."""
    snapshot = await runtime.graph.aget_state(config)
    waiting = bool(snapshot.interrupts)
    if args.approve or args.reject is not None:
        if not waiting:
            return None, "this thread is not waiting for approval"
        resume: dict[str, Any] = {"approved": bool(args.approve), "feedback": args.reject or ""}
        if args.attempt is not None:
            offered = snapshot.interrupts[0].value
            choices = [offered.get("attempt"), *(a.get("attempt") for a in offered.get("alternatives") or [])]
            if args.attempt not in choices:
                return None, (f"--attempt {args.attempt} is not on offer; choose one of "
                              f"{', '.join(str(c) for c in choices if c is not None)}")
            resume["attempt"] = args.attempt
        return Command(resume=resume), None
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


async def stream_run(runtime: GraphRuntime, graph_input: Any, config: RunnableConfig, args: argparse.Namespace,
                     progress: Progress) -> None:
    # With several stream modes LangGraph yields (mode, chunk) pairs; its signature says only "Any".
    mode: str
    chunk: Any
    # TEMPORARY: GraphRuntime.graph is annotated as a bare CompiledStateGraph, whose context type
    # defaults to None; app/graph_runtime.py is being split on another branch, which types it as
    # graph.builder.ContentGraph, and warn_unused_ignores then asks for this ignore to go.
    async for mode, chunk in runtime.graph.astream(  # type: ignore[call-overload]
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
                await row.end(TaskStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
                raise
            waiting = bool((await runtime.graph.aget_state(config)).interrupts)
            await row.end(TaskStatus.AWAITING_APPROVAL if waiting else TaskStatus.COMPLETED)
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
