"""`draftloop eval` on a scripted writer and judge: every figure of the report checked by hand."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.cli import parse_args
from app.cli.eval import EXIT_OK, EXIT_REGRESSION, EvalSettings, judge_settings, load_inputs, run_eval, write_report
from app.evaluation.metrics import compare, percentile, summarise
from app.evaluation.report import judge_line, load_records, render_report
from devtools.fakes.eval_models import JUDGE_MODEL, ScriptedEvalModels
from devtools.fakes.ollama import FakeOllama
from tools.llm.errors import ModelProviderError
from tools.llm.settings import LLMSettings

REQUESTS = [
    {"id": "a-blog", "turns": ["Write a 300-word blog post about tea ceremonies"], "fixture": "tea",
     "expect": {"kind": "content", "content_type": "blog_post", "platform": None, "target_words": 300,
                "keywords": [], "must_cite": True, "shopping": False}},
    {"id": "b-social", "turns": ["Write a 120-word LinkedIn post about green tea at the office"], "fixture": "tea",
     "expect": {"kind": "content", "content_type": "social_post", "platform": None, "target_words": 120,
                "keywords": [], "must_cite": False, "shopping": False}},
    {"id": "c-question", "turns": ["What is the GIL in Python?"], "fixture": "",
     "expect": {"kind": "answer"}},
]
FIXTURE = {
    "web": [{"title": "The Japanese tea ceremony", "link": "https://tea.example.org/ceremony",
             "snippet": "Chanoyu, the Japanese tea ceremony, centres on matcha."},
            {"title": "Green tea and focus", "link": "https://health.example.com/green-tea",
             "snippet": "L-theanine in green tea is linked to calm focus."}],
    "news": [{"title": "Tea prices rise", "link": "https://news.example.com/tea", "snippet": "Up 8% in 2026.",
              "date": "2 days ago", "source": "Example News"}],
    "pages": {"https://tea.example.org/ceremony": "The site's opening words about nothing in particular.\n\n"
                                                  "In a tea ceremony the host whisks matcha for each guest."},
}


def write_evals(root: Path) -> Path:
    (root / "fixtures" / "search").mkdir(parents=True)
    (root / "requests.jsonl").write_text("\n".join(json.dumps(r) for r in REQUESTS) + "\n")
    (root / "fixtures" / "search" / "tea.json").write_text(json.dumps(FIXTURE))
    return root


@pytest.fixture
async def scripted(fake_ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> ScriptedEvalModels:
    fake_ollama.models = ["llama3.2:latest", f"{JUDGE_MODEL}:latest"]
    models = ScriptedEvalModels(intents={
        "blog post about tea": {"kind": "content", "content_type": "blog_post"},
        "LinkedIn post": {"kind": "content", "content_type": "social_post"},
        "GIL": {"kind": "answer"},
    })
    # a-blog fails its first critique and passes its second; b-social passes at once.
    models.writer.scores = [40, 85, 90]
    fake_ollama.responder = models
    for name, value in {"LLM_PROVIDER": "ollama", "OLLAMA_BASE_URL": fake_ollama.base_url, "OLLAMA_MODEL": "llama3.2",
                        "EVAL_JUDGE_PROVIDER": "ollama", "EVAL_JUDGE_BASE_URL": fake_ollama.base_url,
                        "EVAL_JUDGE_MODEL": JUDGE_MODEL, "LLM_TIMEOUT": "10"}.items():
        monkeypatch.setenv(name, value)
    return models


async def run_scripted_eval(tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    evals = await asyncio.to_thread(write_evals, tmp_path / "evals")
    args = await asyncio.to_thread(parse_args, ["eval", "--evals-dir", str(evals), "--name", "scripted", *extra])
    inputs = await asyncio.to_thread(load_inputs, args)
    out, err = io.StringIO(), io.StringIO()
    code = await run_eval(args, inputs, out, err, EvalSettings.from_env(os.environ))
    return code, out.getvalue(), evals / "results" / "scripted.jsonl"


async def test_scripted_eval_report_figures_match_the_script(tmp_path: Path, scripted: ScriptedEvalModels) -> None:
    code, printed, jsonl = await run_scripted_eval(tmp_path)
    assert code == EXIT_OK
    records = await asyncio.to_thread(load_records, jsonl)
    by_id = {r["id"]: r for r in records if r["type"] == "request"}
    assert [r["type"] for r in records] == ["run", "request", "request", "request", "end"]
    assert all(r["error"] is None for r in by_id.values())

    overall = summarise(records)["overall"]
    assert overall["requests"] == 3 and overall["content"] == 2
    assert overall["routing_accuracy"] == 1.0
    assert overall["pass_rate"] == 1.0
    assert overall["attempts"] == 1.5  # a-blog took 2, b-social 1
    # The judge gives take 1 all 3s and take 2 all 4s: a-blog shipped take 2, b-social its only take.
    assert overall["external_shipped"] == 3.5
    assert overall["external_first"] == 3.0
    # Two blind comparisons (both orders) for a-blog, both won by the shipped take.
    assert (overall["win_rate"], overall["comparisons"]) == (1.0, 2)
    # Four claims per shipped piece, three supported.
    assert (overall["grounded_rate"], overall["claims"]) == (0.75, 8)
    # The scripted writer drafts each type in its format and cites the numbered sources.
    assert overall["format_compliance"] == 1.0
    assert by_id["b-social"]["checks"]["format_problems"] == []
    assert overall["must_cite_met"] == 1.0
    assert by_id["a-blog"]["checks"]["citations"] >= 1 and by_id["a-blog"]["checks"]["invented_urls"] == []
    blog = by_id["a-blog"]
    assert [a["score"] for a in blog["attempts"]] == [blog["first"]["score"], blog["shipped"]["score"]]
    assert overall["lift"] == pytest.approx((blog["shipped"]["score"] - blog["first"]["score"]) / 2)
    assert {s["endpoint"] for s in blog["searches"]} == {"search", "news"}
    # Research read the top sources' pages through the replay: the frozen one became evidence.
    assert set(blog["pages"]) == {s["url"] for s in blog["sources"]}
    assert {s["url"]: s["evidence"] for s in blog["sources"]} == {
        "https://tea.example.org/ceremony": True, "https://health.example.com/green-tea": False,
        "https://news.example.com/tea": False}
    assert any("green-tea was not read" in w and "404" in w for w in blog["warnings"])
    assert by_id["c-question"]["routed"]["kind"] == "answer" and "shipped" not in by_id["c-question"]
    usage = [u for r in by_id.values() for u in r["usage"]]
    assert overall["input_tokens"] == sum(u["input_tokens"] for u in usage) > 0

    report = (await asyncio.to_thread(jsonl.with_suffix(".md").read_text))
    assert report == render_report(records, chart_name="scripted.svg")
    assert report.splitlines()[0].startswith(f"Judge: ollama/{JUDGE_MODEL}, a different model")
    assert "| external win rate of shipped vs first | 100% (2 blind comparisons) |" in report
    assert report in printed
    chart = await asyncio.to_thread(jsonl.with_suffix(".svg").read_text)
    assert chart.startswith("<?xml") and "blog post" in chart and "social post" in chart


async def test_baseline_with_better_scores_makes_the_run_a_regression(tmp_path: Path,
                                                                        scripted: ScriptedEvalModels) -> None:
    code, _, jsonl = await run_scripted_eval(tmp_path)
    records = await asyncio.to_thread(load_records, jsonl)
    better = json.loads(json.dumps(records))
    for record in better:
        if record.get("external", {}).get("shipped"):
            record["external"]["shipped"]["mean"] = 4.9
    baseline = tmp_path / "baseline.jsonl"
    await asyncio.to_thread(baseline.write_text, "\n".join(json.dumps(r) for r in better) + "\n")
    rows = {row["metric"]: row for row in compare(records, better)}
    assert rows["external_shipped"]["regressed"] and not rows["routing_accuracy"]["regressed"]
    out = io.StringIO()
    assert await write_report(jsonl, better, str(baseline), out) == EXIT_REGRESSION
    assert "regression against" in out.getvalue() and "external_shipped" in out.getvalue()
    assert await write_report(jsonl, records, "itself", io.StringIO()) == EXIT_OK


def test_report_says_first_when_the_judge_is_the_writer() -> None:
    header: dict[str, Any] = {"judge": {"provider": "embedded", "model": "smollm2"},
                              "writer": {"provider": "embedded", "model": "smollm2"}, "judge_is_writer": True}
    assert judge_line(header).startswith("**The judge is the writer (embedded/smollm2)")
    assert render_report([{"type": "run", **header}]).startswith("**The judge is the writer")


def test_judge_settings_default_to_the_writer_at_temperature_zero() -> None:
    writer = LLMSettings(provider="ollama", ollama_model="llama3.2", temperature=0.7)
    same = judge_settings({}, writer)
    assert (same.provider, same.ollama_model, same.temperature) == ("ollama", "llama3.2", 0.0)
    other = judge_settings({"EVAL_JUDGE_PROVIDER": "openai", "EVAL_JUDGE_BASE_URL": "http://127.0.0.1:9/v1",
                            "EVAL_JUDGE_MODEL": "qwen2.5-7b"}, writer)
    assert (other.provider, other.openai_base_url, other.openai_model) == ("openai", "http://127.0.0.1:9/v1",
                                                                           "qwen2.5-7b")
    with pytest.raises(ModelProviderError, match="EVAL_JUDGE_PROVIDER"):
        judge_settings({"EVAL_JUDGE_MODEL": "x"}, writer)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile([10, 20, 30, 40], 0.95) == 40
    assert percentile([], 0.5) is None
