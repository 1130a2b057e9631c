#!/usr/bin/env python
"""Load benchmark for the Draftloop service (issue 4, section 6 "bench/").

What it does, in order:

1. Starts a fake Ollama (devtools/fakes/ollama.py) in this process's event loop. A ScriptedWriter
   (devtools/fakes/writer.py) answers every call by what it asks for (intent JSON, a well-formed
   draft, a passing score) after a fixed latency (default 200 ms). Tasks are posted with
   research=false and images=false, so a task is exactly 3 model calls: intent, draft, score.
2. In-process yardstick: the same graph (graph.builder.build_graph, no checkpointer, no
   database, Dependencies pointed at the fake) runs one task alone (the ideal floor) and then
   N tasks with asyncio.gather (this machine's limit for the graph).
3. For each backend (SQLite temp file; optionally a fresh Postgres database created and dropped
   here) starts a real `draftloop serve` subprocess with WORKER_CONCURRENCY=N pointed at the fake,
   posts N tasks at once and measures the makespan until all are completed. While runs are in
   flight a separate prober process (its own event loop, so the fake's work here does not skew
   the timings) samples POST /api/tasks, GET /api/tasks/{id} and GET /health latencies. Server
   event-loop lag is measured from outside (GET /health) and from inside (bench/_serverprobe:
   a sitecustomize hook that times asyncio.sleep(0.01) in the server's own loop). Peak memory
   comes from /proc/<pid>/status VmHWM (psutil is not required). Optionally py-spy records the
   server during an extra, unmeasured round and the profile is summarised.
4. Prints a table and writes bench/RESULTS.md (figures, command, machine, date, targets).

Every loop is bounded in count and time; all traffic is loopback.

    .venv/bin/python bench/load.py                      # N=100, 200 ms, SQLite
    .venv/bin/python bench/load.py --backend both       # SQLite and a throwaway Postgres database
    .venv/bin/python bench/load.py -n 20 --rounds 1 --no-profile --output /tmp/r.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402 - after the sys.path insert above

from app import event_loop, gc_tuning  # noqa: E402

BENCH_DIR = REPO / "bench"
PROBE_HOOK_DIR = BENCH_DIR / "_serverprobe"
ANALYSIS_FILE = BENCH_DIR / "ANALYSIS.md"
VENV_BIN = Path(sys.executable).parent
STREAM_MODES = ["tasks", "updates", "messages"]  # what app/executor.py streams
TARGETS = {"makespan_ratio": 1.2, "post_p95_ms": 20.0, "get_p95_ms": 20.0, "lag_p99_ms": 20.0}
# Env of the parent that must not leak into the server (it would change what a task does).
_SCRUB_PREFIXES = ("LLM_", "OLLAMA_", "OPENAI_", "SERPER_", "PEXELS_", "EMBEDDED_", "DATABASE_URL",
                   "WORKER_", "QUEUE_", "LEASE_", "HEARTBEAT_", "SSE_", "SHUTDOWN_", "LOG_", "DRAFTLOOP_",
                   "QUALITY_", "MAX_REVISIONS", "RESEARCH_", "IMAGES_", "DEFAULT_TARGET", "SEARCH_",
                   "MODEL_PRICES", "HOST", "PORT", "LANGSMITH_", "LANGCHAIN_")


# ------------------------------------------------------------------------------------------
# small helpers


def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..100); None for no data."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary_ms(values_s: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99),
            "max": max(ms) if ms else None, "mean": statistics.fmean(ms) if ms else None}


def _api_share(figures: dict[str, Any]) -> str:
    """"; of which the HTTP process: ..." when it differs from the whole (a split server's
    workers have the rest); "" for older results without the figure."""
    api = [c for c in figures.get("quiet_api_cpu_s") or [] if c is not None]
    whole = [c for c in figures.get("quiet_server_cpu_s") or [] if c is not None]
    if not api or api == whole:
        return ""
    return "; of which the HTTP process: " + ", ".join(f"{c:.2f} s" for c in api)


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_iso(value: str | None) -> float | None:
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:  # SQLite may hand back naive UTC
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a process from /proc."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


def child_pids(pid: int) -> list[int]:
    """The worker processes a `serve --workers K` server started (Linux /proc)."""
    try:
        return [int(part) for part in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def proc_cpu_seconds(pid: int) -> float | None:
    """utime+stime of a process (all threads), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def postgres_cpu_seconds() -> float:
    """utime+stime of every `postgres` process on this machine (the backends serving the bench)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if "(postgres)" not in text:
                continue
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), to see what else ran meanwhile."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LagMonitor:
    """Lag of the current process's loop (the bench's own: it hosts the fake Ollama)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        for _ in range(10_000_000):
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append((time.time(), time.perf_counter() - started - self.interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def window(self, start: float, end: float) -> list[float]:
        return [lag for wall, lag in self.samples if start <= wall <= end]


# ------------------------------------------------------------------------------------------
# the fake model


@dataclass
class FakeModel:
    server: Any
    latency: float
    calls: Counter[str] = field(default_factory=Counter)
    writer: Any = None

    @property
    def base_url(self) -> str:
        return str(self.server.base_url)

    def reset(self) -> None:
        # The fake records every request; drop them between phases so memory stays bounded.
        self.server.requests.clear()
        self.writer.calls.clear()
        self.writer.prompts.clear()


async def start_fake(latency: float) -> FakeModel:
    from devtools.fakes.ollama import FakeOllama
    from devtools.fakes.writer import ScriptedWriter

    server = FakeOllama()
    writer = ScriptedWriter(scores=[85])
    fake = FakeModel(server=server, latency=latency, writer=writer)

    def responder(body: dict[str, Any]) -> Any:
        reply = writer(body)
        reply.latency = latency  # every call, not only drafts
        fake.calls[writer.calls[-1] if writer.calls else "?"] += 1
        return reply

    server.responder = responder
    await server.start()
    return fake


def service_env(fake: FakeModel, extra: dict[str, str]) -> dict[str, str]:
    """What both the in-process graph and the server read: the model is the fake, no research."""
    env = {
        "LLM_PROVIDER": "ollama",
        "OLLAMA_BASE_URL": fake.base_url,
        "OLLAMA_MODEL": "llama3.2",
        "LLM_TIMEOUT": "60",
        "LLM_MAX_RETRIES": "0",
        "RESEARCH_ENABLED": "false",
        "IMAGES_ENABLED": "false",
        "LANGSMITH_TRACING": "false",
    }
    env.update(extra)
    return env


def task_body(args: argparse.Namespace, index: int) -> dict[str, Any]:
    return {
        "request": f"Write a {args.words}-word blog post about async Python for backend developers (bench {index})",
        "research": False,
        "images": False,
    }


# ------------------------------------------------------------------------------------------
# 2. in-process yardstick


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


# ------------------------------------------------------------------------------------------
# 3. the prober process: its own loop, so timings are not skewed by the fake in this process


def prober_main(base_url: str, conn: Any, intervals: dict[str, float], deadline: float,
                headers: dict[str, str] | None = None) -> None:
    """Runs in a spawned process. Commands on `conn`: ("ids", [...]) sets GET targets,
    ("stop", None) ends sampling; then sends back {"health": [...], "get": [...], ...}."""
    asyncio.run(_prober(base_url, conn, intervals, deadline, headers or {}))


async def _prober(base_url: str, conn: Any, intervals: dict[str, float], deadline: float,
                  headers: dict[str, str]) -> None:
    samples: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    ids: list[str] = []
    stop = asyncio.Event()

    async def sample(name: str, client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response | None:
        wall = time.time()
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kw)
        except httpx.HTTPError:
            samples[name].append((wall, time.perf_counter() - started, -1))
            return None
        samples[name].append((wall, time.perf_counter() - started, response.status_code))
        return response

    async def health() -> None:
        # No Authorization header: /health is public, and a token would make the auth middleware
        # look it up in the database, which is not what this probe is meant to time.
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            while not stop.is_set() and time.time() < deadline and len(samples["health"]) < 200_000:
                await sample("health", client, "GET", "/health")
                await asyncio.sleep(intervals["health"])

    async def get_task() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as client:
            turn = 0
            while not stop.is_set() and time.time() < deadline and len(samples["get"]) < 200_000:
                if ids:
                    await sample("get", client, "GET", f"/api/tasks/{ids[turn % len(ids)]}")
                    turn += 7  # walk the ids in a scattered order
                await asyncio.sleep(intervals["get"])

    async def post_task() -> None:
        # Probe tasks are cancelled right away (untimed), so the graph workload stays N tasks.
        async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as client:
            count = 0
            while not stop.is_set() and time.time() < deadline and count < 100_000:
                count += 1
                response = await sample("post", client, "POST", "/api/tasks",
                                        json={"request": f"bench probe {count}", "research": False, "images": False})
                if response is not None and response.status_code == 202:
                    task_id = response.json()["id"]
                    await sample("cancel", client, "POST", f"/api/tasks/{task_id}/cancel")
                await asyncio.sleep(intervals["post"])

    async def commands() -> None:
        loop = asyncio.get_running_loop()
        while time.time() < deadline:
            ready = await loop.run_in_executor(None, conn.poll, 0.2)
            if not ready:
                continue
            kind, value = conn.recv()
            if kind == "ids":
                ids[:] = value
            elif kind == "stop":
                break
        stop.set()

    workers = [asyncio.create_task(f()) for f in (health, get_task, post_task)]
    conn.send(("ready", None))
    await commands()
    await asyncio.wait(workers, timeout=35)
    result: dict[str, Any] = dict(samples)
    result["_cpu_s"] = time.process_time()
    conn.send(("samples", result))


# ------------------------------------------------------------------------------------------
# 3. the server


def cli_serve_works() -> bool:
    """Whether `draftloop serve`'s argument parsing works (see bench/_serve.py)."""
    check = "from app.cli import parse_args; parse_args(['serve', '--port', '1'])"
    try:
        done = subprocess.run([sys.executable, "-c", check], check=False, capture_output=True, timeout=60, cwd=str(REPO))
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


_LAUNCHER: list[str] = []
BENCH_SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
BENCH_USER, BENCH_PASSWORD = "bench", "bench-" + uuid.uuid4().hex[:16]


async def create_bench_user(database_url: str, workdir: Path) -> bool:
    """An editor for the bench, through `draftloop create-user` (False when the CLI has none:
    a version without authentication)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update({"DATABASE_URL": database_url, "DRAFTLOOP_DATA_DIR": str(workdir), "DRAFTLOOP_SECRET_KEY": BENCH_SECRET})
    probe = await asyncio.create_subprocess_exec(str(VENV_BIN / "draftloop"), "create-user", "--help", cwd=str(workdir),
                                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if await asyncio.wait_for(probe.wait(), 60) != 0:
        return False
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "draftloop"), "create-user", BENCH_USER, "--role", "editor", "--password-stdin",
        "--database-url", database_url, cwd=str(workdir), env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate((BENCH_PASSWORD + "\n").encode()), 120)
    if proc.returncode != 0 and b"exists" not in out:
        raise RuntimeError(f"draftloop create-user failed: {out.decode(errors='replace')[-500:]}")
    return True


async def log_in(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post("/api/auth/token", json={"username": BENCH_USER, "password": BENCH_PASSWORD})
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
    server.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}


def server_command() -> list[str]:
    if not _LAUNCHER:
        if cli_serve_works():
            _LAUNCHER.extend([str(VENV_BIN / "draftloop"), "serve"])
        else:
            print("  note: `draftloop serve` fails in its argument parser (app/cli/__init__.py parse_args reads "
                  "args.approve); using bench/_serve.py, which calls the same serve_command", flush=True)
            _LAUNCHER.extend([sys.executable, str(BENCH_DIR / "_serve.py")])
    return _LAUNCHER


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    port: int
    workdir: Path
    log_path: Path
    lag_path: Path
    log_file: Any
    backend: str = "sqlite"
    headers: dict[str, str] = field(default_factory=dict)  # Authorization, when the service has auth
    # Worker-only processes on the same database (the split topology): counted in CPU and memory.
    peers: list[Server] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *(peer.proc.pid for peer in self.peers), *child_pids(self.proc.pid)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_server(args: argparse.Namespace, fake: FakeModel, database_url: str, workdir: Path,
                       *, concurrency: int | None = None, tag: str = "server",
                       extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    extra = {**(extra_env or {}), **dict(kv.split("=", 1) for kv in args.server_env)}
    env.update(service_env(fake, {
        "DATABASE_URL": database_url,
        "DRAFTLOOP_DATA_DIR": str(workdir),
        "WORKER_CONCURRENCY": str(concurrency or args.concurrency),
        "SHUTDOWN_GRACE_SECONDS": "3",
        # The service signs bearer tokens with this (newer versions refuse to start without it).
        "DRAFTLOOP_SECRET_KEY": BENCH_SECRET,
        **extra,
    }))
    lag_path = workdir / f"{tag}-loop-lag.txt"
    if args.inside_lag:
        env["DRAFTLOOP_BENCH_LAG_FILE"] = str(lag_path)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROBE_HOOK_DIR), env.get("PYTHONPATH", "")) if p)
    log_path = workdir / f"{tag}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115, ASYNC230 - set-up, closed in stop_server
    proc = await asyncio.create_subprocess_exec(
        *server_command(), "--host", "127.0.0.1", "--port", str(port),
        cwd=str(workdir), env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = Server(proc, port, workdir, log_path, lag_path, log_file,
                    backend="postgres" if "postgresql" in database_url else "sqlite")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as client:
        for _ in range(600):  # <= 60 s
            if proc.returncode is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/ready")).status_code == 200:
                    return server
            await asyncio.sleep(0.1)
    await stop_server(server)
    raise RuntimeError(f"server not ready within 60 s:\n{log_path.read_text()[-3000:]}")


async def stop_server(server: Server) -> int | None:
    proc = server.proc
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)  # uvicorn: graceful shutdown, the lifespan closes
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    server.log_file.close()
    return proc.returncode


def read_lag_file(path: Path) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            wall, _, lag = line.partition(" ")
            with contextlib.suppress(ValueError):
                out.append((float(wall), float(lag)))
    return out


# Prometheus text -> {(route, method): {le: count}} for the HTTP histogram
_BUCKET = re.compile(r'^draftloop_http_request_duration_seconds_bucket\{(?P<labels>.*)\} (?P<value>\S+)$')
_NODE_SUM = re.compile(r'^draftloop_node_duration_seconds_(?P<kind>sum|count)\{node="(?P<node>[^"]+)"\} (?P<value>\S+)$')


def parse_metrics(text: str) -> dict[str, Any]:
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    nodes: dict[str, dict[str, float]] = defaultdict(dict)
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if not labels.get("status", "").startswith("2"):
                continue
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            key = (labels["method"], labels["route"])
            buckets[key][le] = buckets[key].get(le, 0) + float(match["value"])
            continue
        match = _NODE_SUM.match(line)
        if match:
            nodes[match["node"]][match["kind"]] = float(match["value"])
    return {"buckets": buckets, "nodes": nodes}


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus-style estimate from cumulative buckets (linear inside a bucket)."""
    if not cumulative:
        return None
    edges = sorted(cumulative)
    total = cumulative[edges[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_edge, prev_count = 0.0, 0.0
    for edge in edges:
        count = cumulative[edge]
        if count >= rank:
            if edge == float("inf"):
                return prev_edge
            if count == prev_count:
                return edge
            return prev_edge + (edge - prev_edge) * (rank - prev_count) / (count - prev_count)
        prev_edge, prev_count = edge, count
    return prev_edge


def metrics_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"http": {}, "nodes": {}}
    for key, cum in after["buckets"].items():
        base = before["buckets"].get(key, {})
        diff = {le: cum[le] - base.get(le, 0) for le in cum}
        n = diff.get(float("inf"), 0)
        if n <= 0:
            continue
        out["http"][f"{key[0]} {key[1]}"] = {
            "n": int(n), "p50": (histogram_quantile(0.5, diff) or 0) * 1000,
            "p95": (histogram_quantile(0.95, diff) or 0) * 1000, "p99": (histogram_quantile(0.99, diff) or 0) * 1000}
    for node, values in after["nodes"].items():
        base = before["nodes"].get(node, {})
        count = values.get("count", 0) - base.get("count", 0)
        if count > 0:
            out["nodes"][node] = {"n": int(count), "mean_ms": (values.get("sum", 0) - base.get("sum", 0)) / count * 1000}
    return out


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    return parse_metrics((await client.get("/metrics", timeout=30)).text)


async def wait_done(client: httpx.AsyncClient, ids: set[str], deadline: float, interval: float,
                    list_latencies: list[float], since: float) -> dict[str, str]:
    """Poll the list endpoint (terminal statuses) until every id has ended; id -> status."""
    done: dict[str, str] = {}
    while time.time() < deadline:
        cursor = None
        for _ in range(len(ids) // 200 + 50):  # pages: bounded
            params: list[tuple[str, Any]] = [("status", s) for s in ("completed", "failed", "cancelled")]
            params.append(("limit", 200))
            # only this round's rows (its N tasks and the probe tasks posted meanwhile)
            params.append(("created_after", dt.datetime.fromtimestamp(since - 1, dt.UTC).isoformat()))
            if cursor:
                params.append(("cursor", cursor))
            started = time.perf_counter()
            page = (await client.get("/api/tasks", params=params)).json()
            list_latencies.append(time.perf_counter() - started)
            for item in page["items"]:
                if item["id"] in ids:
                    done[item["id"]] = item["status"]
            cursor = page.get("next_cursor")
            if not cursor or len(done) == len(ids):
                break
        if len(done) == len(ids):
            return done
        await asyncio.sleep(interval)
    raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} tasks not finished before the deadline")


async def one_round(args: argparse.Namespace, server: Server, client: httpx.AsyncClient, fake: FakeModel,
                    bench_lag: LagMonitor, index: int, *, probe: bool) -> dict[str, Any]:
    deadline = time.time() + args.timeout
    conn = proc = None
    if probe:
        ctx = multiprocessing.get_context("spawn")
        conn, child = ctx.Pipe()
        intervals = {"health": args.health_interval, "get": args.get_interval, "post": args.post_interval}
        proc = ctx.Process(target=prober_main, args=(server.base_url, child, intervals, deadline, server.headers),
                           daemon=True)
        proc.start()
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, conn.poll, 30):
            raise RuntimeError("prober process did not start")
        conn.recv()
    fake.calls.clear()
    cpu0 = sum(proc_cpu_seconds(pid) or 0 for pid in server.pids)
    api_cpu0 = proc_cpu_seconds(server.proc.pid)
    bench_cpu0 = time.process_time()
    machine0 = machine_busy_seconds()
    pg_cpu0 = postgres_cpu_seconds() if server.backend == "postgres" else None
    rss_peak = 0
    t0 = time.time()

    post_errors: list[str] = []

    async def post(i: int) -> tuple[str | None, float]:
        started = time.perf_counter()
        try:
            response = await client.post("/api/tasks", json=task_body(args, i))
        except httpx.HTTPError as exc:
            post_errors.append(f"{type(exc).__name__}: {exc}")
            return None, time.perf_counter() - started
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            # Counted and reported; the round goes on with the tasks that were accepted.
            post_errors.append(f"{response.status_code}: {response.text[:200]}")
            return None, elapsed
        return response.json()["id"], elapsed

    posted = await asyncio.gather(*(post(i) for i in range(args.tasks)))
    t_accepted = time.time()
    ids = [task_id for task_id, _ in posted if task_id is not None]
    if not ids:
        raise RuntimeError(f"no POST was accepted: {post_errors[:3]}")
    if conn is not None:
        conn.send(("ids", ids))

    async def rss_sampler() -> None:
        nonlocal rss_peak
        for _ in range(int(args.timeout / 0.1) + 1):
            rss_peak = max(rss_peak, sum(proc_status(pid).get("VmRSS", 0) for pid in server.pids))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(rss_sampler())
    list_latencies: list[float] = []
    try:
        statuses = await wait_done(client, set(ids), deadline, args.poll_interval, list_latencies, t0)
    finally:
        sampler.cancel()
    t_observed = time.time()
    cpu1 = sum(proc_cpu_seconds(pid) or 0 for pid in server.pids)
    api_cpu1 = proc_cpu_seconds(server.proc.pid)
    bench_cpu = time.process_time() - bench_cpu0
    machine_busy = machine_busy_seconds() - machine0
    pg_cpu = postgres_cpu_seconds() - pg_cpu0 if pg_cpu0 is not None else None
    samples: dict[str, Any] = {}
    if conn is not None and proc is not None:
        conn.send(("stop", None))
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, conn.poll, 60):
            _, samples = conn.recv()
        await loop.run_in_executor(None, proc.join, 10)
        if proc.is_alive():
            proc.kill()
    # Per-task timings from the rows (server clock = this machine's clock).
    details = []
    for task_id in ids:
        details.append((await client.get(f"/api/tasks/{task_id}")).json())
    finished = [parse_iso(d.get("finished_at")) for d in details]
    created = [parse_iso(d.get("created_at")) for d in details]
    run_ms = [d["timings"]["run_ms"] for d in details if d["timings"]["run_ms"] is not None]
    queued_ms = [d["timings"]["queued_ms"] for d in details if d["timings"]["queued_ms"] is not None]
    not_completed = Counter(s for s in statuses.values() if s != "completed")
    attempts = Counter((d.get("result") or {}).get("attempts") for d in details)
    last_finish = max(f for f in finished if f is not None)
    prober_cpu = float(samples.pop("_cpu_s", 0.0)) if samples else 0.0
    ours = (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else 0) + bench_cpu + (pg_cpu or 0) + prober_cpu
    return {
        "other_cpu_guess_s": max(0.0, machine_busy - ours),
        "round": index,
        "t0": t0, "t_accepted": t_accepted, "t_observed": t_observed,
        "makespan_s": last_finish - t0,
        "observed_makespan_s": t_observed - t0,
        "accept_all_s": t_accepted - t0,
        "first_created_s": min(c for c in created if c is not None) - t0,
        "post_burst_s": [elapsed for _, elapsed in posted],
        "post_errors": post_errors,
        "run_ms": run_ms, "queued_ms": queued_ms,
        "not_completed": dict(not_completed), "attempts": {str(k): v for k, v in attempts.items()},
        "model_calls": dict(fake.calls),
        "server_cpu_s": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        # The process serving HTTP alone (with workers, the rest of server_cpu_s is theirs).
        "api_cpu_s": (api_cpu1 - api_cpu0) if api_cpu0 is not None and api_cpu1 is not None else None,
        "server_rss_peak_kb": rss_peak,
        "bench_cpu_s": bench_cpu,
        "postgres_cpu_s": pg_cpu,
        "machine_busy_s": machine_busy,
        "prober_cpu_s": prober_cpu,
        "probed": probe,
        "list_poll_s": list_latencies,
        "samples": samples,
        "bench_lag_s": bench_lag.window(t0, t_observed),
    }


async def single_task_through_server(args: argparse.Namespace, client: httpx.AsyncClient) -> float:
    """POST one task alone and wait for it: the service's floor for one task."""
    t0 = time.time()
    task_id = (await client.post("/api/tasks", json=task_body(args, 0))).json()["id"]
    for _ in range(int(args.timeout / 0.01)):
        body = (await client.get(f"/api/tasks/{task_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            if body["status"] != "completed":
                raise RuntimeError(f"single task ended {body['status']}: {body.get('error')}")
            return (parse_iso(body["finished_at"]) or time.time()) - t0
        await asyncio.sleep(0.01)
    raise TimeoutError("single task did not finish")


async def profile_round(args: argparse.Namespace, server: Server, client: httpx.AsyncClient, fake: FakeModel,
                        bench_lag: LagMonitor, out_path: Path) -> dict[str, Any] | None:
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(py_spy).exists():
        return None
    duration = max(3, int(args.profile_seconds))
    spy = await asyncio.create_subprocess_exec(
        py_spy, "record", "-p", str(server.proc.pid), "-r", str(args.profile_rate), "-d", str(duration),
        "-f", "raw", "-o", str(out_path), "--threads", "--nonblocking", "--full-filenames",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(1.0)  # let py-spy attach
    result = await one_round(args, server, client, fake, bench_lag, -1, probe=False)
    try:
        _, err = await asyncio.wait_for(spy.communicate(), duration + 30)
    except TimeoutError:
        spy.kill()
        return None
    if not out_path.exists():
        return {"error": err.decode(errors="replace")[-500:]}
    summary = summarise_profile(out_path.read_text(), main_pid=server.proc.pid)
    summary["round_makespan_s"] = result["makespan_s"]
    summary["duration_s"] = duration
    return summary


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _component(path: str) -> str:
    if "site-packages/" in path:
        pkg = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return pkg.removesuffix(".py")
    for own in ("app/", "graph/", "storage/", "tools/"):
        if path.startswith(own) or f"/{own}" in path:
            return "draftloop:" + own.rstrip("/")
    if "python3" in path or path.startswith("<frozen"):
        name = path.rsplit("/", 1)[-1].removesuffix(".py")
        parent = path.rsplit("/", 2)[-2] if path.count("/") >= 1 else ""
        return f"stdlib:{parent}" if parent in ("asyncio", "json", "concurrent", "logging", "email") else f"stdlib:{name}"
    return path


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(REPO) + "/"):
        return path[len(str(REPO)) + 1:]
    if "/lib/python3" in path:
        return path.split("/lib/", 1)[1].split("/", 1)[1]
    return path


# Where the event-loop thread's time goes: each main-thread sample goes to the first category
# whose marker appears anywhere on its stack (the order resolves overlaps).
MAIN_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("storage: checkpointer (LangGraph saver)", ("langgraph/checkpoint/",)),
    ("storage: event rows (EventBus.publish/record, RunPublisher)", ("EventBus.publish", "EventBus.record", "RunPublisher.")),
    ("storage: other SQLAlchemy/driver work (task + event rows, claims, leases, outcome)", ("sqlalchemy/", "aiosqlite/", "asyncpg/", "psycopg/",
                                                                  "storage/tasks.py", "storage/leases.py", "storage/threads.py",
                                                                  "storage/task_events.py", "storage/attempts.py",
                                                                  "storage/outcomes.py")),
    ("model: per-token callbacks and stream handler", ("on_llm_new_token", "StreamMessagesHandler", "_messages.py")),
    ("model: HTTP client and NDJSON parsing (ollama/httpx)", ("langchain_ollama/", "ollama/", "httpx/", "httpcore/", "tools/llm/")),
    ("model: langchain_core message/generation objects", ("langchain_core/",)),
    ("HTTP API (litestar, uvicorn protocol, pydantic/msgspec)", ("litestar/", "uvicorn/protocols", "msgspec")),
    ("langgraph engine (pregel loop, channels, tasks)", ("langgraph/",)),
    ("graph nodes (graph/)", ("/graph/",)),
    ("executor loops (dispatch, heartbeat, cancel check)", ("app/executor.py",)),
    ("event loop native (uvloop: I/O, timers, callbacks)", ("asyncio/runners.py",)),
]


def categorise_main(frames_text: str) -> str:
    for label, markers in MAIN_CATEGORIES:
        if any(marker in frames_text for marker in markers):
            if label.startswith("event loop native") and frames_text.count(";") > 6:
                continue
            return label
    return "other"


def summarise_profile(raw: str, main_pid: int) -> dict[str, Any]:
    """Collapsed py-spy stacks -> per-thread totals, top self/inclusive functions and packages."""
    total = 0
    threads: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    main_total = 0
    main_cats: Counter[str] = Counter()
    main_incl_pkg: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        while frames and frames[0].startswith(("thread", "process")):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        threads[thread] += count
        is_main = f"{main_pid:#x}" in thread or str(main_pid) in thread
        if is_main:
            main_total += count
            main_cats[categorise_main(";".join(frames))] += count
        parsed = []
        for frame in frames:
            m = _FRAME.match(frame)
            func, path = (m["func"], m["file"]) if m else (frame, "?")
            parsed.append((func, _short(path), _component(path)))
        leaf = parsed[-1]
        self_fn[f"{leaf[0]} ({leaf[1]})"] += count
        self_pkg[leaf[2]] += count
        for key in {f"{f} ({p})" for f, p, _ in parsed}:
            incl_fn[key] += count
        for pkg in {c for _, _, c in parsed}:
            incl_pkg[pkg] += count
            if is_main:
                main_incl_pkg[pkg] += count
    return {"samples": total, "main_thread_samples": main_total, "threads": threads.most_common(6),
            "main_categories": main_cats.most_common(), "main_inclusive_packages": main_incl_pkg.most_common(20),
            "self_functions": self_fn.most_common(20), "inclusive_functions": incl_fn.most_common(40),
            "self_packages": self_pkg.most_common(20), "inclusive_packages": incl_pkg.most_common(25)}


async def run_backend(args: argparse.Namespace, name: str, database_url: str, fake: FakeModel,
                      bench_lag: LagMonitor, workdir: Path) -> dict[str, Any]:
    split = name.endswith("-split")
    has_auth = await create_bench_user(database_url, workdir)
    peers: list[Server] = []
    # Split: `draftloop serve --workers K` (WORKERS=K) serves HTTP only and runs the graph in K
    # worker processes it supervises, each with its share of the concurrency.
    server = await start_server(args, fake, database_url, workdir,
                                concurrency=-(-args.concurrency // args.workers) if split else None,
                                extra_env={"WORKERS": str(args.workers)} if split else None)
    server.peers = peers
    result: dict[str, Any] = {"backend": name, "pid": server.proc.pid, "split": split, "auth": has_auth,
                              "database": server.backend}
    if has_auth:
        try:
            await log_in(server)
        except BaseException:
            for srv in (server, *peers):
                await stop_server(srv)
            raise
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, headers=server.headers,
                                     limits=httpx.Limits(max_connections=args.tasks + 10,
                                                         max_keepalive_connections=args.tasks + 10)) as client:
            # Warm-up and the service's single-task floor (nothing else runs).
            await single_task_through_server(args, client)
            result["single_task_s"] = [await single_task_through_server(args, client) for _ in range(3)]
            # Idle latencies: the baseline that lag under load adds to.
            idle: dict[str, list[float]] = {"health": [], "get": []}
            some_id = (await client.get("/api/tasks", params={"limit": 1})).json()["items"][0]["id"]
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous:
                for _ in range(100):
                    for key, url, via in (("health", "/health", anonymous), ("get", f"/api/tasks/{some_id}", client)):
                        started = time.perf_counter()
                        await via.get(url)
                        idle[key].append(time.perf_counter() - started)
            idle_inside = read_lag_file(server.lag_path)[-200:]
            result["idle"] = {k: summary_ms(v) for k, v in idle.items()}
            result["idle_inside_lag"] = summary_ms([lag for _, lag in idle_inside])
            # One round of N unmeasured: the server's connection pools (database, checkpointer,
            # model client) grow to what N concurrent runs need, as they stay in service.
            warmup = await one_round(args, server, client, fake, bench_lag, 99, probe=False)
            result["warmup_makespan_s"] = warmup["makespan_s"]
            await asyncio.sleep(0.5)
            # Makespan without probe traffic (the probes add ~200 requests/s of their own work).
            quiet = []
            for index in range(args.quiet_rounds):
                paired = None
                if args.paired_yardstick:
                    # The same graph alone on this machine moments before the round (the server
                    # idles meanwhile): the machine's speed drifts over a run by more than the
                    # gap the ratio is about.
                    paired = (await run_inprocess(args, fake, paired=True))["stream"]
                    await asyncio.sleep(0.5)
                quiet.append(await one_round(args, server, client, fake, bench_lag, 100 + index, probe=False))
                if paired is not None:
                    quiet[-1]["paired_yardstick_s"] = paired["makespan_s"]
                    quiet[-1]["paired_yardstick_cpu_s"] = paired["cpu_s"]
                await asyncio.sleep(0.5)
            result["quiet_rounds"] = quiet
            before = await scrape(client)
            rounds = []
            for index in range(args.rounds):
                rounds.append(await one_round(args, server, client, fake, bench_lag, index, probe=True))
                await asyncio.sleep(0.5)
            after = await scrape(client)
            result["rounds"] = rounds
            result["server_metrics"] = metrics_delta(before, after)
            statuses = [proc_status(pid) for pid in server.pids]
            result["memory_kb"] = {"VmHWM": sum(st.get("VmHWM") or 0 for st in statuses),
                                   "VmHWM_each": [st.get("VmHWM") for st in statuses],
                                   "VmRSS_end": sum(st.get("VmRSS") or 0 for st in statuses)}
            if args.profile and not split:
                result["profile"] = await profile_round(args, server, client, fake, bench_lag,
                                                        workdir / f"pyspy-{name}.txt")
                if args.keep_profile and (workdir / f"pyspy-{name}.txt").exists():
                    shutil.copy(workdir / f"pyspy-{name}.txt", Path(args.keep_profile) / f"pyspy-{name}.txt")
    finally:
        result["exit_code"] = await stop_server(server)
        for peer in server.peers:
            await stop_server(peer)
        lag = read_lag_file(server.lag_path)
        windows = [(r["t_accepted"], r["t_observed"]) for r in result.get("rounds", [])]
        loaded = [r["t0"] for r in result.get("rounds", [])]
        result["inside_lag_inflight"] = [v for w, v in lag if any(a <= w <= b for a, b in windows)]
        result["inside_lag_load"] = [v for w, v in lag if any(t0 <= w <= b for t0, (_, b) in zip(loaded, windows, strict=True))]
        result["inside_lag_available"] = bool(lag)
        worker_files = sorted(server.lag_path.parent.glob(server.lag_path.name + ".worker-*"))
        if worker_files:
            worker_lag = [sample for path in worker_files for sample in read_lag_file(path)]
            result["worker_lag_inflight"] = [v for w, v in worker_lag if any(a <= w <= b for a, b in windows)]
        log_lines = [line for srv in (server, *server.peers)
                     for line in srv.log_path.read_text(errors="replace").splitlines()]
        picked: list[str] = []
        for i, line in enumerate(log_lines):
            if len(picked) >= 60:
                break
            if "Traceback" in line:
                block = [line]
                for follow in log_lines[i + 1:i + 40]:
                    block.append(follow)
                    if follow and not follow.startswith((" ", "Traceback", "During", "The above")):
                        break
                picked.extend(block[:3] + ["  ..."] + block[-3:] if len(block) > 8 else block)
            elif line.startswith(("WARNING", "ERROR", "CRITICAL")) or " WARNING " in line or " ERROR " in line:
                picked.append(line)
        result["log_warnings"] = picked
        result["log_lines"] = len(log_lines)
        if args.keep_profile:
            for srv in (server, *server.peers):
                shutil.copy(srv.log_path, Path(args.keep_profile) / f"{srv.log_path.stem}-{name}.log")
            for db_file in workdir.glob("*.db*"):  # SQLite: keep the database for a post-mortem
                shutil.copy(db_file, Path(args.keep_profile) / f"{name}-{db_file.name}")
    return result


# ------------------------------------------------------------------------------------------
# Postgres database lifecycle


async def create_pg_database(admin_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"draftloop_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_url.rpartition("/")[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_pg_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------------
# reporting


def pool_rounds(rounds: list[dict[str, Any]], key: str, window: str = "inflight") -> list[float]:
    """Latency samples of one prober across rounds, restricted to the in-flight window
    (all N POSTs accepted -> all N finished) or the whole load (first POST -> all finished)."""
    out: list[float] = []
    for r in rounds:
        start = r["t_accepted"] if window == "inflight" else r["t0"]
        for wall, latency, status in r["samples"].get(key, []):
            if start <= wall <= r["t_observed"] and status != -1:
                out.append(latency)
    return out


def backend_figures(result: dict[str, Any], yardstick_s: float) -> dict[str, Any]:
    rounds = result["rounds"]
    quiet = result.get("quiet_rounds") or []
    probed = [r["makespan_s"] for r in rounds]
    makespans = [r["makespan_s"] for r in quiet] or probed
    paired = [(r["makespan_s"], r["paired_yardstick_s"]) for r in quiet if r.get("paired_yardstick_s")]
    figures = {
        "paired_yardsticks_s": [yardstick for _, yardstick in paired],
        "paired_ratios": [makespan / yardstick for makespan, yardstick in paired],
        "paired_ratio": statistics.median(makespan / yardstick for makespan, yardstick in paired) if paired else None,
        "makespan_s": statistics.median(makespans),
        "makespans_s": makespans,
        "makespan_source": "rounds without probes" if quiet else "probed rounds",
        "ratio": statistics.median(makespans) / yardstick_s,
        "probed_makespan_s": statistics.median(probed),
        "probed_makespans_s": probed,
        "quiet_server_cpu_s": [r["server_cpu_s"] for r in quiet],
        "quiet_api_cpu_s": [r.get("api_cpu_s") for r in quiet],
        "quiet_postgres_cpu_s": [r["postgres_cpu_s"] for r in quiet if r["postgres_cpu_s"] is not None],
        "postgres_cpu_s": [r["postgres_cpu_s"] for r in rounds if r["postgres_cpu_s"] is not None],
        "quiet_run_ms_p50": pct([x for r in quiet for x in r["run_ms"]], 50),
        "quiet_not_completed": [r["not_completed"] for r in quiet],
        "burst_post_errors": [e for r in quiet + rounds for e in r.get("post_errors", [])],
        "probe_errors": {key: sum(1 for r in rounds for _, _, st in r["samples"].get(key, []) if not 200 <= st < 300)
                         for key in ("post", "get", "health", "cancel")},
        "probe_error_codes": sorted({st for r in rounds for key in ("post", "get", "health")
                                     for _, _, st in r["samples"].get(key, []) if not 200 <= st < 300}),
        "single_task_s": statistics.median(result["single_task_s"]),
        "post_inflight": summary_ms(pool_rounds(rounds, "post")),
        "post_load": summary_ms(pool_rounds(rounds, "post", "load")),
        "post_burst": summary_ms([x for r in rounds for x in r["post_burst_s"]]),
        "accept_all_s": statistics.median(r["accept_all_s"] for r in rounds),
        "get_inflight": summary_ms(pool_rounds(rounds, "get")),
        "health_inflight": summary_ms(pool_rounds(rounds, "health")),
        "health_load": summary_ms(pool_rounds(rounds, "health", "load")),
        "cancel_inflight": summary_ms(pool_rounds(rounds, "cancel")),
        "list_poll": summary_ms([x for r in rounds for x in r["list_poll_s"]]),
        "inside_lag_inflight": summary_ms(result["inside_lag_inflight"]),
        "inside_lag_load": summary_ms(result["inside_lag_load"]),
        "bench_lag": summary_ms([x for r in rounds for x in r["bench_lag_s"]]),
        "run_ms": {"p50": pct([x for r in rounds for x in r["run_ms"]], 50),
                   "p95": pct([x for r in rounds for x in r["run_ms"]], 95)},
        "queued_ms": {"p50": pct([x for r in rounds for x in r["queued_ms"]], 50),
                      "p95": pct([x for r in rounds for x in r["queued_ms"]], 95)},
        "server_cpu_s": [r["server_cpu_s"] for r in rounds],
        "bench_cpu_s": [r["bench_cpu_s"] for r in rounds],
        "other_cpu_s": [r.get("other_cpu_guess_s") for r in quiet + rounds],
        "machine_busy_s": [r.get("machine_busy_s") for r in quiet + rounds],
        "not_completed": [r["not_completed"] for r in rounds],
        "model_calls": rounds[-1]["model_calls"],
        "peak_rss_mb": (result["memory_kb"].get("VmHWM") or 0) / 1024,
        "rss_peak_during_load_mb": max(r["server_rss_peak_kb"] for r in rounds) / 1024,
    }
    return figures


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(args: argparse.Namespace, inproc: dict[str, Any], backends: list[dict[str, Any]],
           started: dt.datetime, elapsed: float) -> tuple[str, str, dict[str, Any]]:
    """(console table, RESULTS.md text, machine-readable figures)."""
    yard = inproc["stream"]
    yardstick = yard["makespan_s"]
    floor = yard["alone_s"]
    all_figures: dict[str, Any] = {"inprocess": inproc, "backends": {}}
    lines = []
    lines.append(f"In-process yardstick (no server, no DB), N={args.tasks}, model latency {args.latency * 1000:.0f} ms, "
                 f"{yard['calls_per_task']:.1f} model calls/task:")
    lines.append(f"  {'variant':<34} {'one task alone':>15} {'N-task makespan':>16} {'x alone':>8} {'CPU s':>7}")
    labels = {"stream": "astream(tasks,updates,messages) *", "invoke": "ainvoke",
              "saver": "astream + InMemorySaver, sync"}
    for mode, data in inproc.items():
        lines.append(f"  {labels.get(mode, mode):<34} {data['alone_s'] * 1000:>12.0f} ms {data['makespan_s'] * 1000:>13.0f} ms "
                     f"{data['makespan_s'] / data['alone_s']:>7.2f}x {data['cpu_s']:>7.2f}")
    lines.append("  * the yardstick: the graph driven the way app/executor.py drives it, minus storage")
    lines.append("")
    for result in backends:
        f = backend_figures(result, yardstick)
        all_figures["backends"][result["backend"]] = f
        lines.append(f"Server on {result['backend']} (WORKER_CONCURRENCY={args.concurrency}, {args.rounds} rounds of N={args.tasks}):")
        rows = [
            ("makespan, no probes (median)", f"{f['makespan_s'] * 1000:.0f} ms  ({', '.join(f'{m * 1000:.0f}' for m in f['makespans_s'])})",
             f"{f['ratio']:.2f}x in-process limit", f"<= {TARGETS['makespan_ratio']}x", verdict(f['ratio'] <= TARGETS['makespan_ratio'])),
            *([("makespan / yardstick just before", ", ".join(f"{r:.2f}x" for r in f["paired_ratios"]),
                f"median {f['paired_ratio']:.2f}x; yardsticks " + ", ".join(f"{y * 1000:.0f}" for y in f["paired_yardsticks_s"]) + " ms",
                f"<= {TARGETS['makespan_ratio']}x", verdict(f["paired_ratio"] <= TARGETS["makespan_ratio"]))]
              if f["paired_ratio"] is not None else []),
            ("makespan with probes (median)", f"{f['probed_makespan_s'] * 1000:.0f} ms  ({', '.join(f'{m * 1000:.0f}' for m in f['probed_makespans_s'])})",
             f"{f['probed_makespan_s'] / yardstick:.2f}x", "", ""),
            ("one task alone via server", f"{f['single_task_s'] * 1000:.0f} ms", f"{f['single_task_s'] / floor:.2f}x in-process alone", "", ""),
            ("POST /api/tasks in flight", _pp(f["post_inflight"]), f"n={f['post_inflight']['n']}", "P95 <= 20 ms",
             verdict((f["post_inflight"]["p95"] or 1e9) <= TARGETS["post_p95_ms"])),
            ("POST /api/tasks burst of N", _pp(f["post_burst"]), f"all accepted in {f['accept_all_s'] * 1000:.0f} ms", "", ""),
            ("GET /api/tasks/{id} in flight", _pp(f["get_inflight"]), f"n={f['get_inflight']['n']}", "P95 <= 20 ms",
             verdict((f["get_inflight"]["p95"] or 1e9) <= TARGETS["get_p95_ms"])),
            ("GET /health in flight (outside lag)", _pp(f["health_inflight"]),
             f"n={f['health_inflight']['n']}, idle P50 {fmt(result['idle']['health']['p50'])} ms", "", ""),
            ("loop lag inside server, in flight", _pp(f["inside_lag_inflight"]), f"n={f['inside_lag_inflight']['n']}", "P99 <= 20 ms",
             verdict((f["inside_lag_inflight"]["p99"] or 1e9) <= TARGETS["lag_p99_ms"]) if f["inside_lag_inflight"]["n"] else "n/a"),
            ("loop lag inside server, whole load", _pp(f["inside_lag_load"]), f"n={f['inside_lag_load']['n']}", "", ""),
            ("peak RSS (VmHWM)", f"{f['peak_rss_mb']:.0f} MB", "", "", ""),
            ("run_ms / queued_ms P50", f"{fmt(f['run_ms']['p50'], 0)} / {fmt(f['queued_ms']['p50'], 0)} ms",
             f"P95 {fmt(f['run_ms']['p95'], 0)} / {fmt(f['queued_ms']['p95'], 0)} ms", "", ""),
            ("server CPU per round, no probes", ", ".join(f"{c:.2f} s" for c in f["quiet_server_cpu_s"] if c is not None),
             f"in-process: {yard['cpu_s']:.2f} s" + _api_share(f), "", ""),
            ("bench-process loop lag", _pp(f["bench_lag"]), "fake Ollama + client side", "", ""),
        ]
        for label, value, note, target, ok in rows:
            lines.append(f"  {label:<36} {value:<38} {note:<34} {target:<13} {ok}")
        if any(f["not_completed"]) or any(f["quiet_not_completed"]):
            lines.append(f"  NOT COMPLETED: {f['not_completed']} / {f['quiet_not_completed']}")
        lines.append("")
    console = "\n".join(lines)
    md = render_markdown(args, inproc, backends, all_figures, started, elapsed)
    return console, md, all_figures


def _pp(s: dict[str, Any]) -> str:
    return f"P50 {fmt(s['p50'])} / P95 {fmt(s['p95'])} / P99 {fmt(s['p99'])} ms"


def machine_facts() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    try:
        nproc = subprocess.run(["nproc"], check=False, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        nproc = str(os.cpu_count())
    versions = {}
    for pkg in ("langgraph", "litestar", "uvicorn", "sqlalchemy", "aiosqlite", "asyncpg", "psycopg", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version
            versions[pkg] = version(pkg)
    return {"nproc": nproc, "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "kernel": platform.release(),
            "packages": ", ".join(f"{k} {v}" for k, v in versions.items())}


def render_markdown(args: argparse.Namespace, inproc: dict[str, Any], backends: list[dict[str, Any]],
                    figures: dict[str, Any], started: dt.datetime, elapsed: float) -> str:
    facts = machine_facts()
    yard = inproc["stream"]
    out = ["# Draftloop load benchmark", ""]
    out.append("Generated by `bench/load.py`; do not edit the figures by hand — run the script again. "
               "The analysis at the end comes from `bench/ANALYSIS.md` (hand-written against the run it names).")
    out.append("")
    out.append("## Run")
    out.append("")
    out.append("```sh")
    out.append(" ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/load.py", *args.argv]))
    out.append("```")
    out.append("")
    out.append(f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z')} (took {elapsed:.0f} s)")
    out.append(f"- Machine: nproc={facts['nproc']}, CPU {facts['cpu']}, {facts['memory']} RAM, kernel {facts['kernel']}")
    out.append(f"- Python {facts['python']} ({facts['implementation']}); {facts['packages']}")
    out.append(f"- Workload: N={args.tasks} tasks, WORKER_CONCURRENCY={args.concurrency}, fake Ollama latency "
               f"{args.latency * 1000:.0f} ms per call (every call), ~{args.words}-word drafts streamed as word tokens, "
               f"research=false, images=false, judge score 85 (passes first time): "
               f"{yard['calls_per_task']:.1f} model calls per task "
               f"({', '.join(f'{k} {v}' for k, v in sorted(yard['model_calls'].items()))} per N tasks).")
    out.append(f"- Server: `draftloop serve` subprocess with default settings except WORKER_CONCURRENCY, "
               f"SHUTDOWN_GRACE_SECONDS=3{(', ' + ', '.join(args.server_env)) if args.server_env else ''}; "
               f"uvicorn (uvloop, httptools), durability `sync` as app/executor.py sets it. "
               f"{args.rounds} measured rounds of N tasks per backend on one server; figures pool the rounds"
               + ("; every request carries the bearer token of an editor made with `draftloop create-user` "
                  "(the auth middleware looks the token up in the database, cached per process for "
                  "AUTH_CACHE_SECONDS, 2 s by default)."
                  if any(b.get("auth") for b in backends) else "."))
    out.append(f"- Probes (separate process, own event loop): GET /health every {args.health_interval * 1000:.0f} ms, "
               f"GET /api/tasks/{{id}} every {args.get_interval * 1000:.0f} ms, POST /api/tasks every "
               f"{args.post_interval * 1000:.0f} ms (each probe task cancelled at once, untimed in POST figures), "
               "each prober sequential on its own keep-alive connection. \"In flight\" = from the moment all N POSTs "
               "were accepted until all N tasks were seen finished.")
    out.append("")
    out.append("## In-process yardstick (no server, no database)")
    out.append("")
    out.append("| variant | one task alone (best) | N-task makespan (best; all repeats) | makespan / alone | CPU of the best |")
    out.append("|---|---:|---:|---:|---:|")
    labels = {"stream": "**astream(tasks, updates, messages), no checkpointer — the yardstick**",
              "invoke": "ainvoke, no checkpointer", "saver": "astream + InMemorySaver, durability=sync"}
    for mode, data in inproc.items():
        repeats = ", ".join(f"{m * 1000:.0f}" for m in data.get("makespans_s", [data["makespan_s"]]))
        out.append(f"| {labels.get(mode, mode)} | {data['alone_s'] * 1000:.0f} ms | {data['makespan_s'] * 1000:.0f} ms ({repeats}) | "
                   f"{data['makespan_s'] / data['alone_s']:.2f}× | {data['cpu_s']:.2f} s |")
    out.append("")
    loop_name = getattr(args, "yardstick_loop", "asyncio")  # runs saved before the option: asyncio
    gc_name = getattr(args, "yardstick_gc", "default")  # runs saved before the option: CPython's defaults
    out.append(f"The yardstick runs in a child process (its own interpreter and event loop, like the server; "
               f"{'uvloop, as the server processes use' if loop_name == 'uvloop' else 'asyncio loop'}; "
               f"{'the collector tuned as in the server processes (app/gc_tuning.py)' if gc_name == 'service' else 'CPython default collector settings'}) with "
               f"the fake model in the bench process. Like the server, it runs N unmeasured tasks at once before "
               f"it measures, so its connection pool to the fake has grown to size. Other processes on the machine used "
               f"{fmt(yard.get('other_cpu_s'), 1)} CPU-seconds while it ran.")
    out.append("")
    out.append(f"Ideal floor (one task alone): **{yard['alone_s'] * 1000:.0f} ms** "
               f"({yard['calls_per_task']:.0f} × {args.latency * 1000:.0f} ms of model latency = "
               f"{yard['calls_per_task'] * args.latency * 1000:.0f} ms). "
               f"This machine's limit for N={args.tasks}: **{yard['makespan_s'] * 1000:.0f} ms**.")
    out.append("")
    for result in backends:
        f = figures["backends"][result["backend"]]
        name = result["backend"]
        out.append(f"## Server on {name}")
        out.append("")
        if result.get("database"):
            out.append(f"Database: {'a SQLite file' if result['database'] == 'sqlite' else 'a fresh Postgres database'}"
                       " (DATABASE_URL of the server processes).")
            out.append("")
        if result.get("split"):
            out.append(f"Split topology: `draftloop serve --workers {args.workers}`. The server process (every request "
                       "and probe goes to it) serves HTTP only; the graph runs in the worker processes it supervises, "
                       f"each with WORKER_CONCURRENCY={-(-args.concurrency // args.workers)}, claiming through the "
                       "`FOR UPDATE SKIP LOCKED` leases and woken by LISTEN/NOTIFY on Postgres (polling on SQLite). "
                       "CPU and memory figures sum all processes.")
            out.append("")
        out.append("| figure | measured | target | verdict |")
        out.append("|---|---|---|---|")
        out.append(f"| makespan of N={args.tasks} (first POST sent → last `finished_at`), median of {f['makespan_source']} | "
                   f"**{f['makespan_s'] * 1000:.0f} ms** = **{f['ratio']:.2f}×** the in-process limit "
                   f"(rounds: {', '.join(f'{m * 1000:.0f}' for m in f['makespans_s'])} ms) | ≤ {TARGETS['makespan_ratio']}× | "
                   f"{verdict(f['ratio'] <= TARGETS['makespan_ratio'])} |")
        if f.get("paired_ratio") is not None:
            out.append(f"| the same rounds, each against a yardstick run just before it "
                       f"({', '.join(f'{y * 1000:.0f}' for y in f['paired_yardsticks_s'])} ms), median | "
                       f"**{f['paired_ratio']:.2f}×** (rounds: {', '.join(f'{r:.2f}×' for r in f['paired_ratios'])}) | "
                       f"≤ {TARGETS['makespan_ratio']}× | {verdict(f['paired_ratio'] <= TARGETS['makespan_ratio'])} |")
        out.append(f"| `POST /api/tasks` while runs are in flight | {_pp(f['post_inflight'])} (n={f['post_inflight']['n']}) | "
                   f"P95 ≤ 20 ms | {verdict((f['post_inflight']['p95'] or 1e9) <= 20)} |")
        out.append(f"| `GET /api/tasks/{{id}}` while runs are in flight | {_pp(f['get_inflight'])} (n={f['get_inflight']['n']}) | "
                   f"P95 ≤ 20 ms | {verdict((f['get_inflight']['p95'] or 1e9) <= 20)} |")
        lag = f["inside_lag_inflight"]
        out.append(f"| event-loop lag inside the server, in flight | {_pp(lag)} (n={lag['n']}) | P99 ≤ 20 ms | "
                   f"{verdict((lag['p99'] or 1e9) <= 20) if lag['n'] else 'n/a'} |")
        out.append(f"| peak memory of the server (VmHWM) | {f['peak_rss_mb']:.0f} MB | — | — |")
        if result.get("split"):
            wl = summary_ms(result.get("worker_lag_inflight") or [])
            out.append(f"| event-loop lag inside the worker process, in flight | {_pp(wl)} (n={wl['n']}) | — | — |")
        out.append("")
        out.append("More figures:")
        out.append("")
        out.append("| figure | value |")
        out.append("|---|---|")
        out.append(f"| makespan in the probed rounds (latency probes running) | {f['probed_makespan_s'] * 1000:.0f} ms = "
                   f"{f['probed_makespan_s'] / yard['makespan_s']:.2f}× (rounds: {', '.join(f'{m * 1000:.0f}' for m in f['probed_makespans_s'])} ms) |")
        if result.get("warmup_makespan_s"):
            out.append(f"| the unmeasured warm-up round of N before the measured ones (pools grow to size) | "
                       f"{result['warmup_makespan_s'] * 1000:.0f} ms |")
        if len(yard.get("makespans_s") or []) > 1:
            # The limit is the yardstick's best repeat; a repeat that caught the VM at a fast
            # moment makes every ratio look worse, so the median's ratio is shown beside it.
            median_yard = statistics.median(yard["makespans_s"])
            out.append(f"| makespan against the yardstick's median repeat ({median_yard * 1000:.0f} ms) instead of its best | "
                       f"{f['makespan_s'] / median_yard:.2f}× |")
        out.append(f"| server CPU per round without probes (all threads) | {', '.join(f'{c:.2f} s' for c in f['quiet_server_cpu_s'] if c is not None)} "
                   f"(in-process graph: {yard['cpu_s']:.2f} s for the same N){_api_share(f)} |")
        if f["postgres_cpu_s"] or f["quiet_postgres_cpu_s"]:
            out.append(f"| Postgres backends' CPU per round (no probes / probed) | "
                       f"{', '.join(f'{c:.2f}' for c in f['quiet_postgres_cpu_s'])} s / {', '.join(f'{c:.2f}' for c in f['postgres_cpu_s'])} s |")
        out.append(f"| per-task run_ms P50 without probes | {fmt(f['quiet_run_ms_p50'], 0)} ms |")
        out.append(f"| one task alone through the server (POST → `finished_at`) | {f['single_task_s'] * 1000:.0f} ms "
                   f"({f['single_task_s'] / yard['alone_s']:.2f}× in-process alone) |")
        out.append(f"| the burst of N concurrent POSTs | {_pp(f['post_burst'])}; all {args.tasks} accepted after "
                   f"{f['accept_all_s'] * 1000:.0f} ms |")
        out.append(f"| `POST /api/tasks` over the whole load (burst included) | {_pp(f['post_load'])} (n={f['post_load']['n']}) |")
        out.append(f"| `GET /health` in flight (outside view of loop lag) | {_pp(f['health_inflight'])} (n={f['health_inflight']['n']}); "
                   f"idle {_pp(result['idle']['health'])} |")
        out.append(f"| `GET /health` over the whole load | {_pp(f['health_load'])} |")
        out.append(f"| `GET /api/tasks/{{id}}` idle | {_pp(result['idle']['get'])} |")
        out.append(f"| `POST /api/tasks/{{id}}/cancel` (probe tasks) in flight | {_pp(f['cancel_inflight'])} |")
        out.append(f"| `GET /api/tasks?status=…` completion poll | {_pp(f['list_poll'])} |")
        out.append(f"| loop lag inside the server over the whole load (burst included) | {_pp(f['inside_lag_load'])}; "
                   f"idle {_pp(result['idle_inside_lag'])} |")
        out.append(f"| per-task run_ms (claim → end) | P50 {fmt(f['run_ms']['p50'], 0)} / P95 {fmt(f['run_ms']['p95'], 0)} ms |")
        out.append(f"| per-task queued_ms (created → claimed) | P50 {fmt(f['queued_ms']['p50'], 0)} / P95 {fmt(f['queued_ms']['p95'], 0)} ms |")
        out.append(f"| server CPU time per probed round (all threads) | {', '.join(f'{c:.2f} s' for c in f['server_cpu_s'] if c is not None)} |")
        out.append(f"| bench process CPU per round (fake Ollama + load client; probers excluded) | "
                   f"{', '.join(f'{c:.2f} s' for c in f['bench_cpu_s'])} |")
        out.append(f"| CPU used by other processes on this machine during each round (no-probe rounds, then probed; "
                   f"machine busy time minus server, bench, prober and Postgres) | "
                   f"{', '.join(fmt(c, 2) for c in f['other_cpu_s'])} s |")
        out.append(f"| RSS peak sampled during load / VmHWM | {f['rss_peak_during_load_mb']:.0f} MB / {f['peak_rss_mb']:.0f} MB |")
        out.append(f"| bench-process loop lag (hosts the fake Ollama) | {_pp(f['bench_lag'])} |")
        out.append(f"| failed requests: burst POSTs (all rounds) / probe requests (non-2xx or transport error) | "
                   f"{len(f['burst_post_errors'])} / {f['probe_errors']} (codes {f['probe_error_codes']})"
                   + (f"; first burst error: `{f['burst_post_errors'][0][:120]}`" if f["burst_post_errors"] else "") + " |")
        out.append(f"| tasks not completed (probed rounds / rounds without probes) | {f['not_completed']} / {f['quiet_not_completed']} |")
        sm = result.get("server_metrics", {})
        if sm.get("http"):
            out.append("")
            out.append("Server-side handler time from `/metrics` (`draftloop_http_request_duration_seconds`, "
                       "2xx, all measured rounds, bucket-interpolated; excludes time queued before the handler runs):")
            out.append("")
            out.append("| route | n | P50 | P95 | P99 |")
            out.append("|---|---:|---:|---:|---:|")
            for route, h in sorted(sm["http"].items()):
                out.append(f"| `{route}` | {h['n']} | {h['p50']:.1f} ms | {h['p95']:.1f} ms | {h['p99']:.1f} ms |")
        if sm.get("nodes"):
            out.append("")
            out.append("Node durations from `/metrics` (node_started → node_finished events, mean over rounds): " +
                       ", ".join(f"{n} {v['mean_ms']:.0f} ms" for n, v in sorted(sm["nodes"].items())))
        if result.get("log_warnings"):
            out.append("")
            out.append("Server log warnings/errors (tracebacks shortened):")
            out.append("")
            out.append("```")
            out.extend(line[:300] for line in result["log_warnings"])
            out.append("```")
        prof = result.get("profile")
        if prof and "samples" in prof:
            out.append("")
            out.append(f"### py-spy profile of the server ({name}, one extra unmeasured round, {prof['duration_s']} s at "
                       f"{args.profile_rate} Hz, `--nonblocking --threads`; that round's makespan "
                       f"{prof['round_makespan_s'] * 1000:.0f} ms)")
            out.append("")
            total = prof["samples"] or 1
            out.append(f"Active (non-idle) samples: {prof['samples']}, of which the main (event-loop) thread: "
                       f"{prof['main_thread_samples']} ({prof['main_thread_samples'] / total:.0%}). Threads: " +
                       ", ".join(f"{t} {c}" for t, c in prof["threads"]))
            out.append("")
            mt = prof["main_thread_samples"] or 1
            out.append(f"Event-loop (main) thread, by category (first match on the stack; {prof['main_thread_samples']} samples = "
                       f"{prof['main_thread_samples'] / (args.profile_rate * prof['duration_s']):.0%} of the {prof['duration_s']} s window):")
            out.append("")
            out.append("| category | samples | share of main thread |")
            out.append("|---|---:|---:|")
            for cat, c in prof["main_categories"]:
                out.append(f"| {cat} | {c} | {c / mt:.0%} |")
            out.append("")
            out.append("Event-loop thread, samples with a package anywhere on the stack: " +
                       ", ".join(f"{p} {c / mt:.0%}" for p, c in prof["main_inclusive_packages"][:14]))
            out.append("")
            out.append("All threads, samples with a package anywhere on the stack (inclusive):")
            out.append("")
            out.append("| package | samples | share |")
            out.append("|---|---:|---:|")
            for pkg, c in prof["inclusive_packages"]:
                out.append(f"| {pkg} | {c} | {c / total:.0%} |")
            out.append("")
            out.append("Top inclusive functions:")
            out.append("")
            out.append("| function | samples | share |")
            out.append("|---|---:|---:|")
            for fn, c in prof["inclusive_functions"][:30]:
                out.append(f"| `{fn[:140]}` | {c} | {c / total:.0%} |")
            out.append("")
            out.append("Top self (leaf) functions:")
            out.append("")
            out.append("| function | samples | share |")
            out.append("|---|---:|---:|")
            for fn, c in prof["self_functions"][:15]:
                out.append(f"| `{fn[:140]}` | {c} | {c / total:.0%} |")
        out.append("")
    out.append("## How the figures are measured")
    out.append("")
    out.append("- **Makespan**: wall clock from just before the N POSTs are sent to the latest `finished_at` of the N "
               "task rows (server and bench share this machine's clock), so the completion poll's interval does not "
               "add to it. The in-process limit is the `asyncio.gather` makespan of the yardstick variant; the ratio "
               "divides the two.")
    out.append("- **POST / GET latencies**: client-side wall time of one request on a warm keep-alive connection in "
               "the prober process (connection set-up excluded, loopback). Server-side handler times from `/metrics` "
               "are shown separately; the difference is time waiting for the server's event loop.")
    out.append("- **Loop lag, outside**: GET /health latency (it does no I/O), compared with its idle latency. "
               "**Inside**: `bench/_serverprobe/sitecustomize.py`, put on the server's PYTHONPATH by this script, "
               "starts one task in the server's own loop that sleeps 10 ms and records the oversleep (uvloop timers "
               "have 1 ms resolution, so idle readings are 0–1 ms). /metrics has no loop-lag series; the hook is "
               "measurement scaffolding only, app/ is unchanged.")
    out.append("- **Peak memory**: VmHWM of the server process from /proc/<pid>/status at the end of the measured "
               "rounds (it includes start-up), plus VmRSS sampled every 100 ms during load.")
    out.append("- The fake Ollama and the load client share the bench process; its loop lag is reported so a slow "
               "fake would show. Both the yardstick and the server use the same fake.")
    out.append("")
    out.append("## Targets (issue 4, 2 cores, N=100, concurrency 100, durable)")
    out.append("")
    out.append("| target | " + " | ".join(r["backend"] for r in backends) + " |")
    out.append("|---|" + "---|" * len(backends))
    rows = [
        ("makespan ≤ 1.2× in-process limit", lambda f: f"{f['ratio']:.2f}× {verdict(f['ratio'] <= 1.2)}"),
        ("POST /api/tasks P95 ≤ 20 ms", lambda f: f"{fmt(f['post_inflight']['p95'])} ms {verdict((f['post_inflight']['p95'] or 1e9) <= 20)}"),
        ("GET /api/tasks/{id} P95 ≤ 20 ms", lambda f: f"{fmt(f['get_inflight']['p95'])} ms {verdict((f['get_inflight']['p95'] or 1e9) <= 20)}"),
        ("loop lag P99 ≤ 20 ms", lambda f: f"{fmt(f['inside_lag_inflight']['p99'])} ms {verdict((f['inside_lag_inflight']['p99'] or 1e9) <= 20)}"),
    ]
    for label, cell in rows:
        out.append(f"| {label} | " + " | ".join(cell(figures["backends"][r["backend"]]) for r in backends) + " |")
    out.append("")
    out.append("Reference figures from the issue (a comparable 5-call toy graph, 200 ms fake model, 100 runs, 2 cores): "
               "in-process 2.2× one run; `langgraph dev` 3.8× with cheap-GET P95 ~100 ms and `get_state` P95 ~125 ms; "
               "Aegra on Postgres 5.1× with `get_state` P95 ~1.3 s.")
    out.append("")
    if ANALYSIS_FILE.exists():
        out.append(ANALYSIS_FILE.read_text().rstrip())
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--tasks", type=int, default=100, help="concurrent tasks per round (default 100)")
    p.add_argument("-c", "--concurrency", type=int, default=None, help="WORKER_CONCURRENCY of the server (default: N)")
    p.add_argument("--latency", type=float, default=0.2, help="fake model latency per call, seconds (default 0.2)")
    p.add_argument("--words", type=int, default=300, help="target words of each draft (default 300)")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both", "none"], default="sqlite",
                   help="server backend(s); none = yardstick only (default sqlite)")
    p.add_argument("--split", action="store_true",
                   help="also run each backend split: `draftloop serve --workers K` serves HTTP only and runs "
                        "the graph in K worker processes it supervises (WORKER_CONCURRENCY=ceil(N/K) each)")
    p.add_argument("--split-only", action="store_true", help="like --split, without the one-process servers")
    p.add_argument("--workers", type=int, default=2, help="K, the worker processes of a split server (default 2)")
    p.add_argument("--postgres-admin-url", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres"),
                   help="libpq URL of a role that may CREATE DATABASE; a fresh database is created and dropped")
    p.add_argument("--postgres-url", default=None,
                   help="use this existing (empty) database instead of creating one")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds of N tasks per backend (default 3)")
    p.add_argument("--quiet-rounds", type=int, default=3,
                   help="rounds without probes, for the makespan alone (default 3; 0: use the probed rounds)")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed per round (default 300)")
    p.add_argument("--poll-interval", type=float, default=0.05, help="completion poll interval, s (default 0.05)")
    p.add_argument("--health-interval", type=float, default=0.01, help="pause between /health probes, s")
    p.add_argument("--get-interval", type=float, default=0.01, help="pause between GET /api/tasks/{id} probes, s")
    p.add_argument("--post-interval", type=float, default=0.05, help="pause between probe POSTs, s")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra env for the server (repeatable), e.g. QUEUE_POLL_SECONDS=0.1")
    p.add_argument("--no-inside-lag", dest="inside_lag", action="store_false",
                   help="do not put the loop-lag hook (bench/_serverprobe) on the server's PYTHONPATH")
    p.add_argument("--profile", dest="profile", action="store_true", default=None,
                   help="py-spy the server during one extra unmeasured round (default: on if py-spy is installed)")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--profile-seconds", type=float, default=8)
    p.add_argument("--profile-rate", type=int, default=200)
    p.add_argument("--keep-profile", default=None, metavar="DIR",
                   help="copy raw py-spy stacks, server logs and SQLite files into DIR")
    p.add_argument("--yardstick-repeats", type=int, default=3,
                   help="in-process runs per variant; the best makespan is the limit (default 3)")
    p.add_argument("--paired-yardstick", action=argparse.BooleanOptionalAction, default=True,
                   help="run the yardstick once more just before each round without probes and report each "
                        "makespan against it too (default on)")
    p.add_argument("--yardstick-gc", choices=("service", "default"), default="service",
                   help="the yardstick's garbage collector: tuned like the service's processes "
                        "(app/gc_tuning.py, default) or CPython's defaults")
    p.add_argument("--yardstick-loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of the in-process yardstick (default uvloop, as the server uses)")
    p.add_argument("--inprocess-saver", action="store_true", default=True,
                   help="also run the yardstick with an InMemorySaver (default on)")
    p.add_argument("--skip-inprocess-saver", dest="inprocess_saver", action="store_false")
    p.add_argument("-o", "--output", default=str(BENCH_DIR / "RESULTS.md"), help="markdown report (default bench/RESULTS.md)")
    p.add_argument("--json", default=None, help="also write every raw figure and sample as JSON here")
    p.add_argument("--rerender", default=None, metavar="JSON",
                   help="no run: rebuild the report from a --json file (e.g. after editing bench/ANALYSIS.md)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.concurrency = args.concurrency or args.tasks
    if args.profile is None:
        args.profile = bool(shutil.which("py-spy") or (VENV_BIN / "py-spy").exists())
    for kv in args.server_env:
        if "=" not in kv:
            p.error(f"--server-env wants KEY=VALUE, got {kv!r}")
    if args.tasks < 1 or args.rounds < 1:
        p.error("--tasks and --rounds must be at least 1")
    return args


async def main_async(args: argparse.Namespace) -> int:
    started = dt.datetime.now(dt.UTC).astimezone()
    t_start = time.monotonic()
    fake = await start_fake(args.latency)
    bench_lag = LagMonitor()
    bench_lag.start()
    backends: list[dict[str, Any]] = []
    try:
        print(f"fake Ollama on {fake.base_url}, latency {args.latency * 1000:.0f} ms per call", flush=True)
        print("in-process yardstick ...", flush=True)
        inproc = await run_inprocess(args, fake)
        for mode, data in inproc.items():
            print(f"  {mode}: alone {data['alone_s'] * 1000:.0f} ms, N={args.tasks} makespan {data['makespan_s'] * 1000:.0f} ms",
                  flush=True)
        names = {"sqlite": ["sqlite"], "postgres": ["postgres"], "both": ["sqlite", "postgres"], "none": []}[args.backend]
        if args.split_only:
            names = [f"{name}-split" for name in names]
        elif args.split:
            names.extend([f"{name}-split" for name in list(names)])
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"draftloop-bench-{name}-") as tmp:
                workdir = Path(tmp)
                print(f"server on {name} ...", flush=True)
                # "sqlite" and "sqlite-split" alike: the split section once ran on Postgres.
                if name.removesuffix("-split") == "sqlite":
                    backends.append(await run_backend(args, name, f"sqlite+aiosqlite:///{workdir / 'draftloop.db'}",
                                                      fake, bench_lag, workdir))
                elif args.postgres_url:
                    backends.append(await run_backend(args, name, args.postgres_url, fake, bench_lag, workdir))
                else:
                    db_name, url = await create_pg_database(args.postgres_admin_url)
                    try:
                        backends.append(await run_backend(args, name, url, fake, bench_lag, workdir))
                    finally:
                        await drop_pg_database(args.postgres_admin_url, db_name)
                print(f"  done: makespans {[round(r['makespan_s'] * 1000) for r in backends[-1]['rounds']]} ms", flush=True)
    finally:
        await bench_lag.stop()
        await fake.server.stop()
    console, md, figures = render(args, inproc, backends, started, time.monotonic() - t_start)
    print()
    print(console)
    Path(args.output).write_text(md)
    print(f"wrote {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "started": started.isoformat(), "elapsed_s": time.monotonic() - t_start,
            "inprocess": inproc, "backends": backends, "figures": figures}, default=str))
    return 0


def rerender(args: argparse.Namespace) -> int:
    saved = json.loads(Path(args.rerender).read_text())
    run_args = argparse.Namespace(**saved["args"])
    output = args.output
    _, md, _ = render(run_args, saved["inprocess"], saved["backends"],
                      dt.datetime.fromisoformat(saved["started"]), saved["elapsed_s"])
    Path(output).write_text(md)
    print(f"wrote {output} from {args.rerender}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rerender:
        return rerender(args)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
