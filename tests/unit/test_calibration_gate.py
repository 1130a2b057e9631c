"""The calibration gate: the critique must classify every labelled draft in evals/calibration.

- Hard gates alone: every `bad` draft whose defect a script can see fails a gate; no `good` or
  `weak` draft fails one (a gate that fires on good writing would block publishing).
- The whole critique node, with the judge scripted: `bad` drafts never pass, even when the judge
  is fooled into top marks (gate-caught defects) or judges as a careful editor would
  (judge-caught defects); `good` drafts pass with an editor's scores; `weak` ones do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from app.evaluation.dataset import CalibrationCase, load_calibration
from devtools.fakes.ollama import OllamaReply
from devtools.fakes.writer import GraphFakes
from graph import draft_text, gates, rubric
from graph.context import DraftloopContext
from graph.nodes.critique import critique

CALIBRATION = Path(__file__).resolve().parents[2] / "evals" / "calibration"
CASES = load_calibration(CALIBRATION)

# Bad drafts today's critique lets through. The writing issue's critique must fail each of them;
# then this table empties and strict xfails turn into passes.
PASSES_TODAY: dict[str, str] = {}


def _id(case: CalibrationCase) -> str:
    return case.id


def test_calibration_set_has_the_promised_coverage() -> None:
    labels = [c.label for c in CASES]
    assert len(CASES) >= 30 and labels.count("bad") >= 12
    types = {(c.request.get("content_type"), c.request.get("platform")) for c in CASES}
    assert {("blog_post", None), ("social_post", "x"), ("social_post", "linkedin"), ("email", None),
            ("newsletter", None), ("research_brief", None)} <= types
    defects = {c.defect for c in CASES if c.label == "bad"}
    assert defects >= {"structured_nonsense", "repetition_loop", "truncated", "preamble", "placeholder",
                       "invented_url", "contradicts_sources", "wrong_format", "off_length", "off_topic"}


@pytest.mark.parametrize("case", [c for c in CASES if c.label != "bad" or c.catch == "gate"], ids=_id)
def test_hard_gates_fail_gate_defects_and_spare_good_writing(case: CalibrationCase) -> None:
    failed = [g for g in gates.run_gates(case.markdown, case.request, case.sources) if not g.ok]
    if case.label == "bad":
        assert failed, f"{case.id}: no gate sees the planted {case.defect}"
    else:
        assert not failed, f"{case.id} ({case.label}) fails gates: {[g.detail for g in failed]}"


def scripted_judge(case: CalibrationCase) -> Any:
    """Answers the critique's judge call: top marks for gate-caught defects (a fooled judge),
    the case's own editor scores otherwise."""
    fooled = case.label == "bad" and case.catch == "gate"
    editor = case.judge or {d: 3 for d in rubric.dimensions_for(str(case.request.get("content_type")))}

    def score_for(name: str) -> int:
        return 5 if fooled else int(editor.get(name, round(sum(editor.values()) / len(editor))))

    def respond(body: dict[str, Any]) -> OllamaReply:
        schema = body.get("format") or {}
        properties: dict[str, Any] = schema.get("properties", {}) if isinstance(schema, dict) else {}
        reply: dict[str, Any] = {}
        for name, spec in properties.items():
            if name in ("issues", "suggestions"):
                reply[name] = []
            elif spec.get("type") == "string":
                reply[name] = "scripted judge"
            elif spec.get("maximum") == 100:
                # The 0–100 scale of the old Score schema: the 1–5 score mapped onto it.
                reply[name] = round(rubric.to_percent(score_for(name)))
            else:
                reply[name] = score_for(name)
        return OllamaReply(content=reply)

    return respond


async def critique_verdict(case: CalibrationCase, fakes: GraphFakes) -> dict[str, Any]:
    fakes.ollama.responder = scripted_judge(case)
    deps = fakes.dependencies()
    draft = {"markdown": case.markdown, "title": "", "word_count": draft_text.count_words(
        case.markdown, str(case.request.get("content_type"))), "number": 1}
    state: dict[str, Any] = {"request": case.request, "draft": draft, "research": {"sources": case.sources},
                             "attempts": [], "revision": 0, "turn": 1, "messages": []}
    try:
        update = await critique(state, Runtime(context=DraftloopContext(deps=deps)))  # type: ignore[arg-type]
    finally:
        await deps.models.aclose()
    return update["attempts"][0]


def _critique_param(case: CalibrationCase) -> Any:
    if case.id in PASSES_TODAY:
        return pytest.param(case, id=case.id, marks=pytest.mark.xfail(
            strict=True, reason=f"today's critique passes this {PASSES_TODAY[case.id]}"))
    return pytest.param(case, id=case.id)


@pytest.mark.parametrize("case", [_critique_param(c) for c in CASES])
async def test_critique_classifies_the_calibration_draft(case: CalibrationCase, graph_fakes: GraphFakes) -> None:
    attempt = await critique_verdict(case, graph_fakes)
    if case.label == "good":
        assert attempt["passed"], f"{case.id}: a good draft did not pass: {attempt['issues']}"
    else:
        assert not attempt["passed"], f"{case.id}: a {case.label} draft ({case.defect}) passed with {attempt['score']}"
