"""The report's numbers, computed from the result records alone.

Everything here is a pure function of the JSONL an eval writes, so a report can be recomputed
(and checked) from the committed results at any time. Means skip records that have no value
for a metric (an answer has no word count); a metric with no values at all is None.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from graph.rubric import dimensions_for

Record = dict[str, Any]
GROUP_ORDER = ("blog_post", "social_post", "email", "newsletter", "research_brief", "answer", "unsupported")


def mean(values: Iterable[float | int | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Iterable[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def routed_ok(record: Record) -> bool:
    """Kind, content type, platform and the shopping decision as the request set expects."""
    expect, routed = record.get("expect") or {}, record.get("routed") or {}
    if routed.get("kind") != expect.get("kind"):
        return False
    if expect.get("kind") not in ("content", "revise"):
        return True
    if expect.get("content_type") and routed.get("content_type") != expect.get("content_type"):
        return False
    if expect.get("platform") and routed.get("platform") != expect.get("platform"):
        return False
    return "shopping" not in expect or bool(routed.get("shopping")) == bool(expect.get("shopping"))


def is_content(record: Record) -> bool:
    return not record.get("error") and bool(record.get("shipped"))


def _external(record: Record, which: str) -> dict[str, Any] | None:
    return ((record.get("external") or {}).get(which)) or None


def win_rate(records: list[Record]) -> tuple[float | None, int]:
    """Shipped vs first attempt, blind and in both orders: a win counts 1, a tie 1/2."""
    verdicts = [p["winner"] for r in records for p in (r.get("external") or {}).get("pairwise") or []]
    if not verdicts:
        return None, 0
    points = sum(1.0 if v == "shipped" else 0.5 if v == "tie" else 0.0 for v in verdicts)
    return points / len(verdicts), len(verdicts)


def claim_rates(records: list[Record]) -> tuple[float | None, float | None, int]:
    """(supported share, contradicted share, claims checked) over the judge's claim checks."""
    claims = [c for r in records for c in (r.get("external") or {}).get("claims") or []]
    if not claims:
        return None, None, 0
    supported = sum(1 for c in claims if c.get("verdict") == "supported")
    contradicted = sum(1 for c in claims if c.get("verdict") == "contradicted")
    return supported / len(claims), contradicted / len(claims), len(claims)


def group_summary(records: list[Record]) -> dict[str, Any]:
    content = [r for r in records if is_content(r)]
    checks = [r.get("checks") or {} for r in content]

    def check_rate(test: Callable[[dict[str, Any]], bool | None]) -> float | None:
        return mean(test(c) for c in checks)

    wins, comparisons = win_rate(content)
    grounded, contradicted, claims = claim_rates(content)
    shipped_ext = [_external(r, "shipped") for r in content]
    first_ext = [_external(r, "first") for r in content]
    usage = [u for r in records for u in r.get("usage") or []]
    must_cite = [r for r in content if (r.get("expect") or {}).get("must_cite")]
    return {
        "requests": len(records),
        "errors": sum(1 for r in records if r.get("error")),
        "routing_accuracy": mean(routed_ok(r) for r in records if not r.get("error")),
        "content": len(content),
        "pass_rate": mean((r.get("shipped") or {}).get("passed") for r in content),
        "attempts": mean(len(r.get("attempts") or []) for r in content),
        "first_score": mean((r.get("first") or {}).get("score") for r in content),
        "shipped_score": mean((r.get("shipped") or {}).get("score") for r in content),
        "lift": mean(_lift(r) for r in content),
        "external_shipped": mean(e["mean"] for e in shipped_ext if e),
        "external_first": mean(e["mean"] for e in first_ext if e),
        "judged": sum(1 for e in shipped_ext if e),
        "win_rate": wins,
        "comparisons": comparisons,
        "length_accuracy": check_rate(lambda c: c.get("length_ok")),
        "format_compliance": check_rate(lambda c: not c.get("format_problems")),
        "invented_url_rate": check_rate(lambda c: bool(c.get("invented_urls"))),
        "citations": check_rate(lambda c: c.get("citations")),
        "must_cite_met": mean((r.get("checks") or {}).get("citations", 0) > 0 for r in must_cite),
        "grounded_rate": grounded,
        "contradicted_rate": contradicted,
        "claims": claims,
        "repetition_rate": check_rate(lambda c: c.get("repetition")),
        "truncation_rate": check_rate(lambda c: c.get("truncation")),
        "preamble_rate": check_rate(lambda c: c.get("preamble")),
        "placeholder_rate": check_rate(lambda c: c.get("placeholders")),
        "input_tokens": sum(int(u.get("input_tokens") or 0) for u in usage),
        "output_tokens": sum(int(u.get("output_tokens") or 0) for u in usage),
        "cost_usd": round(sum(float(u.get("cost_usd") or 0) for u in usage), 8),
    }


def _lift(record: Record) -> float | None:
    first, shipped = (record.get("first") or {}).get("score"), (record.get("shipped") or {}).get("score")
    if first is None or shipped is None:
        return None
    return float(shipped) - float(first)


def dimension_means(records: list[Record], content_type: str) -> dict[str, float | None]:
    judged = [e for e in (_external(r, "shipped") for r in records if is_content(r)) if e]
    return {d: mean(e["scores"].get(d) for e in judged) for d in dimensions_for(content_type)}


def node_latency(records: list[Record]) -> dict[str, dict[str, float | None]]:
    """P50/P95 wall time per graph node (ms), over every run of that node."""
    by_node: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for timing in record.get("nodes") or []:
            by_node[timing["node"]].append(float(timing["ms"]))
    return {node: {"runs": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}
            for node, values in sorted(by_node.items())}


def summarise(records: list[Record]) -> dict[str, Any]:
    """The whole report's numbers: overall, per group, per rubric dimension, per node."""
    requests = [r for r in records if r.get("type") == "request"]
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in requests:
        groups[str(record.get("group"))].append(record)
    ordered = [g for g in GROUP_ORDER if g in groups] + sorted(g for g in groups if g not in GROUP_ORDER)
    return {
        "overall": group_summary(requests),
        "groups": {g: group_summary(groups[g]) for g in ordered},
        "dimensions": {g: dimension_means(groups[g], g) for g in ordered if g not in ("answer", "unsupported")},
        "latency": node_latency(requests),
        "request_seconds": {"p50": percentile([r["seconds"] for r in requests if "seconds" in r], 0.5),
                            "p95": percentile([r["seconds"] for r in requests if "seconds" in r], 0.95)},
        "misrouted": [{"id": r["id"], "expected": _routing_view(r.get("expect") or {}),
                       "got": _routing_view(r.get("routed") or {})}
                      for r in requests if not r.get("error") and not routed_ok(r)],
        "errors": [{"id": r["id"], "error": r["error"]} for r in requests if r.get("error")],
    }


def _routing_view(values: dict[str, Any]) -> str:
    parts = [str(values.get("kind"))]
    if values.get("content_type"):
        parts.append(str(values["content_type"]))
    if values.get("platform"):
        parts.append(str(values["platform"]))
    if "shopping" in values:
        parts.append("shopping" if values.get("shopping") else "no shopping")
    return " / ".join(parts)


# Regressions: (metric, direction, tolerance). A change beyond the tolerance in the bad
# direction fails `--baseline`. Rates are shares (0.05 = 5 points), scores their own scale.
TOLERANCES: tuple[tuple[str, int, float], ...] = (
    ("routing_accuracy", +1, 0.05),
    ("pass_rate", +1, 0.10),
    ("external_shipped", +1, 0.25),
    ("win_rate", +1, 0.10),
    ("length_accuracy", +1, 0.10),
    ("format_compliance", +1, 0.05),
    ("grounded_rate", +1, 0.10),
    ("invented_url_rate", -1, 0.05),
    ("repetition_rate", -1, 0.05),
    ("truncation_rate", -1, 0.05),
    ("preamble_rate", -1, 0.05),
    ("placeholder_rate", -1, 0.05),
)


def compare(current: list[Record], baseline: list[Record]) -> list[dict[str, Any]]:
    """Each tracked metric now and in the baseline, over the requests both ran."""
    common = {r["id"] for r in current if r.get("type") == "request"} & {
        r["id"] for r in baseline if r.get("type") == "request"}
    now = group_summary([r for r in current if r.get("type") == "request" and r["id"] in common])
    before = group_summary([r for r in baseline if r.get("type") == "request" and r["id"] in common])
    rows = []
    for metric, direction, tolerance in TOLERANCES:
        a, b = before.get(metric), now.get(metric)
        change = None if a is None or b is None else b - a
        regressed = change is not None and direction * change < -tolerance
        rows.append({"metric": metric, "baseline": a, "current": b, "change": change, "tolerance": tolerance,
                     "better": "higher" if direction > 0 else "lower", "regressed": regressed,
                     "requests": len(common)})
    return rows
