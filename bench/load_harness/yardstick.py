"""The in-process yardstick: the same graph without server or database, in a child process of its own."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from typing import Any

import httpx

from app import event_loop, gc_tuning
from bench.load_harness.fake_model import FakeModel, service_env, task_body
from bench.load_harness.measures import machine_busy_seconds

STREAM_MODES = ["tasks", "updates", "messages"]  # what app/engine/driver.py streams


async def run_inprocess(args: argparse.Namespace, fake: FakeModel, *, paired: bool = False) -> dict[str, Any]:
    """The yardstick runs in a child process (its own interpreter and loop, like the server), with
    the model behind the fake in this process, so both sides pay the same for the fake.
    ``paired``: one repeat of the yardstick variant only, run just before a server round."""
    ctx = multiprocessing.get_context("spawn")
    conn, child = ctx.Pipe()
    settings = {"tasks": args.tasks, "words": args.words, "saver": args.inprocess_saver and not paired,
                "repeats": 1 if paired else max(1, args.yardstick_repeats), "loop": args.yardstick_loop,
                "variants": ["stream"] if paired else ["stream", "invoke"], "gc": args.yardstick_gc}
    proc = ctx.Process(target=yardstick_main, args=(settings, service_env(fake, {}), child), daemon=True)
    fake.calls.clear()
    machine0, bench0 = machine_busy_seconds(), time.process_time()
    proc.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, conn.poll, args.timeout * 4):
            raise RuntimeError("in-process yardstick did not finish in time")
        kind, value = conn.recv()
    finally:
        await loop.run_in_executor(None, proc.join, 10)
        if proc.is_alive():
            proc.kill()
    if kind != "ok":
        raise RuntimeError(f"in-process yardstick failed: {value}")
    child_cpu = sum(sum(data["cpu_all_s"]) for data in value.values()) + value["stream"].get("warmup_cpu_s", 0)
    other = machine_busy_seconds() - machine0 - (time.process_time() - bench0) - child_cpu
    runs = sum(data["runs"] for data in value.values()) + 1 + args.tasks  # + the warm-up runs
    total_calls = sum(fake.calls.values())
    for data in value.values():
        data["other_cpu_s"] = max(0.0, other)
        data["calls_per_task"] = total_calls / runs
        data["model_calls"] = {k: round(v / runs * args.tasks) for k, v in fake.calls.items()}
    fake.calls.clear()
    fake.reset()
    return value


def yardstick_main(settings: dict[str, Any], env: dict[str, str], conn: Any) -> None:
    os.environ.update(env)
    try:
        # The server's processes run on app/event_loop.py's loop (uvloop); "asyncio" compares.
        runner = event_loop.run if settings.get("loop", "uvloop") == "uvloop" else asyncio.run
        result = runner(_yardstick(settings))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", repr(exc)))
        return
    conn.send(("ok", result))


async def _yardstick(settings: dict[str, Any]) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from graph.builder import build_graph
    from graph.configuration import PipelineSettings
    from graph.context import Dependencies, DraftloopContext

    words, tasks = settings["words"], settings["tasks"]
    out: dict[str, Any] = {}
    async with httpx.AsyncClient() as http:
        deps = Dependencies.from_settings(http, PipelineSettings.from_env(os.environ))
        plain = build_graph(None)

        async def one(graph: Any, index: int, mode: str) -> float:
            body = task_body(argparse.Namespace(words=words), index)
            # what TaskCreate.params() stores and the executor hands the graph
            params = {**{k: v for k, v in body.items() if k != "request"}, "require_approval": False}
            graph_input = {"messages": [HumanMessage(body["request"])], "request": params}
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            context = DraftloopContext(deps=deps, require_approval=False)
            started = time.perf_counter()
            if mode == "invoke":
                final = await graph.ainvoke(graph_input, config, context=context)
            else:
                kwargs = {"durability": "sync"} if mode == "saver" else {}
                final = None
                async for kind, chunk in graph.astream(graph_input, config, context=context,
                                                       stream_mode=STREAM_MODES, **kwargs):
                    if kind == "updates" and "finalize" in chunk:
                        final = chunk["finalize"]
            if not final or not (final.get("result") or {}).get("passed"):
                raise RuntimeError(f"in-process run {index} did not pass: {str(final)[:300]}")
            return time.perf_counter() - started

        warm_cpu = time.process_time()
        await one(plain, -1, "stream")  # warm-up: imports, model probe, connections
        # Then N at once, unmeasured: the connection pool to the fake grows to N here, as the
        # server's pools grow in its unmeasured warm-up round (run_backend).
        await asyncio.gather(*(one(plain, -10 - i, "stream") for i in range(tasks)))
        warm_cpu = time.process_time() - warm_cpu
        if settings.get("gc", "service") == "service":
            # The service's processes tune the collector once started (app/gc_tuning.py); the
            # graph alone gets the same, or the ratio would credit the service with it.
            gc_tuning.settle_after_startup()
        variants = [(name, plain) for name in settings.get("variants", ["stream", "invoke"])]
        if settings["saver"]:
            variants.append(("saver", build_graph(InMemorySaver())))
        # Each variant `repeats` times, interleaved; the limit is the best makespan (other load
        # on the machine can only slow a run down), all of them are reported.
        for mode, _graph in variants:
            out[mode] = {"alone_all_s": [], "makespans_s": [], "cpu_all_s": [], "runs": 0}
        for _ in range(settings["repeats"]):
            for mode, graph in variants:
                data = out[mode]
                cpu_alone = time.process_time()
                data["alone_all_s"] += [await one(graph, -2 - i, mode) for i in range(3)]
                cpu0 = time.process_time()
                started = time.perf_counter()
                await asyncio.gather(*(one(graph, i, mode) for i in range(tasks)))
                data["makespans_s"].append(time.perf_counter() - started)
                data["cpu_all_s"].append(time.process_time() - cpu_alone)
                data.setdefault("gather_cpu_s", []).append(time.process_time() - cpu0)
                data["runs"] += 3 + tasks
        for data in out.values():
            best = min(range(len(data["makespans_s"])), key=data["makespans_s"].__getitem__)
            data["makespan_s"] = data["makespans_s"][best]
            data["cpu_s"] = data["gather_cpu_s"][best]
            data["alone_s"] = min(data["alone_all_s"])
        out["stream"]["warmup_cpu_s"] = warm_cpu
        await deps.models.aclose()
    return out
