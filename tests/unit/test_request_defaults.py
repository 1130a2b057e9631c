"""A run's (or its assistant's) request defaults reach a new turn's input.request, under what
the input itself asks, and nothing else."""

from __future__ import annotations

from app.engine.api_runs import with_request_defaults
from app.engine.driver import request_input

CONTEXT = {"content_type": "newsletter", "tone": "casual", "max_revisions": 0, "model": "m"}


def test_a_new_turn_gets_the_request_defaults_under_its_own_request() -> None:
    given = {"messages": [{"role": "user", "content": "hi"}], "request": {"tone": "academic"}}
    assert with_request_defaults(given, CONTEXT)["request"] == {"content_type": "newsletter", "tone": "academic"}


def test_inputs_that_are_no_new_turn_or_a_request_the_graph_refuses_are_left_alone() -> None:
    assert with_request_defaults(None, CONTEXT) is None
    assert with_request_defaults({"feedback": "x"}, CONTEXT) == {"feedback": "x"}
    odd = {"messages": [], "request": "not an object"}
    assert with_request_defaults(odd, CONTEXT) is odd


def test_a_tasks_graph_context_params_stay_out_of_its_request() -> None:
    params = {"tone": "casual", "assistant_id": "a", "quality_threshold": 50, "max_revisions": 0, "model": "m"}
    assert request_input("Write a post", params)["request"] == {"tone": "casual"}
