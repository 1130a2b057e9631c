"""LangGraph API scheduled runs (crons): create, read, update, search, count and delete them.

A cron stores its request (``payload``, shown as sent) and the run columns parse_run made of it
(``run``), so the scheduler (app/engine/scheduler.py) queues each tick's run without the HTTP
layer. A cron with a thread runs on it; one without runs each tick on a new thread, deleted once
its run ended unless ``on_run_completed`` is "keep".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.assistant_context import defaults_of
from app.engine.run_settings import RunSettings
from app.engine.schedules import BadSchedule, check_schedule, load_zone, next_tick
from app.graph_runtime import GraphRuntime
from app.http.assistant_defaults import assistant_or_404, with_defaults
from app.http.auth import auth_outcome
from app.http.cron_schemas import RUN_FIELDS, CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate
from app.http.errors import NotFoundError
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, unprocessable
from app.http.lg_schemas import RunCreate
from app.http.run_requests import check_request_length, parse_run
from app.http.threads import pagination_headers, thread_or_404
from app.http.webhook_checks import check_webhook
from storage.crons import CronRepository
from storage.models import Cron, new_id, utcnow

# Fields a PATCH sets on the schedule rather than on the run.
SCHEDULE_FIELDS = ("schedule", "timezone", "end_time", "enabled")


def cron_dict(cron: Cron) -> dict[str, Any]:
    """A cron as langgraph-api answers it."""
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": cron.on_run_completed,
        "end_time": cron.end_time.isoformat() if cron.end_time else None,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at.isoformat(),
        "updated_at": cron.updated_at.isoformat(),
        "payload": cron.payload or {},
        "user_id": cron.user_id,
        "next_run_date": cron.next_run_date.isoformat() if cron.next_run_date else None,
        "metadata": cron.meta or {},
        "enabled": cron.enabled,
    }


def _end_time(raw: str | None) -> datetime | None:
    """An ISO 8601 time; one without a zone is UTC."""
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise unprocessable("end_time", "must be an ISO 8601 date-time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def _check_schedule(schedule: str | None, timezone: str | None) -> None:
    try:
        if schedule is not None:
            check_schedule(schedule)
    except BadSchedule as exc:
        raise unprocessable("schedule", str(exc)) from exc
    try:
        await load_zone(timezone)
    except BadSchedule as exc:
        raise unprocessable("timezone", str(exc)) from exc


def _check_webhook(url: str | None) -> None:
    """An absolute http(s) URL; whether it may be called (private addresses, signing) is the
    webhook delivery's to decide when it calls it."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise unprocessable("webhook", "must be an absolute http or https URL")


def _run_columns(payload: dict[str, Any], nodes: set[str], *, stateless: bool) -> dict[str, Any]:
    """The run columns each tick queues, refused as a run request with the same fields would be
    (the webhook included: each tick's run calls it when it ends)."""
    _check_webhook(payload.get("webhook"))
    fields = {key: payload[key] for key in RUN_FIELDS if key in payload}
    try:
        body = RunCreate.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise unprocessable(".".join(str(part) for part in error["loc"]), error["msg"]) from exc
    run = parse_run(body, nodes)
    if stateless and run["multitask_strategy"] == "reject":
        # A new thread per tick is never busy: nothing to reject.
        run["multitask_strategy"] = "enqueue"
    return run


def _with_cron_id(payload: dict[str, Any], cron_id: str) -> dict[str, Any]:
    """The run's config names its cron (config.configurable.cron_id), as langgraph-api's does."""
    config = dict(payload.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
    return {**payload, "config": config}


async def cron_columns(body: ThreadCronCreate, thread_id: str | None, user_id: str | None,
                 nodes: set[str]) -> dict[str, Any]:
    """A new cron's row for a checked request (the HTTP routes' and `draftloop schedule add`'s);
    a 422 naming the first field that cannot be honoured."""
    await _check_schedule(body.schedule, body.timezone)
    end_time = _end_time(body.end_time)
    cron_id = new_id()
    payload = _with_cron_id(body.model_dump(mode="json", exclude_unset=True), cron_id)
    run = _run_columns(payload, nodes, stateless=thread_id is None)
    return {
        "cron_id": cron_id, "assistant_id": run["assistant_id"], "thread_id": thread_id, "user_id": user_id,
        "schedule": body.schedule, "timezone": body.timezone, "end_time": end_time, "payload": payload, "run": run,
        "meta": body.metadata or {}, "enabled": body.enabled is not False,
        "on_run_completed": (body.on_run_completed or "delete") if isinstance(body, CronCreate) else None,
        "next_run_date": next_tick(body.schedule, body.timezone, utcnow(), end_time),
    }


async def _create(request: Request[Any, Any, Any], body: ThreadCronCreate, thread_id: str | None,
                  sessions: async_sessionmaker[AsyncSession], runtime: GraphRuntime,
                  run_settings: RunSettings) -> Cron:
    if thread_id is not None:
        await thread_or_404(sessions, thread_id)
    await check_webhook(run_settings.env.service.webhooks, body.webhook)
    principal = auth_outcome(request.scope).principal
    columns = await cron_columns(body, thread_id, principal.user_id if principal else None, set(runtime.graph.nodes))
    # Each tick reads the assistant again (app/engine/scheduler.py), so a new version reaches the
    # next run; it must exist now, and the cron's own settings must fit its defaults.
    assistant = await assistant_or_404(sessions, body.assistant_id)
    columns["assistant_id"] = columns["run"]["assistant_id"] = assistant.assistant_id
    with_defaults(defaults_of(assistant), columns["run"]["config"].get("configurable"), columns["run"]["context"])
    await check_request_length(run_settings, body.input)
    async with sessions.begin() as session:
        cron = await CronRepository(session).create(**columns)
    audit_change(request, resource_id=cron.cron_id,
                 after={"schedule": cron.schedule, "thread_id": thread_id, "enabled": cron.enabled})
    return cron


async def _patched(cron: Cron, body: CronPatch, runtime: GraphRuntime) -> dict[str, Any]:
    """The columns a PATCH changes; the next tick is worked out again when the schedule changed."""
    sent = body.model_dump(mode="json", exclude_unset=True)
    if not sent:
        raise unprocessable("body", "send at least one field to change")
    schedule = sent.get("schedule") or cron.schedule
    timezone = sent["timezone"] if "timezone" in sent else cron.timezone
    await _check_schedule(schedule, timezone)
    values: dict[str, Any] = {}
    if "end_time" in sent:
        values["end_time"] = _end_time(sent["end_time"])
    if sent.get("schedule") is not None:
        values["schedule"] = schedule
    if "timezone" in sent:
        values["timezone"] = timezone
    if sent.get("enabled") is not None:
        values["enabled"] = sent["enabled"]
    if sent.get("on_run_completed") is not None:
        if cron.thread_id is not None:
            raise unprocessable("on_run_completed", "only applies to crons without a thread")
        values["on_run_completed"] = sent["on_run_completed"]
    run_changes = {key: value for key, value in sent.items() if key in RUN_FIELDS}
    if run_changes:
        payload = _with_cron_id({**(cron.payload or {}), **run_changes}, cron.cron_id)
        values["payload"] = payload
        values["run"] = _run_columns(payload, set(runtime.graph.nodes), stateless=cron.thread_id is None)
        if "metadata" in run_changes:
            values["meta"] = run_changes["metadata"] or {}
    if any(key in sent for key in SCHEDULE_FIELDS):
        end_time = values.get("end_time", cron.end_time)
        values["next_run_date"] = next_tick(schedule, timezone, utcnow(), end_time)
    return values


class CronController(Controller):
    path = "/"
    tags = ["langgraph api"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @post("/runs/crons", status_code=200, opt={"audit_action": "cron.create"},
          summary="Schedule runs, each on a new thread")
    async def create_cron(self, request: Request[Any, Any, Any],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          runtime: NamedDependency[GraphRuntime], run_settings: NamedDependency[RunSettings],
                          data: JSONBody[CronCreate]) -> dict[str, Any]:
        return cron_dict(await _create(request, data, None, sessions, runtime, run_settings))

    @post("/threads/{thread_id:str}/runs/crons", status_code=200, opt={"audit_action": "cron.create"},
          summary="Schedule runs on a thread")
    async def create_thread_cron(self, request: Request[Any, Any, Any], thread_id: FromPath[str],
                                 sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                                 runtime: NamedDependency[GraphRuntime], run_settings: NamedDependency[RunSettings],
                                 data: JSONBody[ThreadCronCreate]) -> dict[str, Any]:
        return cron_dict(await _create(request, data, thread_id, sessions, runtime, run_settings))

    @get("/runs/crons/{cron_id:str}", summary="One cron")
    async def get_cron(self, cron_id: FromPath[str],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        async with sessions() as session:
            cron = await CronRepository(session).get(cron_id)
        if cron is None:
            raise NotFoundError(detail=f"cron {cron_id} not found")
        return cron_dict(cron)

    @patch("/runs/crons/{cron_id:str}", status_code=200, opt={"audit_action": "cron.update"},
           summary="Change a cron's schedule or run")
    async def patch_cron(self, request: Request[Any, Any, Any], cron_id: FromPath[str],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         runtime: NamedDependency[GraphRuntime], run_settings: NamedDependency[RunSettings],
                         data: JSONBody[CronPatch | None] = None) -> dict[str, Any]:
        body = data or CronPatch()
        await check_request_length(run_settings, body.input)
        await check_webhook(run_settings.env.service.webhooks, body.webhook)
        async with sessions.begin() as session:
            crons = CronRepository(session)
            cron = await crons.get(cron_id)
            if cron is None:
                raise NotFoundError(detail=f"cron {cron_id} not found")
            before = {"schedule": cron.schedule, "enabled": cron.enabled}
            updated = await crons.update(cron_id, **await _patched(cron, body, runtime))
            assert updated is not None  # the row is ours: read above in this transaction
            shown = cron_dict(updated)
        audit_change(request, resource_id=cron_id, before=before,
                     after={"schedule": shown["schedule"], "enabled": shown["enabled"]})
        return shown

    @delete("/runs/crons/{cron_id:str}", status_code=204, opt={"audit_action": "cron.delete"},
            summary="Delete a cron (its queued runs stay)")
    async def delete_cron(self, request: Request[Any, Any, Any], cron_id: FromPath[str],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> None:
        async with sessions.begin() as session:
            crons = CronRepository(session)
            cron = await crons.get(cron_id)
            if cron is None:
                raise NotFoundError(detail=f"cron {cron_id} not found")
            audit_change(request, resource_id=cron_id, before={"schedule": cron.schedule, "thread_id": cron.thread_id})
            await crons.delete(cron_id)

    @post("/runs/crons/search", status_code=200, opt={"read_only": True}, summary="Search crons")
    async def search_crons(self, sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                           data: JSONBody[CronSearch | None] = None) -> Response[list[dict[str, Any]]]:
        body = data or CronSearch()
        async with sessions() as session:
            # One row past the page says whether another follows, without counting them all.
            rows = await CronRepository(session).search(
                assistant_id=body.assistant_id, thread_id=body.thread_id, enabled=body.enabled,
                metadata=body.metadata, sort_by=body.sort_by or "created_at",
                descending=(body.sort_order or "desc") == "desc", limit=body.limit + 1, offset=body.offset)
        page = rows[:body.limit]
        wanted = set(body.select or ()) or None
        shown = [cron_dict(cron) for cron in page]
        if wanted is not None:
            shown = [{key: value for key, value in cron.items() if key in wanted} for cron in shown]
        return Response(shown, headers=pagination_headers(body.offset, len(page), len(rows) > body.limit))

    @post("/runs/crons/count", status_code=200, opt={"read_only": True}, summary="Count crons")
    async def count_crons(self, sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          data: JSONBody[CronCount | None] = None) -> int:
        body = data or CronCount()
        async with sessions() as session:
            return await CronRepository(session).count(assistant_id=body.assistant_id, thread_id=body.thread_id,
                                                       metadata=body.metadata)
