"""What people read about a run: why it failed, and a line per node for progress displays."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import psycopg
from sqlalchemy.exc import SQLAlchemyError

from graph.builder import tries_before_failure
from tools.errors import summarise
from tools.llm.errors import ModelCallError, ModelProviderError

# A research summary names this many queries, each cut to this many characters.
SUMMARY_QUERIES = 7
SUMMARY_QUERY_CHARS = 60
MAX_ERROR_CHARS = 1000
# Failures the database itself reported: the run did reach it, and it refused what was sent.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, asyncpg.PostgresError, psycopg.Error,
                                                    sqlite3.Error)


def failure_message(exc: BaseException, node: str | None, secrets: Sequence[str] = ()) -> str:
    """The task's ``error``, written for whoever reads the task (any viewer may): the step that
    failed, the kind of failure and what to do about it. The exception's own text (SQL and its
    parameters, a driver's message, a server's address) goes to the log, never here. What is
    quoted is redacted of ``secrets`` before it is cut (tools.errors.summarise)."""
    where = f"{node} failed" if node else "the run failed"
    if isinstance(exc, ModelCallError):
        # The node's tries times the client's own (openai's LLM_MAX_RETRIES; 1 for Ollama).
        tries = tries_before_failure(node, exc) * exc.client_tries
        text = f"{where}: {exc.summary}{f' after {tries} tries' if tries > 1 else ''}; {exc.hint}"
    elif isinstance(exc, ModelProviderError):
        # Written for people already: what is wrong with the model set-up and the fix.
        text = f"{where}: {' '.join(str(exc).split())}"
    elif isinstance(exc, DATABASE_ERRORS):
        text = (f"{where}: the database refused to store its work ({type(exc).__name__}); "
                "the service log has the details")
    else:
        text = f"{where}: an unexpected error ({type(exc).__name__}); the service log has the details"
    return summarise(text, secrets, MAX_ERROR_CHARS)


def gave_up_message(resumes: int, max_resumes: int) -> str:
    """The error of a task whose runs kept stopping before they could end."""
    return (f"the run failed: it was interrupted {resumes} times before it could finish (its worker stopped, "
            f"or lost the database, each time) and was given up after {max_resumes} resumes (MAX_RESUMES); "
            "the service log says why the runs stopped")


def node_summary(node: str, update: Mapping[str, Any]) -> str:
    """A one-line account of what a node did, for progress displays."""
    if node == "route_intent":
        intent = update.get("intent") or {}
        request = update.get("request") or {}
        kind = " ".join(str(part) for part in (intent.get("kind"), intent.get("content_type")) if part)
        words = request.get("target_words")
        return f"{kind or 'unknown'} request" + (f", {words} words" if words else "")
    if node == "research":
        return research_summary(update.get("research") or {})
    if node == "draft":
        draft = update.get("draft") or {}
        return f"draft {draft.get('number')}: {draft.get('word_count')} words"
    if node == "critique":
        attempts = update.get("attempts") or []
        if attempts:
            last = attempts[-1]
            verdict = "passed" if last.get("passed") else "below threshold"
            return f"attempt {last.get('number')} scored {last.get('score')} ({verdict})"
        return "critique done"
    if node == "approval":
        decision = update.get("approval") or {}
        return "approved" if decision.get("approved") else "rejected: drafting again"
    if node == "finalize":
        result = update.get("result") or {}
        return f"{result.get('title', '')} — {result.get('word_count', 0)} words, score {result.get('score')}"
    return f"{node} done"


def research_summary(research: Mapping[str, Any]) -> str:
    """Sources, pages read and the searches of the research round that just ran, by query."""
    queries = [q for q in research.get("queries") or [] if isinstance(q, Mapping)]
    revision = max((int(q.get("revision") or 0) for q in queries), default=0)
    searches = [q for q in queries if int(q.get("revision") or 0) == revision and q.get("kind") != "images"]
    named = list(dict.fromkeys(str(q.get("query") or "") for q in searches))
    shown = ", ".join(f"'{_clip(q, SUMMARY_QUERY_CHARS)}'" for q in named[:SUMMARY_QUERIES])
    if len(named) > SUMMARY_QUERIES:
        shown += f" and {len(named) - SUMMARY_QUERIES} more"
    sources = research.get("sources") or []
    pages = sum(1 for s in sources if isinstance(s, Mapping) and s.get("evidence"))
    text = (f"{len(sources)} sources ({pages} pages read) from {len(searches)} searches"
            + (f": {shown}" if shown else ""))
    text += f"; {len(research.get('images') or [])} images, {len(research.get('warnings') or [])} warnings"
    return f"revision {revision} research: {text}" if revision else text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
