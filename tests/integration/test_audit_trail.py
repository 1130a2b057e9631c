"""The audit trail through the real app on SQLite and Postgres: what a mutation leaves behind,
that recording never holds a request up, that a shutdown right after a burst loses nothing, and
GET /api/audit's filters, pages and guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import AuditLog
from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_ADMIN_ID, TEST_ADMIN_NAME, TEST_PASSWORD, admin_headers, bearer, ensure_user
from storage.audit import AuditRecord
from storage.models import AuditEvent
from tests.asgi import serve_in_loop
from tests.integration.test_task_api import FAST, POST, point_env_at_fakes

EDITOR_ID = "00000000-0000-4000-8000-0000000000e1"
VIEWER_ID = "00000000-0000-4000-8000-0000000000e2"
# Distinctive, so finding it anywhere in a stored row is unambiguous.
WRONG_PASSWORD = "wrong-pw-7f3a9c-never-stored"


@dataclass
class Served:
    client: httpx.AsyncClient
    app: Litestar

    @property
    def audit(self) -> AuditLog:
        return self.app.state["audit"]


class GatedSink:
    """Wraps the app's database sink: while ``gate`` is clear, every write waits for it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, records: Sequence[AuditRecord]) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.inner(records)


@pytest.fixture
async def app(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Litestar:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url)
    await ensure_user(migrated_database_url, name="editor", role="editor", user_id=EDITOR_ID)
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    return create_app(ServiceSettings(database_url=migrated_database_url, worker_id="audit-test", **FAST))


@pytest.fixture
async def served(app: Litestar) -> AsyncIterator[Served]:
    async with serve_in_loop(app) as client:
        yield Served(client, app)


async def audit_events(served: Served, **filters: Any) -> list[dict[str, Any]]:
    """Every entry matching ``filters``, newest first, once everything recorded so far is written."""
    await served.audit.flush()
    response = await served.client.get("/api/audit", params={"limit": 200, **filters}, headers=admin_headers())
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def stored_rows(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with sessions() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


# what gets recorded -----------------------------------------------------------------------------


async def test_task_create_and_cancel_are_recorded_with_actor_resource_client_and_before_after(
        served: Served, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.draft_latency = 30  # keeps the task cancellable
    created = await served.client.post("/api/tasks", json=POST, headers=admin_headers())
    task_id = created.json()["id"]
    cancelled = await served.client.post(f"/api/tasks/{task_id}/cancel", headers=admin_headers())
    assert cancelled.status_code == 200, cancelled.text

    cancel, create = await audit_events(served, resource_id=task_id)
    assert create["action"] == "task.create" and create["status"] == 202
    assert create["actor"] == {"id": TEST_ADMIN_ID, "name": TEST_ADMIN_NAME, "role": "admin"}
    assert create["resource"] == "task" and create["method"] == "POST" and create["path"] == "/api/tasks"
    assert create["summary"]["after"]["status"] == "queued"
    assert create["summary"]["after"]["request"] == POST["request"]
    assert create["client"] == "127.0.0.1"
    assert cancel["action"] == "task.cancel" and cancel["status"] == 200
    assert cancel["path"] == "/api/tasks/{task_id}/cancel"
    assert cancel["summary"]["before"]["status"] in {"queued", "running"}
    assert cancel["summary"]["after"] == {"status": "cancelled"}
    assert datetime.fromisoformat(cancel["occurred_at"]) >= datetime.fromisoformat(create["occurred_at"])


async def test_thread_changes_are_recorded_with_the_metadata_before_and_after(served: Served) -> None:
    headers = bearer(EDITOR_ID, "editor")
    await served.client.post("/threads", json={"thread_id": "t-audit", "metadata": {"topic": "a"}}, headers=headers)
    await served.client.patch("/threads/t-audit", json={"metadata": {"topic": "b"}}, headers=headers)
    assert (await served.client.delete("/threads/t-audit", headers=headers)).status_code == 204

    delete, update, create = await audit_events(served, resource="thread", resource_id="t-audit")
    assert [create["action"], update["action"], delete["action"]] == ["thread.create", "thread.update", "thread.delete"]
    assert create["summary"] == {"after": {"metadata": {"topic": "a"}}}
    assert update["summary"] == {"before": {"metadata": {"topic": "a"}}, "after": {"metadata": {"topic": "b"}}}
    assert delete["summary"]["before"]["metadata"] == {"topic": "b"}
    assert {e["actor"]["name"] for e in (create, update, delete)} == {"editor"}


async def test_setting_and_post_changes_are_recorded_with_before_and_after(served: Served) -> None:
    assert (await served.client.put("/api/settings/quality_threshold", json={"value": 80},
                                    headers=admin_headers())).status_code == 200
    await served.client.put("/api/settings/quality_threshold", json={"value": 90}, headers=admin_headers())
    created = await served.client.post("/api/posts", json={"title": "Audit me", "markdown": "Text."},
                                       headers=bearer(EDITOR_ID, "editor"))
    post_id = created.json()["id"]
    await served.client.patch(f"/api/posts/{post_id}", json={"title": "Audited"}, headers=bearer(EDITOR_ID, "editor"))

    second, first = await audit_events(served, action="setting.put")
    assert first["resource_id"] == "quality_threshold"
    assert first["summary"]["before"] == {"quality_threshold": None}
    assert first["summary"]["after"] == {"quality_threshold": 80}
    assert second["summary"]["before"] == {"quality_threshold": 80}
    update, create = await audit_events(served, resource="post", resource_id=post_id)
    assert create["action"] == "post.create" and create["summary"]["after"]["title"] == "Audit me"
    assert update["action"] == "post.update" and update["actor"]["name"] == "editor"
    assert (update["summary"]["before"]["title"], update["summary"]["after"]["title"]) == ("Audit me", "Audited")


async def test_login_logout_and_failed_logins_are_recorded_and_no_password_is_stored(
        served: Served, sessions: async_sessionmaker[AsyncSession]) -> None:
    login = await served.client.post("/api/auth/token", data={"username": "viewer", "password": TEST_PASSWORD})
    token = login.json()["access_token"]
    await served.client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert (await served.client.post("/api/auth/token", data={"username": "viewer", "password": WRONG_PASSWORD})
            ).status_code == 401
    # A password typed into the name field must not be kept either.
    assert (await served.client.post("/api/auth/token", json={"username": WRONG_PASSWORD, "password": WRONG_PASSWORD})
            ).status_code == 401

    unknown, wrong, logout, success = await audit_events(served, resource="auth")
    assert success["action"] == "auth.login" and success["status"] == 200
    assert success["actor"] == {"id": VIEWER_ID, "name": "viewer", "role": "viewer"}
    assert logout["action"] == "auth.logout" and logout["actor"]["name"] == "viewer"
    assert wrong["action"] == "auth.login_failed" and wrong["status"] == 401 and wrong["actor"] is None
    assert wrong["summary"] == {"user": "viewer"} and wrong["resource_id"] == VIEWER_ID
    assert unknown["action"] == "auth.login_failed" and unknown["summary"] is None and unknown["resource_id"] is None

    for row in await stored_rows(sessions):
        text = repr({attr.key: getattr(row, attr.key) for attr in AuditEvent.__mapper__.column_attrs})
        assert WRONG_PASSWORD not in text and TEST_PASSWORD not in text and token not in text


async def test_denied_and_invalid_mutations_are_recorded_with_their_status_and_reads_are_not(served: Served) -> None:
    assert (await served.client.post("/api/tasks", json=POST)).status_code == 401
    assert (await served.client.post("/api/tasks", json=POST, headers=bearer(VIEWER_ID, "viewer"))).status_code == 403
    assert (await served.client.post("/api/tasks", json={"tone": "shouty"}, headers=admin_headers())).status_code == 422
    assert (await served.client.get("/api/tasks", headers=admin_headers())).status_code == 200

    invalid, denied, anonymous = await audit_events(served, action="task.create")
    assert anonymous["status"] == 401 and anonymous["actor"] is None
    assert denied["status"] == 403 and denied["actor"]["name"] == "viewer"
    assert invalid["status"] == 422 and invalid["actor"]["name"] == TEST_ADMIN_NAME
    assert all(e["method"] != "GET" for e in await audit_events(served))


# never blocking, never losing ------------------------------------------------------------------


async def test_a_request_answers_while_the_audit_writer_is_stuck(served: Served) -> None:
    sink = GatedSink(served.audit.sink)
    served.audit.sink = sink
    first = await served.client.post("/threads", json={"thread_id": "t-first"}, headers=admin_headers())
    assert first.status_code == 200
    await sink.entered.wait()
    # The writer now waits inside a write that cannot finish; mutations still answer.
    second = await served.client.post("/threads", json={"thread_id": "t-second"}, headers=admin_headers())
    assert second.status_code == 200
    assert served.audit.pending == 2
    assert (await served.client.get("/api/audit", headers=admin_headers())).json()["items"] == []
    sink.gate.set()
    assert [e["resource_id"] for e in await audit_events(served, action="thread.create")] == ["t-second", "t-first"]


async def test_no_entry_is_lost_when_the_app_stops_right_after_a_burst(
        app: Litestar, sessions: async_sessionmaker[AsyncSession]) -> None:
    burst = 200
    async with serve_in_loop(app) as client:
        audit: AuditLog = app.state["audit"]
        sink = GatedSink(audit.sink)
        audit.sink = sink  # nothing reaches the database before shut-down starts

        async def create(number: int) -> int:
            response = await client.post("/threads", json={"thread_id": f"burst-{number}"}, headers=admin_headers())
            return response.status_code

        assert await asyncio.gather(*(create(n) for n in range(burst))) == [200] * burst
        assert audit.pending == burst
        sink.gate.set()  # the writer gets no turn before the lifespan starts shutting down
    rows = await stored_rows(sessions)
    assert sorted(r.resource_id or "" for r in rows) == sorted(f"burst-{n}" for n in range(burst))
    assert {r.action for r in rows} == {"thread.create"} and audit.spilled == 0


# GET /api/audit ---------------------------------------------------------------------------------


async def test_audit_filters_narrow_by_actor_action_resource_status_and_time(served: Served) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    for number in range(3):
        await served.client.post("/threads", json={"thread_id": f"a-{number}"}, headers=admin_headers())
    for number in range(2):
        await served.client.post("/threads", json={"thread_id": f"e-{number}"}, headers=bearer(EDITOR_ID, "editor"))
    await served.client.post("/api/auth/token", data={"username": "editor", "password": WRONG_PASSWORD})

    assert len(await audit_events(served)) == 6
    assert [e["resource_id"] for e in await audit_events(served, actor="editor")] == ["e-1", "e-0"]
    assert len(await audit_events(served, actor=TEST_ADMIN_ID)) == 3
    assert len(await audit_events(served, action="thread.create")) == 5
    assert [e["action"] for e in await audit_events(served, status=401)] == ["auth.login_failed"]
    assert len(await audit_events(served, resource="thread", resource_id="a-1")) == 1
    assert len(await audit_events(served, since=started.isoformat())) == 6
    assert await audit_events(served, until=started.isoformat()) == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await audit_events(served, since=later) == []


async def test_audit_pages_walk_every_entry_newest_first_without_repeats(served: Served) -> None:
    for number in range(7):
        await served.client.post("/threads", json={"thread_id": f"p-{number}"}, headers=admin_headers())
    everything = await audit_events(served)
    assert [e["resource_id"] for e in everything] == [f"p-{n}" for n in reversed(range(7))]
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await served.client.get("/api/audit", params=params, headers=admin_headers())).json()
        assert len(page["items"]) <= 3
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


async def test_the_audit_log_is_for_admins_only(served: Served) -> None:
    assert (await served.client.get("/api/audit")).status_code == 401
    assert (await served.client.get("/api/audit", headers=bearer(EDITOR_ID, "editor"))).status_code == 403
    assert (await served.client.get("/api/audit", headers=bearer(VIEWER_ID, "viewer"))).status_code == 403


BAD_FILTERS = [
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-01-01T00:00:00"}, "until"),
    ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ({"status": "teapot"}, "status"),
    ({"status": "42"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1000"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIngiXQ"}, "cursor"),  # a valid shape, a non-numeric id
]


async def test_a_bad_audit_filter_is_400_naming_the_field(served: Served) -> None:
    # One app for every case: starting one per case costs more than the cases.
    for params, field in BAD_FILTERS:
        response = await served.client.get("/api/audit", params=params, headers=admin_headers())
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert body["error"] == "bad_request" and field in body["detail"], (params, body)
