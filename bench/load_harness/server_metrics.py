"""The server's Prometheus metrics: HTTP latency histograms and node durations, as deltas between scrapes."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import httpx

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
