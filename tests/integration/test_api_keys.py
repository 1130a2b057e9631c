"""API keys through the real app on SQLite and Postgres: creating, listing and revoking them,
using them as X-Api-Key and as a bearer credential, their role caps, revocation seen at once by
another app on the same database, expiry, last use, the audit trail, the create-api-key command,
/info's auth flag and the CORS preflight a browser chat UI sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import delete, update

from app.api_keys import KeyUseRecorder
from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_ADMIN_ID, admin_headers, bearer, ensure_user
from storage.api_keys import KeyOwner
from storage.engine import create_engine, session_factory
from storage.models import ApiKey, User
from tests.asgi import serve_in_loop
from tests.integration.test_audit_trail import EDITOR_ID, VIEWER_ID, Served, audit_events
from tests.integration.test_auth import LogSink, run_cli
from tests.integration.test_task_api import FAST, POST, point_env_at_fakes


@pytest.fixture
async def served(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> AsyncIterator[Served]:
    """The app with an admin, an editor and a viewer (test_audit_trail's users)."""
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url)
    await ensure_user(migrated_database_url, name="editor", role="editor", user_id=EDITOR_ID)
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="keys-test", **FAST))
    async with serve_in_loop(app) as client:
        yield Served(client, app)


def editor() -> dict[str, str]:
    return bearer(EDITOR_ID, "editor")


def viewer() -> dict[str, str]:
    return bearer(VIEWER_ID, "viewer")


async def create_key(served: Served, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await served.client.post("/api/keys", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def change_rows(database_url: str, statement: Any) -> None:
    """A write as another process (or an operator) would make it: straight to the database."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            await session.execute(statement)
    finally:
        await engine.dispose()


def key_uses(app: Litestar) -> KeyUseRecorder:
    return app.state["key_uses"]


# using a key ------------------------------------------------------------------------------------


async def test_a_key_opens_the_api_as_x_api_key_and_as_a_bearer_credential(served: Served) -> None:
    created = await create_key(served, editor(), name="chat ui")
    key = created["key"]
    assert key.startswith(created["prefix"] + "_") and created["prefix"].startswith("dl_")
    assert created["role"] == "editor" and created["user"]["name"] == "editor" and created["expires_at"] is None
    for headers in ({"X-Api-Key": key}, {"Authorization": f"Bearer {key}"}):
        assert (await served.client.get("/api/tasks", headers=headers)).status_code == 200
        made = await served.client.post("/threads", json={}, headers=headers)
        assert made.status_code == 200, made.text


async def test_a_bearer_token_wins_over_an_x_api_key_the_sdk_picked_up_elsewhere(served: Served) -> None:
    # The SDKs send LANGSMITH_API_KEY as X-Api-Key on their own: a token sent with it decides.
    response = await served.client.get("/api/tasks", headers={**editor(), "X-Api-Key": "lsv2_pt_not-ours"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("headers", "detail"), [
    ({"X-Api-Key": "dl_00000000_" + "x" * 43}, "invalid API key"),
    ({"Authorization": "Bearer dl_00000000_" + "x" * 43}, "invalid API key"),
    ({"X-Api-Key": "lsv2_pt_0123456789"}, "invalid API key: Draftloop API keys start with dl_"),
    ({"X-Api-Key": ""}, "the X-Api-Key header is empty"),
])
async def test_a_bad_key_is_401_invalid_token_like_a_bad_token(served: Served, headers: dict[str, str],
                                                                detail: str) -> None:
    response = await served.client.get("/api/tasks", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == detail
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_without_any_credential_the_401_names_both_ways_to_send_one(served: Served) -> None:
    response = await served.client.get("/api/tasks")
    assert response.status_code == 401
    assert "X-Api-Key" in response.json()["detail"] and "Bearer" in response.json()["detail"]


async def test_a_key_is_not_logged_out_like_a_token(served: Served) -> None:
    created = await create_key(served, editor())
    response = await served.client.post("/api/auth/logout", headers={"X-Api-Key": created["key"]})
    assert response.status_code == 400
    assert f"DELETE /api/keys/{created['id']}" in response.json()["detail"]


# roles ------------------------------------------------------------------------------------------


async def test_a_key_role_above_the_users_is_refused_with_a_message(served: Served) -> None:
    response = await served.client.post("/api/keys", json={"role": "admin"}, headers=editor())
    assert response.status_code == 403
    assert response.json()["detail"] == "a key of 'editor' may have the editor role or a lower one, not admin"


async def test_a_lower_role_key_acts_with_that_role(served: Served) -> None:
    key = (await create_key(served, editor(), role="viewer"))["key"]
    assert (await served.client.get("/api/tasks", headers={"X-Api-Key": key})).status_code == 200
    refused = await served.client.post("/api/tasks", json=POST, headers={"X-Api-Key": key})
    assert refused.status_code == 403 and refused.json()["detail"] == "needs the editor role; you are viewer"


async def test_a_key_cannot_mint_a_key_above_its_own_role(served: Served) -> None:
    viewer_key = (await create_key(served, admin_headers(), role="viewer"))["key"]
    response = await served.client.post("/api/keys", json={"role": "admin"}, headers={"X-Api-Key": viewer_key})
    assert response.status_code == 403
    # ...nor reach every user's keys, which takes the admin role on the request itself.
    listed = await served.client.get("/api/keys", headers={"X-Api-Key": viewer_key})
    assert {item["user"]["name"] for item in listed.json()["items"]} == {"test-admin"}


async def test_a_demoted_users_keys_are_demoted_at_once(served: Served, migrated_database_url: str) -> None:
    key = (await create_key(served, editor()))["key"]
    assert (await served.client.post("/threads", json={}, headers={"X-Api-Key": key})).status_code == 200
    await change_rows(migrated_database_url, update(User).where(User.id == EDITOR_ID).values(role="viewer"))
    refused = await served.client.post("/threads", json={}, headers={"X-Api-Key": key})
    assert refused.status_code == 403 and refused.json()["detail"] == "needs the editor role; you are viewer"


async def test_a_deleted_users_keys_stop_working(served: Served, migrated_database_url: str) -> None:
    key = (await create_key(served, viewer()))["key"]
    await change_rows(migrated_database_url, delete(User).where(User.id == VIEWER_ID))
    response = await served.client.get("/api/tasks", headers={"X-Api-Key": key})
    assert response.status_code == 401 and response.json()["detail"] == "invalid API key"


# revocation and expiry --------------------------------------------------------------------------


async def test_a_revoked_key_is_refused_at_once_by_another_app_on_the_same_database(
        served: Served, migrated_database_url: str) -> None:
    created = await create_key(served, editor())
    headers = {"X-Api-Key": created["key"]}
    # A second server on the same database, as another process would be; keys are never cached.
    other = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="keys-other", **FAST))
    async with serve_in_loop(other) as other_client:
        assert (await other_client.get("/api/tasks", headers=headers)).status_code == 200
        revoked = await served.client.delete(f"/api/keys/{created['id']}", headers=editor())
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        for client in (other_client, served.client):
            refused = await client.get("/api/tasks", headers=headers)
            assert refused.status_code == 401 and refused.json()["detail"] == "API key revoked"


async def test_revoking_twice_keeps_the_first_revocation_time(served: Served) -> None:
    created = await create_key(served, editor())
    first = await served.client.delete(f"/api/keys/{created['id']}", headers=editor())
    second = await served.client.delete(f"/api/keys/{created['id']}", headers=editor())
    assert second.status_code == 200 and second.json()["revoked_at"] == first.json()["revoked_at"]


async def test_an_expired_key_is_401_saying_so(served: Served, migrated_database_url: str) -> None:
    created = await create_key(served, editor(), expires_days=30)
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    headers = {"X-Api-Key": created["key"]}
    assert (await served.client.get("/api/tasks", headers=headers)).status_code == 200
    await change_rows(migrated_database_url, update(ApiKey).where(ApiKey.id == created["id"])
                      .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = await served.client.get("/api/tasks", headers=headers)
    assert response.status_code == 401 and response.json()["detail"] == "API key expired"


# last use ---------------------------------------------------------------------------------------


async def test_the_last_use_is_recorded_once_per_interval_not_on_every_request(served: Served) -> None:
    created = await create_key(served, editor())
    assert created["last_used_at"] is None
    headers = {"X-Api-Key": created["key"]}
    assert (await served.client.get("/api/tasks", headers=headers)).status_code == 200
    await key_uses(served.app).drain()
    first = (await served.client.get(f"/api/keys/{created['id']}", headers=editor())).json()["last_used_at"]
    assert first is not None
    for _ in range(3):
        assert (await served.client.get("/api/tasks", headers=headers)).status_code == 200
    await key_uses(served.app).drain()
    again = (await served.client.get(f"/api/keys/{created['id']}", headers=editor())).json()["last_used_at"]
    assert again == first


async def test_a_use_is_recorded_again_once_the_interval_passed(served: Served, migrated_database_url: str) -> None:
    created = await create_key(served, editor())
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await change_rows(migrated_database_url, update(ApiKey).where(ApiKey.id == created["id"])
                      .values(last_used_at=long_ago))
    assert (await served.client.get("/api/tasks", headers={"X-Api-Key": created["key"]})).status_code == 200
    await key_uses(served.app).drain()
    stored = (await served.client.get(f"/api/keys/{created['id']}", headers=editor())).json()["last_used_at"]
    assert datetime.fromisoformat(stored) > long_ago + timedelta(minutes=4)


async def test_a_failed_last_use_write_is_logged_and_tried_again_on_the_next_use(tmp_path: Path) -> None:
    # A database that cannot be opened: the write fails in the background, never in a request.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    sink = LogSink()
    sink.attach()
    try:
        recorder = KeyUseRecorder()
        owner = KeyOwner(key_id="k1", key_role="viewer", expires_at=None, revoked_at=None, last_used_at=None,
                         user_id="u1", user_name="ann", user_role="viewer")
        recorder.used(owner, datetime.now(UTC), session_factory(engine))
        await recorder.drain()
        assert "could not record an API key's last use (OperationalError)" in sink.text
        recorder.used(owner, datetime.now(UTC), session_factory(engine))
        await recorder.drain()
        assert sink.text.count("could not record an API key's last use") == 2
    finally:
        sink.detach()
        await engine.dispose()


# who manages which keys -------------------------------------------------------------------------


async def test_listings_never_show_the_key_or_its_hash(served: Served) -> None:
    created = await create_key(served, editor(), name="ci")
    for path in ("/api/keys", f"/api/keys/{created['id']}"):
        response = await served.client.get(path, headers=editor())
        assert response.status_code == 200
        assert created["key"] not in response.text and "hash" not in response.text
    item = (await served.client.get("/api/keys", headers=editor())).json()["items"][0]
    assert set(item) == {"id", "name", "role", "prefix", "user", "created_at", "expires_at", "last_used_at",
                         "revoked_at"}
    assert item["name"] == "ci" and item["prefix"] == created["prefix"]


async def test_a_user_cannot_see_or_revoke_another_users_key_and_an_admin_can(served: Served) -> None:
    editors = await create_key(served, editor())
    viewers = await create_key(served, viewer())
    assert [item["id"] for item in (await served.client.get("/api/keys", headers=viewer())).json()["items"]] == [
        viewers["id"]]
    for method in ("GET", "DELETE"):
        response = await served.client.request(method, f"/api/keys/{editors['id']}", headers=viewer())
        assert response.status_code == 404 and response.json()["detail"] == f"no API key {editors['id']!r}"
    assert (await served.client.get("/api/tasks", headers={"X-Api-Key": editors["key"]})).status_code == 200
    everyone = (await served.client.get("/api/keys", headers=admin_headers())).json()["items"]
    assert {item["id"] for item in everyone} == {editors["id"], viewers["id"]}
    assert (await served.client.delete(f"/api/keys/{editors['id']}", headers=admin_headers())).status_code == 200
    assert (await served.client.get("/api/tasks", headers={"X-Api-Key": editors["key"]})).status_code == 401


async def test_an_admin_creates_a_key_for_another_user_within_that_users_role(served: Served) -> None:
    created = await create_key(served, admin_headers(), user="viewer", name="for viewer")
    assert created["user"]["id"] == VIEWER_ID and created["role"] == "viewer"
    too_high = await served.client.post("/api/keys", json={"user": "viewer", "role": "editor"},
                                        headers=admin_headers())
    assert too_high.status_code == 403 and "viewer role or a lower one" in too_high.json()["detail"]
    not_admin = await served.client.post("/api/keys", json={"user": "viewer"}, headers=editor())
    assert not_admin.status_code == 403
    assert not_admin.json()["detail"] == "only an admin may create API keys for another user"


@pytest.mark.parametrize(("kwargs", "status", "field"), [
    ({"json": {"name": ""}}, 422, "name"),
    ({"json": {"name": "x" * 101}}, 422, "name"),
    ({"json": {"role": "root"}}, 422, "role"),
    ({"json": {"expires_days": 0}}, 422, "expires_days"),
    ({"json": {"expires_days": "30"}}, 422, "expires_days"),
    ({"json": {"expires_days": 3651}}, 422, "expires_days"),
    ({"json": {"user": "nobody"}}, 422, "user"),
    ({"json": {"key": "dl_mine"}}, 422, "key"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "body"),
])
async def test_bad_key_requests_are_4xx_naming_the_field(served: Served, kwargs: dict[str, Any], status: int,
                                                         field: str) -> None:
    headers = {**admin_headers(), **kwargs.pop("headers", {})}
    response = await served.client.post("/api/keys", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert [item["field"] for item in response.json()["fields"]] == [field]


async def test_a_key_with_defaults_needs_no_body(served: Served) -> None:
    response = await served.client.post("/api/keys", headers=viewer())
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "api key" and response.json()["role"] == "viewer"
    assert response.headers["cache-control"] == "no-store"


# audit ------------------------------------------------------------------------------------------


async def test_creation_and_revocation_are_audited_without_the_key(served: Served) -> None:
    created = await create_key(served, editor(), name="audited")
    assert (await served.client.delete(f"/api/keys/{created['id']}", headers=editor())).status_code == 200
    made = await audit_events(served, action="api_key.create")
    revoked = await audit_events(served, action="api_key.revoke")
    assert len(made) == 1 and len(revoked) == 1
    assert made[0]["resource_id"] == created["id"] and made[0]["actor"]["id"] == EDITOR_ID
    assert made[0]["summary"]["after"]["prefix"] == created["prefix"]
    assert revoked[0]["summary"]["before"]["revoked_at"] is None
    assert revoked[0]["summary"]["after"]["revoked_at"] is not None
    everything = json.dumps(await audit_events(served))
    assert created["key"] not in everything and created["key"].split("_")[-1] not in everything


async def test_a_key_never_reaches_the_logs(served: Served) -> None:
    sink = LogSink()
    sink.attach()
    try:
        created = await create_key(served, editor())
        await served.client.get("/api/tasks", headers={"X-Api-Key": created["key"]})
        await served.client.get("/api/tasks", headers={"X-Api-Key": created["key"] + "x"})
        await served.client.delete(f"/api/keys/{created['id']}", headers=editor())
        await key_uses(served.app).drain()
        await served.audit.flush()
    finally:
        sink.detach()
    assert sink.records and created["key"] not in sink.text


async def test_requests_made_with_a_key_are_audited_as_its_user(served: Served) -> None:
    key = (await create_key(served, editor()))["key"]
    made = await served.client.post("/threads", json={}, headers={"X-Api-Key": key})
    [entry] = await audit_events(served, action="thread.create")
    assert entry["actor"] == {"id": EDITOR_ID, "name": "editor", "role": "editor"}
    assert entry["resource_id"] == made.json()["thread_id"]


# the command ------------------------------------------------------------------------------------


async def test_create_api_key_prints_a_working_key_once_and_audits_it(served: Served,
                                                                      migrated_database_url: str) -> None:
    code, output = await run_cli("create-api-key", "editor", "--name", "from cli", "--role", "viewer",
                                 "--expires", "7", "--database-url", migrated_database_url)
    assert code == 0, output
    [key] = [line for line in output.splitlines() if line.startswith("dl_")]
    assert output.count(key) == 1
    response = await served.client.get("/api/tasks", headers={"X-Api-Key": key})
    assert response.status_code == 200
    [listed] = (await served.client.get("/api/keys", headers=editor())).json()["items"]
    assert listed["name"] == "from cli" and listed["role"] == "viewer" and listed["expires_at"] is not None
    [entry] = await audit_events(served, action="api_key.create")
    assert entry["resource_id"] == listed["id"] and entry["method"] == "CLI"
    assert key not in json.dumps(entry)


@pytest.mark.parametrize(("args", "message"), [
    (("nobody",), "no user named 'nobody'"),
    (("viewer", "--role", "admin"), "may have the viewer role or a lower one, not admin"),
    (("viewer", "--expires", "0"), "--expires must be a number of days from 1 to 3650"),
    (("viewer", "--name", " "), "--name must be 1 to 100 characters"),
])
async def test_create_api_key_refuses_bad_input_with_exit_2(served: Served, migrated_database_url: str,
                                                            args: tuple[str, ...], message: str) -> None:
    code, output = await run_cli("create-api-key", *args, "--database-url", migrated_database_url)
    assert code == 2 and message in output and "dl_" not in output


# discovery and browsers -------------------------------------------------------------------------


async def test_info_tells_clients_that_auth_is_required_and_how(served: Served) -> None:
    info = (await served.client.get("/info")).json()
    assert info["flags"]["auth_required"] is True and info["flags"]["assistants"] is True
    assert info["flags"]["langsmith_tracing_session_on_runs"] is False
    assert info["auth"]["api_key_header"] == "X-Api-Key" and info["host"]["host_revision_id"] is None
    assert info["version"] and info["langgraph_py_version"]


async def test_a_chat_ui_origin_may_send_x_api_key(graph_fakes: GraphFakes, migrated_database_url: str,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    settings = ServiceSettings(database_url=migrated_database_url, worker_id="cors-test",
                               cors_origins=("http://localhost:3000",), **FAST)
    async with serve_in_loop(create_app(settings)) as client:
        preflight = await client.options("/threads/search", headers={
            "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key"})
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"x-api-key", "content-type"} <= allowed
        other = await client.options("/threads/search", headers={
            "Origin": "http://evil.test", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key"})
        assert other.status_code == 400


async def test_the_admin_listing_names_each_keys_user(served: Served) -> None:
    await create_key(served, admin_headers())
    [item] = (await served.client.get("/api/keys", headers=admin_headers())).json()["items"]
    assert item["user"] == {"id": TEST_ADMIN_ID, "name": "test-admin"}
