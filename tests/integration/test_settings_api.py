"""The settings registry over real SQLite and Postgres: validation, admin-only access, history
with who and when, rollback and reset, and new runs picking up a change without a restart
while a run's own values still win."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar

from app.engine.dispatcher import Dispatcher
from app.engine.run_settings import RunSettings
from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_ADMIN_ID, TEST_ADMIN_NAME, admin_headers, bearer, ensure_user
from tests.asgi import serve_in_loop
from tests.integration.test_task_api import FAST, POST, point_env_at_fakes, wait_for_status

EDITOR_ID = "00000000-0000-4000-8000-0000000000d2"
VIEWER_ID = "00000000-0000-4000-8000-0000000000d1"
KEYS = {"quality_threshold", "max_revisions", "require_approval", "research_enabled", "images_enabled",
        "default_target_words", "search_results", "research_timeout", "model_provider", "model_name",
        "worker_concurrency"}


@dataclass
class Service:
    client: httpx.AsyncClient
    app: Litestar

    @property
    def dispatcher(self) -> Dispatcher:
        return self.app.state["dispatcher"]


@pytest.fixture
async def service(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Any) -> AsyncIterator[Service]:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    await ensure_user(migrated_database_url)
    await ensure_user(migrated_database_url, name="editor", role="editor", user_id=EDITOR_ID)
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    app = create_app(ServiceSettings(database_url=migrated_database_url, worker_id="settings-worker", **FAST))
    async with serve_in_loop(app) as client:
        client.headers.update(admin_headers())
        yield Service(client, app)


async def put(client: httpx.AsyncClient, key: str, value: Any) -> httpx.Response:
    return await client.put(f"/api/settings/{key}", json={"value": value})


async def history(client: httpx.AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/settings/{key}/history", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_shows_every_key_with_its_env_default_type_and_bounds(service: Service) -> None:
    response = await service.client.get("/api/settings")
    assert response.status_code == 200
    items = {item["key"]: item for item in response.json()["items"]}
    assert set(items) == KEYS
    threshold = items["quality_threshold"]
    assert threshold["value"] == threshold["default"] == 70 and threshold["source"] == "env"
    assert (threshold["type"], threshold["minimum"], threshold["maximum"]) == ("integer", 0, 100)
    assert threshold["description"] and threshold["env"] == "QUALITY_THRESHOLD"
    assert items["model_provider"]["value"] == "ollama" and set(items["model_provider"]["enum"]) == {
        "auto", "ollama", "openai", "embedded"}
    assert items["model_name"]["value"] == "llama3.2"
    assert items["worker_concurrency"]["value"] == FAST["concurrency"]


async def test_put_stores_a_value_that_get_then_reports_as_stored(service: Service) -> None:
    response = await put(service.client, "quality_threshold", 85)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["value"] == 85 and body["default"] == 70 and body["source"] == "stored"
    assert body["updated_by"] == {"id": TEST_ADMIN_ID, "name": TEST_ADMIN_NAME}
    again = (await service.client.get("/api/settings/quality_threshold")).json()
    assert again["value"] == 85 and again["source"] == "stored"


@pytest.mark.parametrize(("key", "value", "says"), [
    ("quality_threshold", 101, "between 0 and 100"),
    ("quality_threshold", -1, "between 0 and 100"),
    ("quality_threshold", "80", "must be an integer"),
    ("quality_threshold", 80.5, "must be an integer"),
    ("max_revisions", True, "must be an integer"),
    ("max_revisions", 11, "between 0 and 10"),
    ("worker_concurrency", 0, "between 1 and 1000"),
    ("research_enabled", "yes", "true or false"),
    ("research_timeout", 0, "between 0.1 and 600"),
    ("model_provider", "anthropic", "one of"),
    ("model_name", "llama 3; rm -rf", "may only contain"),
    ("quality_threshold", None, "must be an integer"),
])
async def test_put_rejects_a_bad_value_with_422_naming_the_key_and_bound(
        service: Service, key: str, value: Any, says: str) -> None:
    response = await put(service.client, key, value)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "unprocessable" and key in body["detail"] and says in body["detail"]
    assert body["fields"][0]["field"] == "value"
    assert (await history(service.client, key))["items"] == []


async def test_put_without_a_value_is_422(service: Service) -> None:
    response = await service.client.put("/api/settings/quality_threshold", json={"threshold": 80})
    assert response.status_code == 422
    assert "value" in response.json()["detail"]


async def test_an_openai_provider_is_refused_when_the_environment_has_no_openai_server(service: Service) -> None:
    response = await put(service.client, "model_provider", "openai")
    assert response.status_code == 422
    assert "OPENAI_BASE_URL" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/settings/nope"), ("PUT", "/api/settings/nope"), ("DELETE", "/api/settings/nope"),
    ("GET", "/api/settings/nope/history"), ("POST", "/api/settings/nope/rollback"),
])
async def test_an_unknown_key_is_404(service: Service, method: str, path: str) -> None:
    response = await service.client.request(method, path, json={"value": 1} if method == "PUT" else None)
    assert response.status_code == 404, response.text
    assert "nope" in response.json()["detail"]


ROUTES = [("GET", "/api/settings"), ("GET", "/api/settings/quality_threshold"),
          ("PUT", "/api/settings/quality_threshold"), ("DELETE", "/api/settings/quality_threshold"),
          ("GET", "/api/settings/quality_threshold/history"), ("POST", "/api/settings/quality_threshold/rollback")]


async def test_every_settings_route_is_admin_only(service: Service) -> None:
    for method, path in ROUTES:
        body = {"value": 80} if method == "PUT" else None
        request = service.client.build_request(method, path, json=body)
        del request.headers["authorization"]
        anonymous = await service.client.send(request)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for user_id, role in ((EDITOR_ID, "editor"), (VIEWER_ID, "viewer")):
            response = await service.client.request(method, path, json=body, headers=bearer(user_id, role))
            assert response.status_code == 403, (method, path, role, response.text)
            assert "admin" in response.json()["detail"]
    assert (await history(service.client, "quality_threshold"))["items"] == []


async def test_history_records_who_when_old_and_new_newest_first(service: Service) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    await put(service.client, "quality_threshold", 80)
    await put(service.client, "quality_threshold", 85)
    await put(service.client, "max_revisions", 1)
    items = (await history(service.client, "quality_threshold"))["items"]
    assert [(i["action"], i["old_value"], i["new_value"]) for i in items] == [("set", 80, 85), ("set", None, 80)]
    assert items[1]["old_source"] == "env" and items[1]["new_source"] == "stored"
    assert all(i["user"] == {"id": TEST_ADMIN_ID, "name": TEST_ADMIN_NAME} for i in items)
    assert all(before <= datetime.fromisoformat(i["at"]) <= datetime.now(UTC) for i in items)
    assert items[0]["id"] > items[1]["id"]

    first = await history(service.client, "quality_threshold", limit=1)
    assert [i["new_value"] for i in first["items"]] == [85] and first["next_cursor"]
    second = await history(service.client, "quality_threshold", limit=1, cursor=first["next_cursor"])
    assert [i["new_value"] for i in second["items"]] == [80] and second["next_cursor"] is None
    for cursor in ("x", "99999999999999999999999", "-1"):
        bad = await service.client.get("/api/settings/quality_threshold/history", params={"cursor": cursor})
        assert bad.status_code == 400, cursor


async def test_rollback_restores_the_previous_value_and_is_itself_in_history(service: Service) -> None:
    await put(service.client, "quality_threshold", 80)
    await put(service.client, "quality_threshold", 85)
    response = await service.client.post("/api/settings/quality_threshold/rollback")
    assert response.status_code == 200, response.text
    assert response.json()["value"] == 80 and response.json()["source"] == "stored"
    items = (await history(service.client, "quality_threshold"))["items"]
    assert (items[0]["action"], items[0]["old_value"], items[0]["new_value"]) == ("rollback", 85, 80)
    assert items[0]["user"]["name"] == TEST_ADMIN_NAME


async def test_rollback_to_a_history_entry_restores_the_value_it_set(service: Service) -> None:
    await put(service.client, "quality_threshold", 80)
    await put(service.client, "quality_threshold", 85)
    await put(service.client, "quality_threshold", 90)
    first_set = (await history(service.client, "quality_threshold"))["items"][-1]
    response = await service.client.post("/api/settings/quality_threshold/rollback", json={"to": first_set["id"]})
    assert response.status_code == 200 and response.json()["value"] == 80


async def test_rollback_past_the_first_change_returns_to_the_env_default(service: Service) -> None:
    await put(service.client, "quality_threshold", 80)
    response = await service.client.post("/api/settings/quality_threshold/rollback", json={})
    assert response.status_code == 200
    assert response.json()["value"] == 70 and response.json()["source"] == "env"
    latest = (await history(service.client, "quality_threshold"))["items"][0]
    assert (latest["action"], latest["old_value"], latest["new_value"]) == ("rollback", 80, None)


async def test_rollback_of_a_never_changed_key_is_409(service: Service) -> None:
    response = await service.client.post("/api/settings/max_revisions/rollback")
    assert response.status_code == 409
    assert "never been changed" in response.json()["detail"]


async def test_rollback_to_an_entry_of_another_key_is_404(service: Service) -> None:
    await put(service.client, "max_revisions", 1)
    await put(service.client, "quality_threshold", 80)
    other = (await history(service.client, "max_revisions"))["items"][0]["id"]
    response = await service.client.post("/api/settings/quality_threshold/rollback", json={"to": other})
    assert response.status_code == 404
    # Past the 64-bit ids a history holds: refused as input, before any lookup.
    beyond = await service.client.post("/api/settings/quality_threshold/rollback", json={"to": 2**70})
    assert beyond.status_code == 400 and beyond.json()["fields"][0]["field"] == "to"
    bad = await service.client.post("/api/settings/quality_threshold/rollback", json={"to": "latest"})
    assert bad.status_code == 422
    assert bad.json()["fields"] == [{"field": "to", "message": 'must be an integer between 1 and 9223372036854775807, got the string "latest"'}]


async def test_reset_returns_to_the_default_and_is_recorded(service: Service) -> None:
    await put(service.client, "research_enabled", False)
    response = await service.client.delete("/api/settings/research_enabled")
    assert response.status_code == 200
    assert response.json()["value"] is True and response.json()["source"] == "env"
    latest = (await history(service.client, "research_enabled"))["items"][0]
    assert (latest["action"], latest["old_value"], latest["new_value"]) == ("reset", False, None)
    # Nothing stored any more: a second reset changes nothing and records nothing.
    await service.client.delete("/api/settings/research_enabled")
    assert len((await history(service.client, "research_enabled"))["items"]) == 2


async def test_a_new_run_uses_a_changed_threshold_without_a_restart(service: Service, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [85]
    before = await wait_for_status(service.client, (await service.client.post("/api/tasks", json=POST)).json()["id"],
                                   "completed")
    assert before["result"]["passed"] is True and before["result"]["attempts"] == 1

    assert (await put(service.client, "quality_threshold", 95)).status_code == 200
    after = await wait_for_status(service.client, (await service.client.post("/api/tasks", json=POST)).json()["id"],
                                  "completed")
    # The judge's 85 with perfect checks makes 91: no longer enough, so the default two
    # revisions are spent and the run ends below the threshold.
    assert after["result"]["passed"] is False and after["result"]["attempts"] == 3

    await put(service.client, "max_revisions", 0)
    capped = await wait_for_status(service.client, (await service.client.post("/api/tasks", json=POST)).json()["id"],
                                   "completed")
    assert capped["result"]["passed"] is False and capped["result"]["attempts"] == 1


async def test_a_task_field_beats_the_registry_default_for_approval(service: Service) -> None:
    await put(service.client, "require_approval", True)
    defaulted = (await service.client.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(service.client, defaulted, "awaiting_approval")
    explicit = (await service.client.post("/api/tasks", json={**POST, "require_approval": False})).json()["id"]
    task = await wait_for_status(service.client, explicit, "completed", "awaiting_approval")
    assert task["status"] == "completed"


async def test_a_run_context_threshold_beats_the_registry(service: Service, graph_fakes: GraphFakes) -> None:
    graph_fakes.writer.scores = [85]
    await put(service.client, "quality_threshold", 95)
    await put(service.client, "max_revisions", 0)
    body = {"assistant_id": "draftloop", "input": {"messages": [{"role": "user", "content": POST["request"]}]}}
    registry = await service.client.post("/runs/wait", json=body)
    assert registry.status_code == 200, registry.text
    assert registry.json()["result"]["passed"] is False
    own = await service.client.post("/runs/wait", json={**body, "context": {"quality_threshold": 80}})
    assert own.json()["result"]["passed"] is True


async def test_a_model_change_reaches_new_runs_and_reuses_one_provider(service: Service, graph_fakes: GraphFakes) -> None:
    graph_fakes.ollama.models.append("qwen2.5:latest")
    await put(service.client, "model_name", "qwen2.5")
    for _ in range(2):
        task_id = (await service.client.post("/api/tasks", json=POST)).json()["id"]
        task = await wait_for_status(service.client, task_id, "completed")
        assert task["model"] == {"provider": "ollama", "name": "qwen2.5"}
    run_settings = service.dispatcher.run_settings
    assert run_settings.provider_for("ollama", "qwen2.5") is run_settings.provider_for("ollama", "qwen2.5")
    assert len(run_settings._models) == 1
    # Back to the environment's model: the runtime's own provider, no new one.
    await service.client.delete("/api/settings/model_name")
    assert run_settings.provider_for("ollama", "llama3.2") is service.app.state["runtime"].deps.models


async def test_the_dispatcher_claims_up_to_the_current_concurrency(service: Service) -> None:
    assert service.dispatcher.concurrency == FAST["concurrency"]
    await put(service.client, "worker_concurrency", 2)
    task_id = (await service.client.post("/api/tasks", json=POST)).json()["id"]
    await wait_for_status(service.client, task_id, "completed")
    assert service.dispatcher.concurrency == 2


async def test_another_process_sees_a_change_once_its_cache_expires(service: Service) -> None:
    runtime = service.app.state["runtime"]
    # A second reader over the same database stands in for another server process.
    other = RunSettings(runtime.sessions, runtime.deps, ServiceSettings(**FAST), ttl_seconds=0.3)
    assert (await other.values())["quality_threshold"] == 70
    await put(service.client, "quality_threshold", 80)
    assert (await other.values())["quality_threshold"] == 70  # still inside its cache window
    await asyncio.sleep(0.35)
    assert (await other.values())["quality_threshold"] == 80
