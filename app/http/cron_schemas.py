"""Request bodies of the scheduled-run (cron) routes, as langgraph-sdk's crons client sends them.

The run fields are RunCreate's (app/http/lg_schemas.py): each tick queues the run they describe,
and parse_run checks them when the cron is stored, so a cron never fires a run that would be
refused. Times are ISO 8601 strings (the strict models take no string for a datetime); the
handlers parse them into 422s that name the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from app.http.lg_schemas import (
    MAX_OFFSET,
    MAX_PAGE,
    Id,
    LangGraphBody,
    Metadata,
    NodeNames,
    RunConfig,
    RunContext,
    SearchFilter,
    _listed,
)

# Longer than any cron expression or zone name; short enough to keep rows and logs small.
MAX_SCHEDULE_LENGTH = 255
MAX_URL_LENGTH = 2048

Schedule = Annotated[str, Field(min_length=1, max_length=MAX_SCHEDULE_LENGTH)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64)]
Timestamp = Annotated[str, Field(min_length=1, max_length=64)]

CronField = Literal["cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule", "timezone",
                    "created_at", "updated_at", "payload", "user_id", "next_run_date", "metadata", "enabled"]
# The fields of a cron request that describe the run each tick queues (the rest schedule it).
RUN_FIELDS = ("assistant_id", "input", "config", "context", "metadata", "interrupt_before", "interrupt_after",
              "stream_mode", "stream_subgraphs", "stream_resumable", "durability", "multitask_strategy",
              "checkpoint_during", "webhook")


class CronRun(LangGraphBody):
    """What the create and update bodies share: the run each tick queues."""

    input: Any = None
    metadata: Metadata | None = None
    config: RunConfig | None = None
    context: RunContext | None = None
    # Each tick's run calls it when it ends (docs/webhooks.md); checked as a run's webhook is.
    webhook: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)] | None = None
    interrupt_before: NodeNames = None
    interrupt_after: NodeNames = None
    stream_mode: Annotated[list[str] | None, BeforeValidator(_listed)] = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    # Named so that parse_run refuses it by name (deprecated for durability).
    checkpoint_during: Any = None
    schedule: Schedule | None = None
    timezone: TimeZone | None = None
    end_time: Timestamp | None = None
    enabled: bool | None = None


class ThreadCronCreate(CronRun):
    assistant_id: Id
    schedule: Schedule
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None


class CronCreate(ThreadCronCreate):
    on_run_completed: Literal["delete", "keep"] | None = None


class CronPatch(CronRun):
    on_run_completed: Literal["delete", "keep"] | None = None


class CronSearch(LangGraphBody):
    assistant_id: Id | None = None
    thread_id: Id | None = None
    enabled: bool | None = None
    metadata: SearchFilter = None
    limit: int = Field(default=10, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at",
                     "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = None


class CronCount(LangGraphBody):
    assistant_id: Id | None = None
    thread_id: Id | None = None
    metadata: SearchFilter = None
