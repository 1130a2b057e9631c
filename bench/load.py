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

This script is the command line; the parts live in bench/load_harness/: fake_model.py (1), yardstick.py
(2), server.py, rounds.py, prober.py, server_metrics.py, profiling.py and backend.py (3), figures.py,
report.py and report_markdown.py (4), measures.py (percentiles, /proc readings, loop lag).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# After the sys.path insert above: run as a script, only bench/ is on the path.
from bench.load_harness.backend import run_backend  # noqa: E402
from bench.load_harness.fake_model import start_fake  # noqa: E402
from bench.load_harness.measures import LagMonitor  # noqa: E402
from bench.load_harness.paths import BENCH_DIR, VENV_BIN  # noqa: E402
from bench.load_harness.report import render  # noqa: E402
from bench.load_harness.server import create_pg_database, drop_pg_database  # noqa: E402
from bench.load_harness.yardstick import run_inprocess  # noqa: E402


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
