"""Upstream text is redacted before it is cut: no API key reaches a warning or a task error,
whole or in part, wherever a cut falls."""

from __future__ import annotations

import pytest

from app.engine.messages import MAX_ERROR_CHARS, failure_message
from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.scripting import echo_headers, key_fragments
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes
from tests.unit.test_research import run
from tools.errors import REDACTED, redact, summarise
from tools.llm.errors import ProviderConfigError

KEY = "0f3a9c51d2e84b7fa6c0e91d3b5a7f28c4e6d1a9"  # the shape of a Serper key: 40 hex digits


@pytest.mark.parametrize("text, expected", [
    (f"key={KEY}.", f"key={REDACTED}."),
    (f"cut {KEY[:16]}", f"cut {REDACTED}"),  # the beginning of a key, where an upstream cut it
    (f"{KEY[-9:]} and more", f"{REDACTED} and more"),  # the end of one, at the start
    (f"masked {KEY[:8]}...{KEY[-8:]} here", f"masked {REDACTED}...{REDACTED} here"),
    (f"ends on {KEY[:3]}", f"ends on {REDACTED}"),
    ("an error that quotes no key at all", "an error that quotes no key at all"),
    (f"{KEY[:5]} in the middle is too short to tell from text", f"{KEY[:5]} in the middle is too short to tell from text"),
])
def test_redaction_removes_a_key_whole_or_in_part(text: str, expected: str) -> None:
    assert redact(text, [KEY, None, ""]) == expected


@pytest.mark.parametrize("start", range(180, 201))
def test_a_summary_cut_across_a_key_keeps_no_piece_of_it(start: int) -> None:
    text = "x" * start + KEY + " and the rest of the upstream's answer"

    summary = summarise(text, [KEY], 200)

    assert len(summary) <= 200 and key_fragments(summary, KEY, 4) == []


def test_a_summary_is_one_line_of_at_most_the_limit() -> None:
    assert summarise("  several\n  lines\tof text  ", [], 200) == "several lines of text"
    assert summarise("word " * 100, [], 20) == "word word word word…"


def test_a_task_error_quoting_a_key_past_its_cut_keeps_no_piece_of_it() -> None:
    # A provider error's text is the one a task's error quotes (the others stay in the log).
    exc = ProviderConfigError("x" * (MAX_ERROR_CHARS - 30) + f" the server refused Bearer {KEY} here")

    message = failure_message(exc, "draft", [KEY])

    assert message.startswith("draft failed: xxx") and len(message) <= MAX_ERROR_CHARS
    assert key_fragments(message, KEY, 4) == []


async def test_keys_echoed_by_serper_and_pexels_never_reach_the_warnings(graph_fakes: GraphFakes) -> None:
    # Every search answers with its headers quoted, the key cut 16 characters in.
    graph_fakes.serper.faults.push(*[echo_headers(400, "X-API-KEY", 184) for _ in range(20)])
    graph_fakes.pexels.faults.push(*[echo_headers(400, "Authorization", 184) for _ in range(5)])

    state, events = await run(graph_fakes)

    shown = " ".join([*state["warnings"], *(str(query.get("error")) for query in state["research"]["queries"]),
                      *(str(event) for event in events)])
    assert "request rejected" in shown  # the failures are reported, with the upstream's words
    assert key_fragments(shown, FAKE_SERPER_KEY) == [] and key_fragments(shown, FAKE_PEXELS_KEY) == []
