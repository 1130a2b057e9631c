"""The audit writer against controllable sinks (no database): batching, never blocking the
caller, retrying failed writes, flushing on stop, the queue bound; plus the summary clipping and
the route-to-action naming the middleware relies on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from app.audit_log import MAX_SUMMARY_CHARS, REDACTED, AuditLog, clip_summary
from app.http.audit_middleware import describe_route
from storage.audit import AuditRecord

FAST_RETRY = dict(retry_seconds=0.001, max_retry_seconds=0.01)


def entry(number: int) -> AuditRecord:
    return AuditRecord(occurred_at=datetime.now(UTC), action="thread.create", resource="thread", method="POST",
                       path="/threads", status=200, resource_id=f"thread-{number}")


class Sink:
    """Stores batches; ``fail`` next calls raise like a database that went away; ``gate``, when
    cleared, holds every write until the test sets it."""

    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[AuditRecord]] = []
        self.calls = 0
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, records: Sequence[AuditRecord]) -> None:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise OperationalError("INSERT INTO audit_events ...", {}, ConnectionRefusedError("connection refused"))
        self.batches.append(list(records))

    @property
    def stored(self) -> list[str | None]:
        return [r.resource_id for batch in self.batches for r in batch]


async def test_a_burst_is_written_in_one_batch_not_one_insert_per_entry() -> None:
    sink = Sink()
    async with AuditLog(sink) as audit:
        for number in range(50):
            audit.record(entry(number))
        await audit.flush()
    assert sink.calls == 1
    assert sink.stored == [f"thread-{n}" for n in range(50)]


async def test_batches_never_exceed_the_batch_size() -> None:
    sink = Sink()
    async with AuditLog(sink, batch_size=7) as audit:
        for number in range(30):
            audit.record(entry(number))
    assert max(len(batch) for batch in sink.batches) == 7
    assert sink.stored == [f"thread-{n}" for n in range(30)]


async def test_recording_returns_while_the_writer_is_stuck_in_a_write() -> None:
    sink = Sink()
    sink.gate.clear()
    async with AuditLog(sink) as audit:
        audit.record(entry(0))
        await sink.entered.wait()
        # The writer is inside the sink, held by the gate: recording still just queues.
        for number in range(1, 10):
            audit.record(entry(number))
        assert audit.pending == 10 and sink.stored == []
        sink.gate.set()
    assert sink.stored == [f"thread-{n}" for n in range(10)]


async def test_a_failed_write_is_retried_and_logged_until_every_entry_is_stored_once(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(fail=3)
    with caplog.at_level(logging.WARNING, logger="draftloop.audit"):
        async with AuditLog(sink, **FAST_RETRY) as audit:
            for number in range(10):
                audit.record(entry(number))
            await audit.flush()
            assert audit.failed_writes == 3
    assert sink.stored == [f"thread-{n}" for n in range(10)]
    failures = [r for r in caplog.records if "entries failed" in r.getMessage()]
    assert len(failures) == 3 and "OperationalError" in failures[0].getMessage()
    # Type names only: a driver's message may quote the statement and its parameters.
    assert "INSERT" not in caplog.text
    assert any("succeeded after 3 failed attempts" in r.getMessage() for r in caplog.records)


async def test_stop_flushes_everything_still_queued() -> None:
    sink = Sink()
    audit = AuditLog(sink, batch_size=100, flush_seconds=60)
    audit.start()
    for number in range(1000):
        audit.record(entry(number))
    await audit.stop()
    assert sink.stored == [f"thread-{n}" for n in range(1000)]
    assert audit.pending == 0 and audit.spilled == 0


async def test_entries_past_the_queue_bound_go_to_the_error_log_not_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    with caplog.at_level(logging.ERROR, logger="draftloop.audit"):
        async with AuditLog(sink, max_queued=3) as audit:
            for number in range(5):
                audit.record(entry(number))
            assert audit.spilled == 2
    assert sink.stored == ["thread-0", "thread-1", "thread-2"]
    spilled = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(spilled) == 2 and "queue is full" in spilled[0]
    assert json.loads(spilled[1].split(": ", 1)[1])["resource_id"] == "thread-4"


async def test_stop_gives_up_on_an_unreachable_database_and_logs_what_it_could_not_write(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(fail=10**9)
    audit = AuditLog(sink, shutdown_seconds=0.2, **FAST_RETRY)
    audit.start()
    for number in range(3):
        audit.record(entry(number))
    with caplog.at_level(logging.ERROR, logger="draftloop.audit"):
        await audit.stop()
    assert audit.spilled == 3 and audit.pending == 0
    assert sum("shutting down" in r.getMessage() for r in caplog.records) == 3


async def test_an_entry_recorded_after_stop_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    async with AuditLog(sink) as audit:
        pass
    with caplog.at_level(logging.ERROR, logger="draftloop.audit"):
        audit.record(entry(1))
    assert sink.stored == [] and audit.spilled == 1
    assert "not running" in caplog.text


# summaries --------------------------------------------------------------------------------------


def test_a_summary_never_keeps_secret_looking_fields_or_bearer_tokens() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    summary = clip_summary({"password": "hunter2", "api_key": "k", "SERPER_API_KEY": "k", "access_token": "t",
                            "Authorization": f"Bearer {jwt_like}", "nested": {"client_secret": "s"},
                            "note": f"token was {jwt_like}", "max_tokens": 2000})
    text = json.dumps(summary)
    assert "hunter2" not in text and jwt_like not in text and '"k"' not in text and '"s"' not in text
    assert summary["password"] == REDACTED and summary["nested"]["client_secret"] == REDACTED
    assert summary["max_tokens"] == 2000  # a setting's name, not a credential


def test_a_summary_is_cut_to_size_and_made_storable() -> None:
    summary = clip_summary({"body": "x" * 10_000, "items": list(range(100)), "nul": "a\x00b",
                            "nan": float("nan"), "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}})
    assert len(summary["body"]) < 300
    assert len(summary["items"]) == 21 and summary["items"][-1] == "… 80 more"
    assert summary["nul"] == "ab" and summary["nan"] == "nan"
    assert summary["deep"]["a"]["b"]["c"] == "…"
    huge = clip_summary({f"field{n}": "y" * 199 for n in range(20)})
    assert len(json.dumps(huge, ensure_ascii=False)) <= MAX_SUMMARY_CHARS
    assert huge["truncated"] is True and huge["keys"][0] == "field0"


# route naming -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "method", "expected"), [
    ("/api/tasks", "POST", ("task", None, "task.create")),
    ("/api/tasks/{task_id:str}/cancel", "POST", ("task", "ID", "task.cancel")),
    ("/threads/{thread_id:str}", "PATCH", ("thread", "ID", "thread.update")),
    ("/threads/{thread_id:str}", "DELETE", ("thread", "ID", "thread.delete")),
    ("/threads/{thread_id:str}/runs", "POST", ("run", None, "run.create")),
    ("/threads/{thread_id:str}/runs/{run_id:str}/cancel", "POST", ("run", "ID", "run.cancel")),
    ("/api/auth/logout", "POST", ("auth", None, "auth.logout")),
    ("/api/settings/{key:str}", "PUT", ("setting", "ID", "setting.put")),
    ("/api/settings/{key:str}/rollback", "POST", ("setting", "ID", "setting.rollback")),
    ("/api/posts/{post_id:str}", "PATCH", ("post", "ID", "post.update")),
    ("/api/policies", "POST", ("policy", None, "policy.create")),
])
def test_a_route_template_names_the_resource_its_id_and_the_action(
        template: str, method: str, expected: tuple[str, str | None, str]) -> None:
    params = {"task_id": "ID", "thread_id": "OTHER", "run_id": "ID", "key": "ID", "post_id": "ID"}
    if "{run_id" not in template and "{thread_id" in template:
        params["thread_id"] = "ID"
    assert describe_route(template, method, params) == expected
