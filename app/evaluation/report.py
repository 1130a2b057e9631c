"""The eval report (markdown) and its chart, both drawn from the result records alone."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed: the chart is a file
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads

from app.evaluation.metrics import Record, compare, summarise  # noqa: E402

NOTE_SCALES = ("Internal scores are the critique's 0–100; external judge means are the rubric's 1–5 "
               "(graph/rubric.py). Rates are shares of the pieces that shipped.")


def load_records(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def header_of(records: list[Record]) -> Record:
    """The run's header line merged with its closing line (wall time, judge usage)."""
    header: Record = {}
    for record in records:
        if record.get("type") in ("run", "end"):
            header.update(record)
    return header


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def judge_line(header: Record) -> str:
    judge, writer = header.get("judge") or {}, header.get("writer") or {}
    name = f"{judge.get('provider')}/{judge.get('model')}"
    if header.get("judge_is_writer"):
        return (f"**The judge is the writer ({name}):** the external scores below are the writer grading "
                "itself, not an independent measure. Set EVAL_JUDGE_PROVIDER and EVAL_JUDGE_MODEL to a "
                "different (ideally stronger) model.")
    return f"Judge: {name}, a different model from the writer ({writer.get('provider')}/{writer.get('model')})."


def render_report(records: list[Record], *, chart_name: str | None = None,
                  baseline: list[Record] | None = None, baseline_name: str = "") -> str:
    header = header_of(records)
    summary = summarise(records)
    overall = summary["overall"]
    writer = header.get("writer") or {}
    lines = [judge_line(header), ""]
    if header.get("label"):
        lines += [f"> {header['label']}", ""]
    lines += [
        f"# Draftloop eval, {header.get('date', '')}: {writer.get('provider')}/{writer.get('model')}",
        "",
        f"{overall['requests']} requests from `{header.get('requests_file', '')}` "
        f"(sha256 {str(header.get('requests_sha256', ''))[:12]}), commit `{header.get('commit', '')}`, "
        f"quality threshold {header.get('quality_threshold')}, at most {header.get('max_revisions')} revisions"
        + (f", only {header['only']}" if header.get("only") else "")
        + (f", first {header['limit']}" if header.get("limit") else "") + ". "
        f"Wall time {_num(header.get('seconds'), 0)} s; machine load {header.get('load', '?')} at the start.",
        "",
        NOTE_SCALES,
        "",
        "## Overall",
        "",
        "| metric | value |",
        "|---|---|",
        f"| routing accuracy | {_pct(overall['routing_accuracy'])} |",
        f"| pieces shipped (of content requests) | {overall['content']} |",
        f"| internal pass rate | {_pct(overall['pass_rate'])} |",
        f"| attempts per piece | {_num(overall['attempts'], 2)} |",
        f"| internal score, first → shipped (lift) | {_num(overall['first_score'])} → "
        f"{_num(overall['shipped_score'])} ({_signed(overall['lift'])}) |",
        f"| external judge mean, first → shipped | {_num(overall['external_first'], 2)} → "
        f"{_num(overall['external_shipped'], 2)} ({overall['judged']} judged) |",
        f"| external win rate of shipped vs first | {_pct(overall['win_rate'])} ({overall['comparisons']} "
        "blind comparisons) |",
        f"| length within ±15 % of target | {_pct(overall['length_accuracy'])} |",
        f"| format compliance | {_pct(overall['format_compliance'])} |",
        f"| pieces with an invented URL | {_pct(overall['invented_url_rate'])} |",
        f"| citations per piece | {_num(overall['citations'])} |",
        f"| must-cite pieces that cite | {_pct(overall['must_cite_met'])} |",
        f"| claims supported by the sources | {_pct(overall['grounded_rate'])} (contradicted "
        f"{_pct(overall['contradicted_rate'])}, {overall['claims']} claims checked) |",
        f"| repetition / truncation / preamble / placeholders | {_pct(overall['repetition_rate'])} / "
        f"{_pct(overall['truncation_rate'])} / {_pct(overall['preamble_rate'])} / "
        f"{_pct(overall['placeholder_rate'])} |",
        f"| tokens in / out | {overall['input_tokens']} / {overall['output_tokens']} |",
        f"| writer cost | ${overall['cost_usd']:.4f} |",
        f"| errors | {overall['errors']} |",
        "",
        "## By content type",
        "",
        "| group | n | routing | pass | attempts | lift | ext. first → shipped | win | length | format "
        "| invented URL | cites | grounded | repetition | truncation | preamble |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, g in summary["groups"].items():
        lines.append(
            f"| {group} | {g['requests']} | {_pct(g['routing_accuracy'])} | {_pct(g['pass_rate'])} | "
            f"{_num(g['attempts'], 2)} | {_signed(g['lift'])} | {_num(g['external_first'], 2)} → "
            f"{_num(g['external_shipped'], 2)} | {_pct(g['win_rate'])} | {_pct(g['length_accuracy'])} | "
            f"{_pct(g['format_compliance'])} | {_pct(g['invented_url_rate'])} | {_num(g['citations'])} | "
            f"{_pct(g['grounded_rate'])} | {_pct(g['repetition_rate'])} | {_pct(g['truncation_rate'])} | "
            f"{_pct(g['preamble_rate'])} |")
    lines += ["", "## External judge per rubric dimension (shipped pieces, 1–5)", ""]
    for group, dims in summary["dimensions"].items():
        if not dims:
            continue
        lines.append(f"- **{group}**: " + ", ".join(f"{d} {_num(v, 2)}" for d, v in dims.items()))
    lines += ["", "## Routing", ""]
    if summary["misrouted"]:
        lines += ["| request | expected | got |", "|---|---|---|"]
        lines += [f"| {m['id']} | {m['expected']} | {m['got']} |" for m in summary["misrouted"]]
    else:
        lines.append("Every request was routed as expected.")
    lines += ["", "## Latency per node", "", "| node | runs | P50 ms | P95 ms |", "|---|---|---|---|"]
    for node, stats in summary["latency"].items():
        lines.append(f"| {node} | {stats['runs']} | {_num(stats['p50'], 0)} | {_num(stats['p95'], 0)} |")
    seconds = summary["request_seconds"]
    lines += ["", f"Per request, judging included: P50 {_num(seconds['p50'])} s, P95 {_num(seconds['p95'])} s."]
    if summary["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- {e['id']}: {e['error']}" for e in summary["errors"]]
    if baseline is not None:
        lines += ["", *render_comparison(compare(records, baseline), baseline_name)]
    if chart_name:
        lines += ["", f"![Scores by content type, first attempt and shipped]({chart_name})"]
    return "\n".join(lines) + "\n"


def render_comparison(rows: list[dict[str, Any]], baseline_name: str) -> list[str]:
    requests = rows[0]["requests"] if rows else 0
    lines = [f"## Against the baseline {baseline_name}".rstrip(), "",
             f"Over the {requests} requests both runs have. A change beyond the tolerance in the wrong "
             "direction is a regression.", "",
             "| metric | baseline | now | change | better | tolerance | regression |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['metric']} | {_num(row['baseline'], 3)} | {_num(row['current'], 3)} | "
                     f"{_signed(row['change'], 3)} | {row['better']} | {row['tolerance']:g} | "
                     f"{'**yes**' if row['regressed'] else 'no'} |")
    return lines


def render_chart(records: list[Record]) -> str:
    """SVG: per content type, the internal score (0–100) and the external judge mean (1–5) of the
    first attempt beside the shipped piece."""
    summary = summarise(records)
    groups = [g for g in summary["groups"] if summary["groups"][g]["content"]]
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "draftloop-eval"})
    figure, (internal, external) = plt.subplots(1, 2, figsize=(11, 4.2))
    positions = list(range(len(groups)))
    width = 0.38
    for axis, (first_key, shipped_key), label, top in (
        (internal, ("first_score", "shipped_score"), "internal critique score (0–100)", 100),
        (external, ("external_first", "external_shipped"), "external judge mean (1–5)", 5),
    ):
        first = [summary["groups"][g][first_key] or 0 for g in groups]
        shipped = [summary["groups"][g][shipped_key] or 0 for g in groups]
        axis.bar([p - width / 2 for p in positions], first, width, label="first attempt", color="#9aa5b1")
        axis.bar([p + width / 2 for p in positions], shipped, width, label="shipped", color="#2f6fab")
        axis.set_xticks(positions, [g.replace("_", " ") for g in groups], rotation=20, ha="right")
        axis.set_ylim(0, top)
        axis.set_title(label)
        axis.grid(axis="y", alpha=0.3)
    internal.legend(loc="lower left")
    header = header_of(records)
    writer = header.get("writer") or {}
    figure.suptitle(f"Draftloop eval {header.get('date', '')}: {writer.get('provider')}/{writer.get('model')}")
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()
