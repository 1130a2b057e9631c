"""A `draftloop serve` process on SQLite and on Postgres whose model, Serper and Pexels
misbehave: they hang, reset the connection, answer 500, or answer junk (the model's junk
carrying NUL characters).

Whatever an outbound service does, the task ends: completed (a research provider's failure is
a warning) or failed with an error that says which step failed, why and what to do. It ends
within a bound that follows from the timeouts (LLM_TIMEOUT=1, RESEARCH_TIMEOUT=2, see
conftest.FAULT_ENV) plus generous slack: a liveness check, not a timing benchmark. The bench
checks the rest for every test: no 5xx from the API, one run per task (no resume, no second
end), nothing lost, no secret in what the task shows.
"""

from __future__ import annotations

from typing import Literal

import pytest

from devtools.fakes.scripting import Scripted, hang, junk, status
from devtools.fakes.writer import FailingCalls
from tests.faults.conftest import FaultBench

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="module")]

REQUEST = "Write a 300-word blog post about async Python for backend developers, with a cover photo"
# The draft node's retry policy makes 3 calls, each allowed LLM_TIMEOUT (1 s), with up to
# 0.5 + 1 s of backoff and a second of jitter between them; the steps before it take well
# under a second against the fakes. Ten seconds on top for a busy machine.
MODEL_FAULT_BOUND = 20.0
# Every search of a round runs at once within RESEARCH_TIMEOUT (2 s); a run has one round
# when the model names no gaps. Ten seconds on top for a busy machine.
RESEARCH_FAULT_BOUND = 15.0

MODEL_ERRORS = {
    "hang": "draft failed: the model did not answer within 1 s (LLM_TIMEOUT) after 3 tries; "
            "check that Ollama is running, or raise LLM_TIMEOUT if the model is just slow",
    "reset": "draft failed: the connection to Ollama broke off mid-answer after 3 tries; "
             "check that Ollama is running and reachable",
    "http_500": "draft failed: Ollama answered HTTP 500 after 3 tries; check Ollama's log for why it failed",
}


def scripted(fault: str) -> Scripted:
    return {"hang": hang(), "http_500": status(500), "junk": junk()}[fault]


@pytest.mark.parametrize("fault", ["hang", "reset", "http_500"])
async def test_a_model_failing_every_draft_call_fails_the_task_with_an_error_saying_what_to_do(
    fault_bench: FaultBench, fault: Literal["hang", "reset", "http_500"]
) -> None:
    writer = fault_bench.writer
    fault_bench.fakes.ollama.responder = FailingCalls(writer, fault, frozenset({"draft"}))

    run = await fault_bench.run(REQUEST, bound=MODEL_FAULT_BOUND)

    assert run.task["status"] == "failed"
    assert run.task["error"] == MODEL_ERRORS[fault]
    # The node's retry policy, once; the steps before it are not repeated.
    assert writer.calls.count("draft") == 3 and writer.calls.count("intent") == 1
    assert run.attempts == []


async def test_model_junk_with_nul_characters_completes_with_clean_text_and_no_pass(fault_bench: FaultBench) -> None:
    # Every call: structured calls get unparseable JSON, prose calls "\x00{junk".
    fault_bench.fakes.ollama.responder = FailingCalls(fault_bench.writer, "junk")

    run = await fault_bench.run(REQUEST, bound=MODEL_FAULT_BOUND)

    assert run.task["status"] == "completed", run.task["error"]
    result = run.task["result"]
    # Routed and researched by the fallbacks; every draft unjudged, so none passes.
    assert result["passed"] is False and result["markdown"] == "{junk"
    assert [a["markdown"] for a in run.attempts] == ["{junk"] * 3
    assert all(not a["passed"] for a in run.attempts)


@pytest.mark.parametrize("provider", ["serper", "pexels"])
@pytest.mark.parametrize("fault", ["hang", "http_500", "junk"])
async def test_a_research_provider_that_hangs_fails_or_answers_junk_leaves_a_warning_and_the_task_completes(
    fault_bench: FaultBench, provider: Literal["serper", "pexels"], fault: Literal["hang", "http_500", "junk"]
) -> None:
    fakes = fault_bench.fakes
    (fakes.serper if provider == "serper" else fakes.pexels).faults.always = scripted(fault)

    run = await fault_bench.run(REQUEST, bound=RESEARCH_FAULT_BOUND)

    assert run.task["status"] == "completed", run.task["error"]
    result = run.task["result"]
    searched = "image search" if provider == "pexels" else "web search"
    assert any(w.startswith("research: ") and searched in w for w in run.task["warnings"]), run.task["warnings"]
    if provider == "serper":
        assert result["sources"] == [] and result["images"]
    else:
        assert result["images"] == [] and result["sources"]
    assert result["markdown"] and run.attempts
