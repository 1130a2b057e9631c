"""Every route the app serves, read from its own route table, against no token, a viewer token
and (for writes) an editor token: a route added later lands in this matrix without anyone
remembering to list it, and fails here if it is open by accident.

The expectations are written out independently of app/http/auth.py: which paths are public and
which POSTs only read are listed here, so a guard that drifts from the intended policy fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from litestar.routes import HTTPRoute

from app.http.app import create_app
from app.service_settings import ServiceSettings
from devtools.identities import TEST_SECRET, bearer, ensure_user
from storage.migrate import upgrade_database
from tests.asgi import serve_in_loop

# The async tests share one module-wide app (its fixture lives in the module's loop); the
# sync ones only read the route table.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/ok", "/info", "/api/auth/token", "/openapi.json", "/docs"}
# Public for GET alone: anyone reads published posts (the handler hides drafts from anonymous
# callers, see test_posts_api.py); every other method on these paths stays protected below.
PUBLIC_READS = {("/api/posts", "GET"), ("/api/posts/{post_id:str}", "GET"), ("/api/posts/by-slug/{slug:str}", "GET")}
# POSTs that only query: a viewer may make them.
READ_ONLY_POSTS = {"/threads/search", "/threads/count", "/assistants/search", "/assistants/count",
                   "/assistants/{assistant_id:str}/versions",
                   "/threads/{thread_id:str}/history", "/threads/{thread_id:str}/state/checkpoint",
                   "/store/items/search", "/store/namespaces", "/runs/crons/search", "/runs/crons/count"}
# Any signed-in user, whatever the role: logging out, and managing one's own API keys.
ANY_USER = {"/api/auth/logout", "/api/keys", "/api/keys/{key_id:str}"}
# Admins only, reads included: every route under these.
ADMIN_ONLY_PREFIXES = ("/api/audit", "/api/settings", "/api/webhooks")
VIEWER_ID = "00000000-0000-4000-8000-0000000000b1"
EDITOR_ID = "00000000-0000-4000-8000-0000000000b2"
ADMIN_ID = "00000000-0000-4000-8000-0000000000b3"


def _route_table() -> list[tuple[str, str]]:
    # Never started: only its routes are read, so the URL is not opened.
    app = create_app(ServiceSettings(database_url="sqlite+aiosqlite:///unused.db", secret_key=TEST_SECRET))
    pairs = {(route.path, method) for route in app.routes if isinstance(route, HTTPRoute)
             for handler in route.route_handlers for method in handler.http_methods}
    return sorted(pairs)


ROUTES = _route_table()


def is_public(path: str, method: str) -> bool:
    return (path in PUBLIC_PATHS or (path, method) in PUBLIC_READS or path == "/schema" or path.startswith("/schema/")
            or method == "OPTIONS")


def is_admin_only(path: str, method: str) -> bool:
    return not is_public(path, method) and any(path == p or path.startswith(p + "/") for p in ADMIN_ONLY_PREFIXES)


def is_read(path: str, method: str) -> bool:
    return method in {"GET", "HEAD"} or (method == "POST" and path in READ_ONLY_POSTS) or path in ANY_USER


def concrete(path: str) -> str:
    """A request path for a route template: every parameter an id that exists nowhere."""
    return re.sub(r"\{[^}:]+:[^}]+\}", lambda _: str(uuid.uuid4()), path)


@dataclass
class Served:
    client: httpx.AsyncClient
    viewer: dict[str, str]
    editor: dict[str, str]
    admin: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('matrix') / 'draftloop.db'}"
    with pytest.MonkeyPatch.context() as env:
        # /ready asks the model provider: point it at a closed port so it answers at once.
        env.setenv("LLM_PROVIDER", "ollama")
        env.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9")
        env.setenv("DRAFTLOOP_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        await upgrade_database(url)
        await ensure_user(url, name="viewer", role="viewer", user_id=VIEWER_ID)
        await ensure_user(url, name="editor", role="editor", user_id=EDITOR_ID)
        await ensure_user(url, name="admin", role="admin", user_id=ADMIN_ID)
        app = create_app(ServiceSettings(database_url=url, secret_key=TEST_SECRET, poll_seconds=0.05,
                                         sse_heartbeat_seconds=0.2, shutdown_grace_seconds=0.5))
        async with serve_in_loop(app) as client:
            yield Served(client, bearer(VIEWER_ID, "viewer"), bearer(EDITOR_ID, "editor"), bearer(ADMIN_ID, "admin"))


async def call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    kwargs: dict[str, object] = {"headers": headers or {}}
    if method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = {}
    return await client.request(method, concrete(path), timeout=10, **kwargs)  # type: ignore[arg-type]


def test_the_route_table_covers_every_api_surface() -> None:
    prefixes = {path.split("/")[1] for path, _ in ROUTES}
    assert {"api", "threads", "runs", "assistants", "store", "schema", "health"} <= prefixes
    assert len(ROUTES) > 50


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if not is_public(*r)], ids=lambda v: str(v))
@in_module_loop
async def test_a_protected_route_answers_401_without_a_token(served: Served, path: str, method: str) -> None:
    response = await call(served.client, method, path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["error"] == "unauthorized" and body["detail"]


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if not is_public(*r)], ids=lambda v: str(v))
@in_module_loop
async def test_a_protected_route_answers_401_to_a_garbage_token(served: Served, path: str, method: str) -> None:
    response = await call(served.client, method, path, {"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if not is_public(*r) and not is_read(*r)],
                         ids=lambda v: str(v))
@in_module_loop
async def test_a_write_route_answers_403_to_a_viewer(served: Served, path: str, method: str) -> None:
    response = await call(served.client, method, path, served.viewer)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if not is_public(*r) and is_read(*r)
                                             and not is_admin_only(*r)],
                         ids=lambda v: str(v))
@in_module_loop
async def test_a_read_route_lets_a_viewer_through(served: Served, path: str, method: str) -> None:
    # Logging out revokes the token it is sent with: not the shared one.
    headers = bearer(VIEWER_ID, "viewer") if path in ANY_USER else served.viewer
    response = await call(served.client, method, path, headers)
    # Past the guard: the made-up ids then give 404 (or a validation error), never 401/403.
    assert response.status_code not in (401, 403), response.text


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if not is_public(*r) and not is_read(*r)
                                             and not is_admin_only(*r)],
                         ids=lambda v: str(v))
@in_module_loop
async def test_a_write_route_lets_an_editor_through(served: Served, path: str, method: str) -> None:
    response = await call(served.client, method, path, served.editor)
    assert response.status_code not in (401, 403), response.text


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if is_admin_only(*r)], ids=lambda v: str(v))
@in_module_loop
async def test_an_admin_only_route_answers_403_to_a_viewer_and_an_editor(served: Served, path: str, method: str) -> None:
    for headers in (served.viewer, served.editor):
        response = await call(served.client, method, path, headers)
        assert response.status_code == 403, response.text
    response = await call(served.client, method, path, served.admin)
    assert response.status_code not in (401, 403), response.text


def test_the_admin_only_routes_exist() -> None:
    # A prefix that matches nothing would make the admin rows above silently vanish.
    for prefix in ADMIN_ONLY_PREFIXES:
        assert any(is_admin_only(*route) and route[0].startswith(prefix) for route in ROUTES), prefix


def test_the_public_post_reads_exist_and_post_writes_stay_protected() -> None:
    # A renamed route would otherwise drop out of PUBLIC_READS unnoticed.
    assert PUBLIC_READS <= set(ROUTES)
    writes = {(path, method) for path, method in ROUTES if path.startswith("/api/posts") and method not in {"GET", "OPTIONS"}}
    assert {("/api/posts", "POST"), ("/api/posts/{post_id:str}", "PATCH"), ("/api/posts/{post_id:str}", "DELETE")} <= writes
    assert not any(is_public(*route) for route in writes)


@pytest.mark.parametrize(("path", "method"), [r for r in ROUTES if is_public(*r)], ids=lambda v: str(v))
@in_module_loop
async def test_a_public_route_answers_without_a_token(served: Served, path: str, method: str) -> None:
    response = await call(served.client, method, path)
    assert response.status_code not in (401, 403) or path == "/api/auth/token", response.text
    if path == "/api/auth/token" and method == "POST":
        # Reached the handler: it asks for credentials (a 422 naming the first one missing from
        # the empty body), it does not ask for a token.
        assert response.status_code == 422 and response.json()["fields"][0]["field"] == "username", response.text


def test_the_thread_and_run_extras_are_writes_for_editors_and_their_reads_for_viewers() -> None:
    # Prune names the threads it deletes, so it deletes nothing an editor could not delete one
    # by one; bulk cancel likewise: editor routes, not admin ones.
    writes = {("/threads/prune", "POST"), ("/threads/{thread_id:str}/copy", "POST"), ("/runs", "POST"),
              ("/runs/batch", "POST"), ("/runs/cancel", "POST"), ("/threads/{thread_id:str}/runs/{run_id:str}", "DELETE")}
    reads = {("/threads/{thread_id:str}/history", "GET"), ("/threads/{thread_id:str}/stream", "GET")}
    assert writes | reads <= set(ROUTES)
    assert not any(is_public(*route) or is_read(*route) or is_admin_only(*route) for route in writes)
    assert all(is_read(*route) and not is_admin_only(*route) for route in reads)
