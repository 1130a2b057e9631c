"""A run's outcome: the task's final row, its attempts and usage, and its draft post.

``save_outcome`` is the one entry point (the finalize node's write, through
app/graph_runtime.py's outcome saver) and picks its own path (storage/write_paths.py).

Through a session the outcome took about a dozen round trips, each through the ORM: BEGIN, the
task's row lock, the attempts and the usage (a delete and an insert each), the look for the
thread's post, the slug's owner, the flush of the task and the post, COMMIT. Under load that was
the largest storage cost left in the workers (bench/ANALYSIS.md). Most outcomes are a run's
first: its task row is queued or running, it has no attempts or usage yet, and its thread has no
post. On Postgres that case is two statements on a connection in autocommit mode: the slug's
number (drawn unsynced, as storage/slugs.py explains), then everything else, atomic on its own.
Every other case (a re-run of finalize after a crash, a revision of a thread's post, a task that
ended meanwhile, a missing task row, a slug someone took by hand) writes nothing there, and the
session path, which has the rules for them, stores it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.attempts import AttemptRepository, UsageRepository
from storage.models import PostStatus, Task, TaskStatus, new_id, utcnow
from storage.posts import DraftPost, PostRepository, RenderedBody, rendered_columns, slug_base
from storage.records import ATTEMPT_FIELDS, USAGE_FIELDS, AttemptRecord, UsageRecord, pick
from storage.slugs import numbered
from storage.status import REFUSES_OUTCOME_VALUES, check_outcome
from storage.storable import storable
from storage.tasks import TaskRepository
from storage.write_paths import WritePaths


def _usage_totals(usage: Sequence[UsageRecord]) -> dict[str, Any]:
    """The task's token and cost totals, summed from its usage records."""
    return {
        "input_tokens": sum(record.get("input_tokens") or 0 for record in usage),
        "output_tokens": sum(record.get("output_tokens") or 0 for record in usage),
        "cost_usd": round(sum(record.get("cost_usd") or 0.0 for record in usage), 8),
    }


@dataclass(frozen=True)
class _Outcome:
    """What save_outcome stores, already made storable; both write paths take it whole."""

    thread_id: str
    request: str
    params: dict[str, Any]
    intent: dict[str, Any] | None
    result: dict[str, Any] | None
    attempts: Sequence[AttemptRecord]
    usage: Sequence[UsageRecord]
    warnings: Sequence[Any]
    model: str | None
    provider: str | None
    draft: DraftPost | None
    error: str | None
    rendered: RenderedBody | None


async def save_outcome(
    paths: WritePaths,
    *,
    thread_id: str,
    request: str,
    params: dict[str, Any],
    intent: dict[str, Any] | None,
    result: dict[str, Any] | None,
    attempts: Sequence[AttemptRecord],
    usage: Sequence[UsageRecord],
    warnings: Sequence[Any],
    model: str | None,
    provider: str | None,
    draft: DraftPost | None = None,
    task_id: str | None = None,
    error: str | None = None,
    rendered: RenderedBody | None = None,
) -> str:
    """Persist a finished run's outcome: the task row's result columns (the task found by
    ``task_id``, else the thread's newest), its attempts and usage, replaced wholesale so a
    re-run of finalize after a crash or retry leaves exactly one copy, and for content
    (``draft``, graph/post.py) its draft post. Task token and cost totals are summed from
    ``usage``. ``rendered``: the post's body rendered.

    The status is left alone: the run's owner records the end of the run (storage.leases.end_run).
    Raises TaskNotFound for a thread without a task, OutcomeRefused if the task ended another way
    (e.g. it was cancelled while the graph ran); nothing is written then. Returns the task's id.
    """
    # Model output and search results may hold text the database refuses (storage/storable.py).
    request, params, intent, result, attempts, usage, warnings, model, provider, error = storable(
        (request, params, intent, result, list(attempts), list(usage), list(warnings), model, provider, error))
    outcome = _Outcome(
        thread_id=thread_id, request=request, params=params, intent=intent, result=result, attempts=attempts,
        usage=usage, warnings=warnings, model=model, provider=provider, draft=draft, error=error,
        rendered=rendered)
    if paths.one_statement is not None and task_id is not None:
        if await _save_first_outcome(paths.one_statement, outcome, task_id):
            return task_id
    return (await _save_in_session(paths, outcome, task_id)).id


async def _save_in_session(paths: WritePaths, outcome: _Outcome, task_id: str | None) -> Task:
    """save_outcome in one transaction: every case, on either database."""
    async with paths.sessions.begin() as session:
        tasks = TaskRepository(session)
        task = await tasks.lock_for_thread(outcome.thread_id, task_id=task_id)
        check_outcome(task.status)
        task.updated_at = utcnow()
        # The executor may have stored the request when it queued the task; a graph state that
        # lost it (empty text) must not wipe it.
        task.request = outcome.request or task.request
        task.params = dict(outcome.params) or task.params
        task.intent = outcome.intent
        task.result = outcome.result
        task.warnings = list(outcome.warnings)
        task.model = outcome.model
        task.provider = outcome.provider
        task.error = outcome.error
        task.pending_approval = None
        # Set before the first flush, so the task row is written by one UPDATE.
        for key, value in _usage_totals(outcome.usage).items():
            setattr(task, key, value)
        await AttemptRepository(session).replace_all(task.id, outcome.attempts)
        await UsageRepository(session).replace_all(task.id, outcome.usage)
        # Same transaction as the outcome: a run that is recorded always has its post, and a
        # re-run of finalize finds that post by task instead of adding a second one.
        await PostRepository(session, paths.autocommit).save_for_task(task, outcome.draft, outcome.rendered)
    return task


async def save_pending_approval(
    paths: WritePaths,
    *,
    thread_id: str,
    pending: dict[str, Any],
    attempts: Sequence[AttemptRecord],
    usage: Sequence[UsageRecord],
    task_id: str | None = None,
) -> None:
    """While a run waits for approval: the draft on offer and the attempts and usage so far, so
    the task API shows them before the run ends. The status stays as the run's owner sets it;
    a task that already ended is left alone."""
    pending, attempts, usage = storable((pending, list(attempts), list(usage)))
    async with paths.sessions.begin() as session:
        task, _created = await TaskRepository(session).lock_or_create_for_thread(thread_id, task_id=task_id)
        if TaskStatus(task.status).is_terminal:
            return
        task.pending_approval = pending
        for key, value in _usage_totals(usage).items():
            setattr(task, key, value)
        await AttemptRepository(session).replace_all(task.id, attempts)
        await UsageRepository(session).replace_all(task.id, usage)


# A number only for a thread without a post: a revision updates the post it has instead (and
# takes the session path), so drawing for it would leave a gap in the numbers.
_DRAW_FOR_NEW_POST = text("""
INSERT INTO slug_counters (base, last)
SELECT :base, 1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unsynced
WHERE NOT EXISTS (
    SELECT 1 FROM posts JOIN tasks AS owner ON owner.id = posts.task_id
    WHERE posts.task_id = :task_id OR owner.thread_id = :thread_id
)
ON CONFLICT (base) DO UPDATE SET last = slug_counters.last + 1
RETURNING last
""")

# ``fresh`` holds the task's id only when this is the simple case, and every write joins it, so
# the statement writes all or nothing. FOR UPDATE waits for a concurrent change of the row (a
# cancel) and then checks the row as that change left it.
_SAVE_FIRST_OUTCOME = text("""
WITH current AS (
    SELECT id, status FROM tasks WHERE id = :task_id AND thread_id = :thread_id FOR UPDATE
), fresh AS (
    SELECT current.id FROM current
    WHERE current.status <> ALL(CAST(:refused_statuses AS text[]))
      AND NOT EXISTS (SELECT 1 FROM attempts WHERE attempts.task_id = :task_id)
      AND NOT EXISTS (SELECT 1 FROM usage WHERE usage.task_id = :task_id)
      AND (CAST(:slug AS text) IS NULL OR (
          NOT EXISTS (SELECT 1 FROM posts JOIN tasks AS owner ON owner.id = posts.task_id
                      WHERE posts.task_id = :task_id OR owner.thread_id = :thread_id)
          AND NOT EXISTS (SELECT 1 FROM posts WHERE posts.slug = :slug)))
), task AS (
    UPDATE tasks SET
        updated_at = :now,
        request = COALESCE(NULLIF(:request, ''), tasks.request),
        params = COALESCE(CAST(:params AS jsonb), tasks.params),
        intent = CAST(:intent AS jsonb),
        result = CAST(:result AS jsonb),
        warnings = CAST(:warnings AS jsonb),
        model = :model,
        provider = :provider,
        error = :error,
        pending_approval = NULL,
        input_tokens = :input_tokens,
        output_tokens = :output_tokens,
        cost_usd = CAST(:cost_usd AS numeric)
    FROM fresh
    WHERE tasks.id = fresh.id
    RETURNING tasks.id
), new_attempts AS (
    INSERT INTO attempts (id, task_id, number, title, markdown, word_count, score, passed, dimensions, checks,
                          issues, suggestions, feedback, model, provider, input_tokens, output_tokens,
                          duration_ms, created_at)
    SELECT a.id, fresh.id, a.number, a.title, a.markdown, a.word_count, a.score, a.passed, a.dimensions,
           a.checks, a.issues, a.suggestions, a.feedback, a.model, a.provider, a.input_tokens,
           a.output_tokens, a.duration_ms, a.created_at
    FROM fresh CROSS JOIN jsonb_to_recordset(CAST(:attempts AS jsonb)) AS a(
        id text, number int, title text, markdown text, word_count int, score float8, passed boolean,
        dimensions jsonb, checks jsonb, issues jsonb, suggestions jsonb, feedback text, model text,
        provider text, input_tokens int, output_tokens int, duration_ms int, created_at timestamptz)
), new_usage AS (
    INSERT INTO usage (id, task_id, node, provider, model, input_tokens, output_tokens, duration_ms, cost_usd,
                       created_at)
    SELECT u.id, fresh.id, u.node, u.provider, u.model, u.input_tokens, u.output_tokens, u.duration_ms,
           u.cost_usd, u.created_at
    FROM fresh CROSS JOIN jsonb_to_recordset(CAST(:usage AS jsonb)) AS u(
        id text, node text, provider text, model text, input_tokens int, output_tokens int, duration_ms int,
        cost_usd numeric, created_at timestamptz)
), new_post AS (
    INSERT INTO posts (id, title, slug, custom_slug, markdown, html, word_count, body_excerpt, rendered_version,
                       featured_image, sources, keywords, status, task_id, created_at, updated_at, published_at)
    SELECT :post_id, :title, :slug, false, :markdown, :html, :word_count, :body_excerpt, :rendered_version,
           CAST(:featured_image AS jsonb), CAST(:sources AS jsonb), CAST(:keywords AS jsonb), :post_status, fresh.id,
           :now, :now, CASE WHEN :published THEN CAST(:now AS timestamptz) END
    FROM fresh
    WHERE CAST(:slug AS text) IS NOT NULL
)
SELECT count(*) AS saved FROM task
""")


def _json(value: Any) -> str | None:
    """A JSON column's value as SQLAlchemy's JSON type (none_as_null) would write it."""
    return None if value is None else json.dumps(value)


# The columns' defaults (storage.models), for what a record leaves out or sets to None.
_ATTEMPT_DEFAULTS: dict[str, Any] = {
    "title": "", "markdown": "", "word_count": 0, "score": 0.0, "passed": False, "dimensions": {}, "checks": {},
    "issues": [], "suggestions": [], "feedback": None, "model": None, "provider": None, "input_tokens": 0,
    "output_tokens": 0, "duration_ms": 0,
}
_USAGE_DEFAULTS: dict[str, Any] = {
    "provider": None, "model": None, "input_tokens": 0, "output_tokens": 0, "duration_ms": 0, "cost_usd": 0.0,
}


def _attempt_rows(attempts: Sequence[AttemptRecord], now: datetime) -> list[dict[str, Any]]:
    """Full rows, as AttemptRepository.replace_all inserts them."""
    rows = []
    for record in attempts:
        row = {"id": new_id(), "created_at": now, **_ATTEMPT_DEFAULTS, **pick(record, ATTEMPT_FIELDS)}
        rows.append({**row, "created_at": row["created_at"].isoformat()})
    return rows


def _usage_rows(usage: Sequence[UsageRecord], now: datetime) -> list[dict[str, Any]]:
    """Full rows as UsageRepository.replace_all makes them: untimestamped records get distinct,
    increasing times, so listing keeps the call order."""
    rows = []
    for offset, record in enumerate(usage):
        row = {"id": new_id(), "created_at": now + timedelta(microseconds=offset), **_USAGE_DEFAULTS,
               **pick(record, USAGE_FIELDS)}
        rows.append({**row, "created_at": row["created_at"].isoformat()})
    return rows


def _post_values(draft: DraftPost | None, slug: str | None, rendered: RenderedBody | None) -> dict[str, Any]:
    changes = draft.changes if draft is not None else {}
    return {
        "post_id": new_id(), "slug": slug, "title": changes.get("title"), "markdown": changes.get("markdown"),
        **rendered_columns(rendered),
        "featured_image": _json(changes.get("featured_image")), "sources": _json(changes.get("sources", [])),
        "keywords": _json(changes.get("keywords", [])),
        "post_status": (draft.status if draft is not None else PostStatus.DRAFT).value,
        "published": draft is not None and draft.status == PostStatus.PUBLISHED,
    }


async def _save_first_outcome(engine: AsyncEngine, outcome: _Outcome, task_id: str) -> bool:
    """save_outcome's first-outcome case in one statement (the module docstring), on an engine
    in autocommit mode; False when nothing was written and the session path must store it."""
    now = utcnow()
    async with engine.connect() as connection:
        slug = None
        if outcome.draft is not None:
            base = slug_base(outcome.draft.generated_slug)
            number = (await connection.execute(
                _DRAW_FOR_NEW_POST, {"base": base, "task_id": task_id, "thread_id": outcome.thread_id})).scalar()
            if number is None:
                return False
            slug = numbered(base, int(number))
        values = {
            "task_id": task_id, "thread_id": outcome.thread_id, "now": now,
            "refused_statuses": list(REFUSES_OUTCOME_VALUES),
            "request": outcome.request, "params": _json(dict(outcome.params) or None),
            "intent": _json(outcome.intent), "result": _json(outcome.result),
            "warnings": _json(list(outcome.warnings)), "model": outcome.model, "provider": outcome.provider,
            "error": outcome.error,
            **_usage_totals(outcome.usage),
            "attempts": json.dumps(_attempt_rows(outcome.attempts, now)),
            "usage": json.dumps(_usage_rows(outcome.usage, now)),
            **_post_values(outcome.draft, slug, outcome.rendered),
        }
        try:
            saved = (await connection.execute(_SAVE_FIRST_OUTCOME, values)).scalar_one()
        except (IntegrityError, DataError):
            # A post or slug that appeared since the statement's snapshot, or a value the
            # columns refuse: the session path decides (and raises what it raises).
            return False
    return bool(saved)
