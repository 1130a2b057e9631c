"""One round: N tasks posted at once and followed to their end, with CPU, memory and probe samples."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import time
from collections import Counter
from typing import Any

import httpx

from bench.load_harness.fake_model import FakeModel, task_body
from bench.load_harness.measures import (
    LagMonitor,
    machine_busy_seconds,
    parse_iso,
    postgres_cpu_seconds,
    proc_cpu_seconds,
    proc_status,
)
from bench.load_harness.prober import prober_main
from bench.load_harness.server import Server


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
