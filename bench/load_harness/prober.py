"""The prober process: its own event loop samples POST, GET and /health latencies while runs are in
flight, so the timings are not skewed by the fake model in the bench's process."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx


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
