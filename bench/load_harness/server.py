"""A served `draftloop serve` process for the bench: its user, start, readiness, stop; Postgres
databases created and dropped for one backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load_harness.fake_model import FakeModel, service_env
from bench.load_harness.measures import child_pids
from bench.load_harness.paths import BENCH_DIR, PROBE_HOOK_DIR, REPO, VENV_BIN

# Env of the parent that must not leak into the server (it would change what a task does).
_SCRUB_PREFIXES = ("LLM_", "OLLAMA_", "OPENAI_", "SERPER_", "PEXELS_", "EMBEDDED_", "DATABASE_URL",
                   "WORKER_", "QUEUE_", "LEASE_", "HEARTBEAT_", "SSE_", "SHUTDOWN_", "LOG_", "DRAFTLOOP_",
                   "QUALITY_", "MAX_REVISIONS", "RESEARCH_", "IMAGES_", "DEFAULT_TARGET", "SEARCH_",
                   "MODEL_PRICES", "HOST", "PORT", "LANGSMITH_", "LANGCHAIN_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
