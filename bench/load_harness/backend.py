"""One backend's whole measurement: a server on it, warm-up, rounds with and without probes, logs."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load_harness.fake_model import FakeModel
from bench.load_harness.measures import LagMonitor, proc_status, read_lag_file, summary_ms
from bench.load_harness.profiling import profile_round
from bench.load_harness.rounds import one_round, single_task_through_server
from bench.load_harness.server import Server, create_bench_user, log_in, start_server, stop_server
from bench.load_harness.server_metrics import metrics_delta, scrape
from bench.load_harness.yardstick import run_inprocess


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
