"""The task API: queue a request, read its result and attempts, follow it live, steer it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Stream
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.assistant_context import defaults_of, webhook_of
from app.engine.commands import DecisionConflict, RunCommands
from app.engine.events import EventBus
from app.engine.run_settings import RunSettings
from app.graph_runtime import GraphRuntime
from app.http.assistant_defaults import assistant_or_404
from app.http.auth import auth_outcome
from app.http.errors import ConflictError, NotFoundError
from app.http.lg_common import unprocessable
from app.http.sse import LastEventIdHeader, LastEventIdQuery, resume_after, sse_comment, sse_event, sse_response
from app.http.task_schemas import (
    Decision,
    StatusName,
    TaskAccepted,
    TaskCreate,
    listed_task_summary,
    task_detail,
    task_links,
)
from app.http.webhook_checks import check_run_webhook
from app.service_settings import ServiceSettings
from graph.nodes.approval import InvalidDecision, parse_decision
from storage.attempts import AttemptRepository
from storage.models import Task, TaskStatus
from storage.tasks import SUMMARY_COLUMNS, TaskRepository, fetch_task_row


async def _task_or_404(sessions: async_sessionmaker[AsyncSession], task_id: str) -> Task:
    async with sessions() as session:
        task = await TaskRepository(session).get(task_id)
    if task is None:
        raise NotFoundError(detail=f"task {task_id} not found")
    return task


def _check_id(task_id: str) -> str:
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        raise NotFoundError(detail=f"task {task_id} not found") from None


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @post("/", status_code=202, summary="Queue a content request")
    async def create_task(self, request: Request[Any, Any, Any], data: JSONBody[TaskCreate],
                          commands: NamedDependency[RunCommands], run_settings: NamedDependency[RunSettings],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> Response[TaskAccepted]:
        defaults: dict[str, Any] = {}
        default_webhook: str | None = None
        if data.assistant_id is not None:
            assistant = await assistant_or_404(sessions, data.assistant_id)
            defaults = {**defaults_of(assistant), "assistant_id": assistant.assistant_id}
            default_webhook = webhook_of(assistant)
        if problem := data.platform_problem(defaults):
            raise ValidationException(detail=f"platform: {problem}", status_code=422,
                                      extra=[{"key": "platform", "message": problem}])
        # Refused now rather than failing a minute later with the provider's own error.
        if data.request and (problem := (await run_settings.request_limit()).problem(data.request)):
            raise unprocessable("request", problem)
        webhook = await check_run_webhook(run_settings.env.service.webhooks, data.webhook, default_webhook)
        # The row and its `queued` event commit together, so a worker cannot run it before then.
        principal = auth_outcome(request.scope).principal
        task = await commands.enqueue(data.request_text(defaults), data.params(defaults), webhook=webhook,
                                      owner=principal.user_id if principal is not None else None)
        audit_change(request, resource_id=task.id,
                     after={"status": "queued", "request": task.request, "params": task.params})
        links = task_links(task.id)
        body = TaskAccepted(id=task.id, thread_id=task.thread_id, status="queued", links=links)
        return Response(body, status_code=202, headers={"Location": links["self"]})

    @get("/", summary="List tasks, newest first")
    async def list_tasks(
        self,
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        status: list[StatusName] | None = Parameter(default=None, description="filter; repeat for several"),
        created_after: datetime | None = Parameter(default=None, description="inclusive, ISO 8601"),
        created_before: datetime | None = Parameter(default=None, description="exclusive, ISO 8601"),
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None and value.tzinfo is None:
                raise ValidationException(detail=f"{name} needs a timezone (e.g. ...Z)",
                                          extra=[{"key": name, "message": "timezone required, e.g. 2026-01-01T00:00:00Z"}])
        async with sessions() as session:
            try:
                page = await TaskRepository(session).list(
                    status=status, created_after=created_after, created_before=created_before, limit=limit, cursor=cursor,
                    columns=SUMMARY_COLUMNS,
                )
            except ValueError as exc:
                raise ValidationException(detail=str(exc), extra=[{"key": "cursor", "message": str(exc)}]) from exc
        # Rows of SUMMARY_COLUMNS, since columns were given (TaskPage).
        rows = cast(list[Row[Any]], page.items)
        return {"items": [listed_task_summary(row) for row in rows], "next_cursor": page.next_cursor}

    @get("/{task_id:str}", summary="A task with its whole result")
    async def get_task(self, task_id: FromPath[str], runtime: NamedDependency[GraphRuntime]) -> dict[str, Any]:
        # The most polled route: a bare connection and a plain row, no session or ORM object.
        async with runtime.read_engine.connect() as connection:
            task = await fetch_task_row(connection, _check_id(task_id))
        if task is None:
            raise NotFoundError(detail=f"task {task_id} not found")
        return task_detail(task)

    @get("/{task_id:str}/attempts", summary="Every draft and its critique")
    async def list_attempts(self, task_id: FromPath[str],
                            read_sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        task = await _task_or_404(read_sessions, _check_id(task_id))
        async with read_sessions() as session:
            attempts = await AttemptRepository(session).list_for_task(task.id)
        return {"task_id": task.id, "items": [
            {"number": a.number, "title": a.title, "markdown": a.markdown, "word_count": a.word_count,
             "score": a.score, "passed": a.passed, "dimensions": a.dimensions, "checks": a.checks,
             "issues": a.issues, "suggestions": a.suggestions, "feedback": a.feedback, "model": a.model,
             "provider": a.provider, "input_tokens": a.input_tokens, "output_tokens": a.output_tokens,
             "duration_ms": a.duration_ms, "created_at": a.created_at.isoformat()}
            for a in attempts]}

    @get("/{task_id:str}/events", summary="Live progress as Server-Sent Events")
    async def task_events(
        self,
        task_id: FromPath[str],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        bus: NamedDependency[EventBus],
        settings: NamedDependency[ServiceSettings],
        last_event_header: LastEventIdHeader = None,
        last_event_id: LastEventIdQuery = None,
    ) -> Stream:
        task = await _task_or_404(sessions, _check_id(task_id))
        after = resume_after(last_event_header, last_event_id)

        async def body() -> AsyncIterator[bytes]:
            yield sse_comment("connected")
            async for event in bus.follow(task.id, after_id=after, heartbeat=settings.sse_heartbeat_seconds):
                if event is None:
                    yield sse_comment()
                else:
                    yield sse_event(event.type, {**event.data, "task_id": task.id}, event.id)

        return sse_response(body())

    @post("/{task_id:str}/cancel", status_code=200, summary="Stop a task; its checkpoint is kept")
    async def cancel_task(self, request: Request[Any, Any, Any], task_id: FromPath[str],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          commands: NamedDependency[RunCommands]) -> dict[str, Any]:
        task = await _task_or_404(sessions, _check_id(task_id))
        audit_change(request, before={"status": task.status})
        if TaskStatus(task.status).is_terminal or not await commands.cancel(task.id):
            raise ConflictError(detail=f"task is already {task.status}")
        cancelled = await _task_or_404(sessions, task.id)
        audit_change(request, after={"status": cancelled.status})
        return task_detail(cancelled)

    @post("/{task_id:str}/approve", status_code=200, summary="Approve or reject a draft awaiting approval")
    async def decide(
        self, request: Request[Any, Any, Any], task_id: FromPath[str], data: JSONBody[Decision],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]], commands: NamedDependency[RunCommands]
    ) -> dict[str, Any]:
        task = await _task_or_404(sessions, _check_id(task_id))
        if data.decisions is not None:
            try:
                parse_decision({"decisions": data.decisions})
            except InvalidDecision as exc:
                raise unprocessable(exc.field, exc.message) from exc
        audit_change(request, before={"status": task.status},
                     # The decision's type, not an edit's text: the audit log records who decided what.
                     decision={"decisions": [d["type"] for d in data.decisions]} if data.decisions is not None
                     else {"approved": data.approved, "feedback": data.feedback})
        try:
            await commands.submit_decision(task.id, bool(data.approved), data.feedback, publish=data.publish,
                                           attempt=data.attempt, decisions=data.decisions)
        except DecisionConflict as exc:
            raise ConflictError(detail=str(exc)) from exc
        except InvalidDecision as exc:
            raise unprocessable(exc.field, exc.message) from exc
        decided = await _task_or_404(sessions, task.id)
        audit_change(request, after={"status": decided.status})
        return task_detail(decided)
