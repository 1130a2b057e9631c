"""Every committed eval report is exactly what its results file says: recomputed from the JSONL
(and, where the report compares, from the baseline it names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.evaluation.report import load_records, render_chart, render_report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = sorted((ROOT / "evals" / "results").glob("*.jsonl"))
_BASELINE = re.compile(r"^## Against the baseline (\S+)$", re.MULTILINE)


def test_there_are_committed_results_to_check() -> None:
    assert len(RESULTS) >= 4


@pytest.mark.parametrize("jsonl", RESULTS, ids=lambda p: p.stem)
def test_the_committed_report_is_recomputed_exactly_from_its_results(jsonl: Path) -> None:
    committed = jsonl.with_suffix(".md").read_text(encoding="utf-8")
    records = load_records(jsonl)
    named = _BASELINE.search(committed)
    baseline = load_records(ROOT / named.group(1)) if named else None
    assert render_report(records, chart_name=jsonl.with_suffix(".svg").name, baseline=baseline,
                         baseline_name=named.group(1) if named else "") == committed


@pytest.mark.parametrize("jsonl", RESULTS, ids=lambda p: p.stem)
def test_the_committed_chart_is_drawn_from_its_results(jsonl: Path) -> None:
    assert render_chart(load_records(jsonl)) == jsonl.with_suffix(".svg").read_text(encoding="utf-8")
