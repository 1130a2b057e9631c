"""app.engine.messages.failure_message: a failed task's error is for the people who read the task;
exception text (SQL, addresses, a driver's message) stays in the log."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from app.engine.messages import MAX_ERROR_CHARS, failure_message, gave_up_message
from tools.llm.errors import (
    ModelResponseError,
    ModelTimeoutError,
    ModelTransportError,
    OllamaModelNotFoundError,
)

OLLAMA_URL = "http://127.0.0.1:11434"


def test_a_model_timeout_names_the_node_the_limit_the_tries_and_what_to_do() -> None:
    exc = ModelTimeoutError(f"Ollama at {OLLAMA_URL} did not answer within the timeout (ReadTimeout)",
                            server="Ollama", timeout=120.0)

    assert failure_message(exc, "draft") == (
        "draft failed: the model did not answer within 120 s (LLM_TIMEOUT) after 3 tries; "
        "check that Ollama is running, or raise LLM_TIMEOUT if the model is just slow")


def test_an_openai_client_that_retried_by_itself_is_counted_once_not_times_the_node_policy() -> None:
    exc = ModelTimeoutError("the OpenAI-compatible server at http://h/v1 did not answer within the timeout",
                            server="the OpenAI-compatible server", timeout=30.0)
    exc.transient, exc.client_tries = False, 3

    assert failure_message(exc, "draft") == (
        "draft failed: the model did not answer within 30 s (LLM_TIMEOUT) after 3 tries; "
        "check that the OpenAI-compatible server is running, or raise LLM_TIMEOUT if the model is just slow")


def test_a_node_without_a_retry_policy_does_not_claim_retries() -> None:
    exc = ModelTransportError(f"Talking to Ollama at {OLLAMA_URL} failed: ReadError", server="Ollama")

    assert failure_message(exc, "research") == (
        "research failed: the connection to Ollama broke off mid-answer; check that Ollama is running and reachable")


def test_a_client_error_status_is_not_retried_and_points_at_the_settings() -> None:
    exc = ModelResponseError(f"Ollama at {OLLAMA_URL} answered HTTP 400: bad request", 400, server="Ollama")

    assert failure_message(exc, "critique") == (
        "critique failed: Ollama answered HTTP 400; check the model settings (provider, model name, key)")


def test_a_model_set_up_error_keeps_its_own_advice() -> None:
    exc = OllamaModelNotFoundError("Ollama at http://h:1 does not have the model 'x'. Pull it with `ollama pull x`.")

    assert failure_message(exc, "route_intent") == (
        "route_intent failed: Ollama at http://h:1 does not have the model 'x'. Pull it with `ollama pull x`.")


def test_a_refused_statement_keeps_its_sql_and_parameters_out_of_the_error() -> None:
    exc = DBAPIError("INSERT INTO attempts (markdown) VALUES ($1)", ("the draft text",),
                     ValueError('invalid byte sequence for encoding "UTF8": 0x00'))

    message = failure_message(exc, "finalize")

    assert message == ("finalize failed: the database refused to store its work (DBAPIError); "
                       "the service log has the details")


def test_an_unexpected_error_shows_its_type_and_never_its_text() -> None:
    message = failure_message(KeyError("sk-live-0123456789"), None)

    assert message == "the run failed: an unexpected error (KeyError); the service log has the details"


def test_giving_up_says_how_often_the_run_stopped_and_which_setting_bounds_it() -> None:
    message = gave_up_message(4, 3)

    assert "interrupted 4 times" in message and "after 3 resumes (MAX_RESUMES)" in message
    assert len(message) <= MAX_ERROR_CHARS
