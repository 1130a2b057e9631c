"""The console table of a run, and the figures and RESULTS.md text that come with it."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from bench.load_harness.figures import TARGETS, api_share, backend_figures, percentiles_text, verdict
from bench.load_harness.measures import fmt
from bench.load_harness.report_markdown import render_markdown


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
    lines.append("  * the yardstick: the graph driven the way app/engine/driver.py drives it, minus storage")
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
            ("POST /api/tasks in flight", percentiles_text(f["post_inflight"]), f"n={f['post_inflight']['n']}", "P95 <= 20 ms",
             verdict((f["post_inflight"]["p95"] or 1e9) <= TARGETS["post_p95_ms"])),
            ("POST /api/tasks burst of N", percentiles_text(f["post_burst"]), f"all accepted in {f['accept_all_s'] * 1000:.0f} ms", "", ""),
            ("GET /api/tasks/{id} in flight", percentiles_text(f["get_inflight"]), f"n={f['get_inflight']['n']}", "P95 <= 20 ms",
             verdict((f["get_inflight"]["p95"] or 1e9) <= TARGETS["get_p95_ms"])),
            ("GET /health in flight (outside lag)", percentiles_text(f["health_inflight"]),
             f"n={f['health_inflight']['n']}, idle P50 {fmt(result['idle']['health']['p50'])} ms", "", ""),
            ("loop lag inside server, in flight", percentiles_text(f["inside_lag_inflight"]), f"n={f['inside_lag_inflight']['n']}", "P99 <= 20 ms",
             verdict((f["inside_lag_inflight"]["p99"] or 1e9) <= TARGETS["lag_p99_ms"]) if f["inside_lag_inflight"]["n"] else "n/a"),
            ("loop lag inside server, whole load", percentiles_text(f["inside_lag_load"]), f"n={f['inside_lag_load']['n']}", "", ""),
            ("peak RSS (VmHWM)", f"{f['peak_rss_mb']:.0f} MB", "", "", ""),
            ("run_ms / queued_ms P50", f"{fmt(f['run_ms']['p50'], 0)} / {fmt(f['queued_ms']['p50'], 0)} ms",
             f"P95 {fmt(f['run_ms']['p95'], 0)} / {fmt(f['queued_ms']['p95'], 0)} ms", "", ""),
            ("server CPU per round, no probes", ", ".join(f"{c:.2f} s" for c in f["quiet_server_cpu_s"] if c is not None),
             f"in-process: {yard['cpu_s']:.2f} s" + api_share(f), "", ""),
            ("bench-process loop lag", percentiles_text(f["bench_lag"]), "fake Ollama + client side", "", ""),
        ]
        for label, value, note, target, ok in rows:
            lines.append(f"  {label:<36} {value:<38} {note:<34} {target:<13} {ok}")
        if any(f["not_completed"]) or any(f["quiet_not_completed"]):
            lines.append(f"  NOT COMPLETED: {f['not_completed']} / {f['quiet_not_completed']}")
        lines.append("")
    console = "\n".join(lines)
    md = render_markdown(args, inproc, backends, all_figures, started, elapsed)
    return console, md, all_figures
