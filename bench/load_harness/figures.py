"""The figures of a backend's rounds against the yardstick, and the targets they are held to."""

from __future__ import annotations

import statistics
from typing import Any

from bench.load_harness.measures import fmt, pct, summary_ms

TARGETS = {"makespan_ratio": 1.2, "post_p95_ms": 20.0, "get_p95_ms": 20.0, "lag_p99_ms": 20.0}


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


def api_share(figures: dict[str, Any]) -> str:
    """"; of which the HTTP process: ..." when it differs from the whole (a split server's
    workers have the rest); "" for older results without the figure."""
    api = [c for c in figures.get("quiet_api_cpu_s") or [] if c is not None]
    whole = [c for c in figures.get("quiet_server_cpu_s") or [] if c is not None]
    if not api or api == whole:
        return ""
    return "; of which the HTTP process: " + ", ".join(f"{c:.2f} s" for c in api)


def percentiles_text(s: dict[str, Any]) -> str:
    return f"P50 {fmt(s['p50'])} / P95 {fmt(s['p95'])} / P99 {fmt(s['p99'])} ms"
