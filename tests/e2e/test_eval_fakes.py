"""`make eval-fakes`: the eval command end to end as a user runs it, on the scripted models."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.no_blockbuster
def test_make_eval_fakes_prints_the_report_and_writes_results_and_chart(tmp_path: Path, free_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OLLAMA_", "EVAL_JUDGE_"))}
    done = subprocess.run(
        ["make", "-s", "eval-fakes", f"EVAL_FAKE_PORT={free_port}", f"EVAL_FAKE_OUT={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "scripted.md").read_text()
    assert report.startswith("Judge: ollama/judge-model, a different model")
    assert "> Scripted fakes: checks the instrument's plumbing and arithmetic, not quality." in report
    assert "## By content type" in report and report in done.stdout
    assert "[3/3]" in done.stderr  # progress, one line per request when not on a terminal
    assert (tmp_path / "scripted.jsonl").read_text().count('"type": "request"') == 3
    assert (tmp_path / "scripted.svg").read_text().startswith("<?xml")
