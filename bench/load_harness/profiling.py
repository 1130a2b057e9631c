"""py-spy during an extra, unmeasured round, and where the server's main thread spends its samples."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.load_harness.fake_model import FakeModel
from bench.load_harness.measures import LagMonitor
from bench.load_harness.paths import REPO, VENV_BIN
from bench.load_harness.rounds import one_round
from bench.load_harness.server import Server


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
    ("executor loops (dispatch, heartbeat, cancel check)", ("app/engine/dispatcher.py", "app/engine/heartbeat.py")),
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
