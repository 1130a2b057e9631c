#!/usr/bin/env python
"""Does a hostile post body stall the service? (issue "Faults and hostile input", markdown.)

Starts a real `draftloop serve` (SQLite in a temporary directory, the model behind a loopback
fake Ollama, as bench/load.py does) from the checkout given by --repo, then, from this process:

1. creates a post whose markdown is N (default 50,000) ``[`` and times the request;
2. publishes a post of M (default 15,000) ``[`` and reads it from R concurrent anonymous
   readers for D seconds, while a prober times GET /health every 0.25 s and a login
   (POST /api/auth/token) every second.

It prints each figure beside the machine's load (``uptime``), so that runs on a shared box can
be read for what they are. Compare two checkouts by pointing --repo at each:

    .venv/bin/python bench/hostile_markdown.py                       # this checkout
    .venv/bin/python bench/hostile_markdown.py --repo /path/to/other  # another one
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.fakes.ollama import FakeOllama  # noqa: E402 - after the path
from devtools.fakes.writer import ScriptedWriter  # noqa: E402
from devtools.identities import TEST_PASSWORD, TEST_SECRET, ensure_user, token_for  # noqa: E402

STARTUP_SECONDS = 60.0
REQUEST_SECONDS = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def uptime() -> str:
    process = await asyncio.create_subprocess_exec("uptime", stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return out.decode().strip()


async def wait_healthy(http: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"draftloop serve exited with {process.returncode}")
        try:
            if (await http.get(f"{url}/health", timeout=1)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("draftloop serve did not become healthy")


def summary(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"n={len(ordered)} median={statistics.median(ordered) * 1000:.0f} ms p95={p95 * 1000:.0f} ms "
            f"max={ordered[-1] * 1000:.0f} ms")


async def probe(http: httpx.AsyncClient, url: str, stop: asyncio.Event, health: list[float],
                logins: list[float]) -> None:
    last_login = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        await http.get(f"{url}/health", timeout=REQUEST_SECONDS)
        health.append(time.perf_counter() - started)
        if time.monotonic() - last_login >= 1.0:
            last_login = time.monotonic()
            started = time.perf_counter()
            await http.post(f"{url}/api/auth/token", data={"username": "test-admin", "password": TEST_PASSWORD},
                            timeout=REQUEST_SECONDS)
            logins.append(time.perf_counter() - started)
        await asyncio.sleep(0.25)


async def read_loop(http: httpx.AsyncClient, url: str, post_id: str, stop: asyncio.Event,
                    reads: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = await http.get(f"{url}/api/posts/{post_id}", timeout=REQUEST_SECONDS)
        response.raise_for_status()
        reads.append(time.perf_counter() - started)


async def measure(args: argparse.Namespace) -> None:
    repo = Path(args.repo).resolve()
    with tempfile.TemporaryDirectory(prefix="draftloop-bench-") as data_dir:
        ollama = await FakeOllama().start()
        ollama.responder = ScriptedWriter()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(repo), "DRAFTLOOP_DATA_DIR": data_dir,
               "DRAFTLOOP_SECRET_KEY": TEST_SECRET, "LLM_PROVIDER": "ollama", "OLLAMA_BASE_URL": ollama.base_url,
               "OLLAMA_MODEL": "llama3.2", "RESEARCH_ENABLED": "false", "IMAGES_ENABLED": "false",
               "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "serve", "--port", str(port), cwd=repo, env=env,
            stdin=subprocess.DEVNULL)
        try:
            async with httpx.AsyncClient() as http:
                await wait_healthy(http, url, process)
                await ensure_user(f"sqlite+aiosqlite:///{Path(data_dir) / 'draftloop.db'}")
                editor = {"Authorization": f"Bearer {token_for('00000000-0000-4000-8000-0000000000a1', 'admin')}"}
                print(f"checkout: {repo}")
                print(f"load before: {await uptime()}")

                started = time.perf_counter()
                created = await http.post(f"{url}/api/posts", headers=editor, timeout=REQUEST_SECONDS,
                                          json={"title": "Brackets", "markdown": "[" * args.create_chars})
                elapsed = time.perf_counter() - started
                print(f"create {args.create_chars:,} '[': HTTP {created.status_code} in {elapsed:.2f} s "
                      f"({await uptime()})")

                post = await http.post(f"{url}/api/posts", headers=editor, timeout=REQUEST_SECONDS,
                                       json={"title": "Read me", "markdown": "[" * args.read_chars,
                                             "status": "published"})
                post.raise_for_status()
                post_id = post.json()["id"]

                stop = asyncio.Event()
                health: list[float] = []
                logins: list[float] = []
                reads: list[float] = []
                tasks = [asyncio.create_task(read_loop(http, url, post_id, stop, reads)) for _ in range(args.readers)]
                tasks.append(asyncio.create_task(probe(http, url, stop, health, logins)))
                await asyncio.sleep(args.seconds)
                stop.set()
                await asyncio.gather(*tasks)
                print(f"{args.readers} readers of {args.read_chars:,} '[' for {args.seconds:.0f} s "
                      f"({await uptime()}):")
                print(f"  reads:  {summary(reads)}")
                print(f"  health: {summary(health)}")
                print(f"  logins: {summary(logins)}")
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            await ollama.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose `draftloop serve` is measured")
    parser.add_argument("--create-chars", type=int, default=50_000)
    parser.add_argument("--read-chars", type=int, default=15_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
