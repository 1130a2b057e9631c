"""Logging in and out, what a token must be to be accepted, the login rate limit, the create-user
command, start-up without a secret, the first-run hint, security headers, and secrets kept out
of logs and error bodies."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.http.app import FIRST_RUN_HINT, create_app
from app.http.auth import TokenOwnerCache
from app.security import TokenService
from app.service_settings import ServiceSettings
from devtools.fakes.pexels import FAKE_PEXELS_KEY
from devtools.fakes.serper import FAKE_SERPER_KEY
from devtools.fakes.writer import GraphFakes
from devtools.identities import TEST_PASSWORD, TEST_SECRET, bearer, ensure_user, token_for
from storage.engine import create_engine, session_factory
from storage.users import TokenOwner, UserRepository
from tests.asgi import serve_in_loop
from tests.integration.test_task_api import FAST, POST, point_env_at_fakes, wait_for_status

DRAFTLOOP = Path(sys.executable).parent / "draftloop"
VIEWER_ID = "00000000-0000-4000-8000-0000000000c1"
OTHER_ID = "00000000-0000-4000-8000-0000000000c2"
OTHER_PASSWORD = "another long passphrase"


class LogSink(logging.Handler):
    """Every record, whoever logs it. Litestar configures the root logger when the app starts,
    which drops pytest's caplog handler; this one is attached to named loggers as well as root
    (again after start-up) so that nothing logged during a test escapes the assertion."""

    LOGGERS = ("", "draftloop", "httpx", "tools", "graph", "app", "storage", "litestar", "uvicorn")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        # A record propagates to several of the loggers this sink is on, one right after the
        # other: holding the last one (not its id, which Python reuses) drops the repeats.
        self.last: logging.LogRecord | None = None
        self.levels = {name: logging.getLogger(name).level for name in self.LOGGERS}

    def emit(self, record: logging.LogRecord) -> None:
        if record is not self.last:
            self.last = record
            self.records.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")

    @property
    def text(self) -> str:
        return "\n".join(self.records)

    def attach(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)
            if name:  # DEBUG: a secret logged at any level must show up here
                logger.setLevel(logging.DEBUG)

    def detach(self) -> None:
        for name, level in self.levels.items():
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def logs() -> Iterator[LogSink]:
    sink = LogSink()
    sink.attach()
    try:
        yield sink
    finally:
        sink.detach()


@pytest.fixture
async def app_settings(graph_fakes: GraphFakes, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> ServiceSettings:
    point_env_at_fakes(monkeypatch, graph_fakes, str(tmp_path))
    return ServiceSettings(database_url=migrated_database_url, worker_id="auth-test", **FAST)


@pytest.fixture
async def api(app_settings: ServiceSettings, migrated_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service with one viewer, ``viewer`` / TEST_PASSWORD; no token on the client."""
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    async with serve_in_loop(create_app(app_settings)) as client:
        yield client


async def login(api: httpx.AsyncClient, username: str = "viewer", password: str = TEST_PASSWORD) -> httpx.Response:
    return await api.post("/api/auth/token", data={"username": username, "password": password})


# login and logout --------------------------------------------------------------------------------


async def test_the_right_password_gives_a_bearer_token_that_opens_reads(api: httpx.AsyncClient) -> None:
    response = await login(api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["role"] == "viewer" and body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"], issuer="draftloop")
    assert {"exp", "iat", "jti", "iss", "sub", "role"} <= set(claims)
    assert claims["sub"] == VIEWER_ID and claims["role"] == "viewer"
    reads = await api.get("/api/tasks", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert reads.status_code == 200, reads.text


async def test_login_also_accepts_json(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/auth/token", json={"username": "viewer", "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("username", "password"), [("viewer", "wrong password"), ("nobody", TEST_PASSWORD)])
async def test_a_wrong_password_or_unknown_user_is_401_alike(api: httpx.AsyncClient, username: str, password: str) -> None:
    response = await login(api, username, password)
    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "unauthorized", "detail": "wrong user name or password"}
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("kwargs", "status", "field", "message"), [
    ({}, 400, "body", "is empty; send username and password as form fields or as a JSON object"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "body",
     "is not valid JSON: input data was truncated"),
    ({"json": ["viewer", TEST_PASSWORD]}, 422, "body", "must be a JSON object with username and password, got a list"),
    ({"json": {"password": TEST_PASSWORD}}, 422, "username", "is required"),
    ({"data": {"username": "viewer"}}, 422, "password", "is required"),
    ({"json": {"username": 7, "password": TEST_PASSWORD}}, 422, "username", "must be a non-empty string, got a number"),
    ({"json": {"username": "viewer", "password": True}}, 422, "password", "must be a non-empty string, got a boolean"),
    ({"data": {"username": "viewer", "password": ""}}, 422, "password", "must be a non-empty string, got an empty string"),
])
async def test_a_login_that_cannot_be_read_is_a_4xx_naming_the_field_not_a_401(
        api: httpx.AsyncClient, kwargs: dict[str, Any], status: int, field: str, message: str) -> None:
    response = await api.post("/api/auth/token", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["fields"] == [{"field": field, "message": message}]
    # The value itself is never echoed: a password typed into the wrong field stays unseen.
    assert TEST_PASSWORD not in response.text


async def test_a_logged_out_token_is_refused_and_others_still_work(api: httpx.AsyncClient) -> None:
    first = (await login(api)).json()["access_token"]
    second = (await login(api)).json()["access_token"]
    headers = {"Authorization": f"Bearer {first}"}
    assert (await api.post("/api/auth/logout", headers=headers)).status_code == 200
    refused = await api.get("/api/tasks", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "token revoked"
    assert (await api.get("/api/tasks", headers={"Authorization": f"Bearer {second}"})).status_code == 200


async def test_a_token_revoked_by_another_process_is_refused_once_its_cache_entry_expires(
    app_settings: ServiceSettings, migrated_database_url: str
) -> None:
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    # AUTH_CACHE_SECONDS=0: every request asks the database, as the cache does once its entry is stale.
    async with serve_in_loop(create_app(replace(app_settings, auth_cache_seconds=0))) as api:
        token = (await login(api)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await api.get("/api/tasks", headers=headers)).status_code == 200
        claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"], issuer="draftloop")
        # What another server process's logout writes: only the database knows.
        engine = create_engine(migrated_database_url)
        try:
            async with session_factory(engine).begin() as session:
                await UserRepository(session).revoke(claims["jti"], VIEWER_ID,
                                                     datetime.fromtimestamp(claims["exp"], tz=UTC))
        finally:
            await engine.dispose()
        refused = await api.get("/api/tasks", headers=headers)
    assert refused.status_code == 401 and refused.json()["detail"] == "token revoked"


def test_the_token_owner_cache_answers_within_its_ttl_and_forgets_on_logout() -> None:
    owner = TokenOwner(user_id="u1", name="ann", role="editor", revoked=False)
    cache = TokenOwnerCache(ttl_seconds=60)
    assert cache.get("u1", "j1") == (False, None)
    cache.put("u1", "j1", owner)
    cache.put("u2", "j2", None)  # an unknown user is cached too: no query per forged-but-signed token
    assert cache.get("u1", "j1") == (True, owner)
    assert cache.get("u2", "j2") == (True, None)
    cache.forget("u1", "j1")
    assert cache.get("u1", "j1") == (False, None)
    expired = TokenOwnerCache(ttl_seconds=0)
    expired.put("u1", "j1", owner)
    assert expired.get("u1", "j1") == (False, None)


async def test_login_failures_are_rate_limited_per_client_with_retry_after(api: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await login(api, password="guess")).status_code == 401
    limited = await login(api, password="guess")
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Even the right password waits: the limit stops guessing, not only wrong guesses.
    assert (await login(api)).status_code == 429


async def test_another_users_correct_logins_do_not_reset_the_failures_of_their_address(
        api: httpx.AsyncClient, migrated_database_url: str) -> None:
    # An attacker with an account of their own logs in between guesses at the viewer's password:
    # that used to clear the address's count, so all 16 guesses were checked.
    await ensure_user(migrated_database_url, name="other", role="viewer", user_id=OTHER_ID, password=OTHER_PASSWORD)
    own, guesses = [], []
    for _ in range(16):
        own.append((await login(api, username="other", password=OTHER_PASSWORD)).status_code)
        guesses.append((await login(api, password="guess")).status_code)
    assert guesses == [401] * 5 + [429] * 11
    # Once limited, the address waits whatever it tries, its own account included.
    assert own == [200] * 5 + [429] * 11


async def test_concurrent_wrong_logins_beyond_the_limit_are_refused_before_their_password_is_checked(
        api: httpx.AsyncClient) -> None:
    # The limit used to be checked before the slow password hash and counted after it, so all
    # 15 of these were checked.
    responses = await asyncio.gather(*(login(api, password=f"guess {i}") for i in range(15)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(401) <= 5 and statuses.count(429) >= 10, statuses
    assert set(statuses) == {401, 429}
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"] == "rate_limited"


# bad tokens -------------------------------------------------------------------------------------


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered() -> str:
    header, payload, signature = _segments(token_for(VIEWER_ID, "viewer"))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"  # a viewer promoting itself, signature left as it was
    return ".".join([header, _b64(claims), signature])


def alg_none() -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": VIEWER_ID, "role": "admin", "jti": "x", "iss": "draftloop", "iat": now, "exp": now + 600}
    return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""])


BAD_TOKENS = {
    "tampered signature": (tampered, "invalid token"),
    "expired": (lambda: token_for(VIEWER_ID, "viewer", now=datetime.now(UTC) - timedelta(hours=2), ttl_seconds=60),
                "token expired"),
    "wrong issuer": (lambda: TokenService(TEST_SECRET, issuer="someone-else").issue(VIEWER_ID, "viewer")[0],
                     "token from another issuer"),
    "alg none": (alg_none, "invalid token"),
    "another secret": (lambda: token_for(VIEWER_ID, "viewer", secret="another-secret-" + "z" * 40), "invalid token"),
    "unknown user": (lambda: token_for("00000000-0000-4000-8000-00000000dead", "admin"), "unknown user"),
    "garbage": (lambda: "abc", "invalid token"),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_a_bad_token_is_401_invalid_token(api: httpx.AsyncClient, kind: str) -> None:
    make, detail = BAD_TOKENS[kind]
    response = await api.get("/api/tasks", headers={"Authorization": f"Bearer {make()}"})
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == detail
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_non_bearer_scheme_is_401(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/tasks", headers={"Authorization": "Basic dmlld2VyOnB3"})
    assert response.status_code == 401


async def test_the_stored_role_decides_not_the_role_in_the_token(api: httpx.AsyncClient) -> None:
    # Signed with the real secret but claiming admin for a viewer: still a viewer.
    response = await api.post("/api/tasks", json=POST, headers=bearer(VIEWER_ID, "admin"))
    assert response.status_code == 403


# create-user -------------------------------------------------------------------------------------


async def run_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(DRAFTLOOP), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env)
    output, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, output.decode()


async def test_create_user_with_password_stdin_then_that_user_logs_in(app_settings: ServiceSettings,
                                                                      migrated_database_url: str) -> None:
    code, output = await run_cli("create-user", "alice", "--role", "editor", "--password-stdin",
                                 "--database-url", migrated_database_url, stdin="s3cret-enough-pw\n")
    assert code == 0, output
    assert "s3cret-enough-pw" not in output
    again, output = await run_cli("create-user", "alice", "--password-stdin", "--database-url", migrated_database_url,
                                  stdin="another-password\n")
    assert again == 2 and "already exists" in output
    short, output = await run_cli("create-user", "bob", "--password-stdin", "--database-url", migrated_database_url,
                                  stdin="short\n")
    assert short == 2 and "at least 8" in output
    async with serve_in_loop(create_app(app_settings)) as client:
        response = await client.post("/api/auth/token", data={"username": "alice", "password": "s3cret-enough-pw"})
        assert response.status_code == 200, response.text
        assert response.json()["role"] == "editor"
        token = response.json()["access_token"]
        created = await client.post("/api/tasks", json=POST, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 202, created.text


async def test_create_user_without_a_terminal_or_password_stdin_says_to_use_password_stdin(tmp_path: Path) -> None:
    # stdin is a pipe here, as in a script or CI: there is nobody to prompt.
    env = {**os.environ, "DRAFTLOOP_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    code, output = await run_cli("create-user", "admin", "--role", "admin", stdin="", env=env)
    assert code == 2, output
    assert output == ("draftloop: there is no terminal to ask for the password on: pass it on stdin with "
                      "--password-stdin, e.g. printf '%s\\n' \"$PASSWORD\" | draftloop create-user NAME "
                      "--password-stdin\n")
    assert not await asyncio.to_thread((tmp_path / "draftloop.db").exists)


@pytest.mark.parametrize("source", ["--database-url", "DATABASE_URL"])
async def test_create_user_with_an_unusable_database_url_names_where_it_came_from(tmp_path: Path, source: str) -> None:
    env = {**os.environ, "DRAFTLOOP_DATA_DIR": str(tmp_path), "DATABASE_URL": "nonsense"}
    flag = ["--database-url", "postgres//user:s3cret@db"] if source == "--database-url" else []
    code, output = await run_cli("create-user", "alice", "--password-stdin", *flag, stdin="s3cret-enough-pw\n",
                                 env=env)
    assert code == 2, output
    assert output.startswith(f"draftloop: {source} is not a database URL; use e.g. postgresql+asyncpg://"), output
    # The value is not echoed: a URL carries its password.
    assert "s3cret" not in output and "Traceback" not in output


# start-up ----------------------------------------------------------------------------------------


def test_without_a_secret_the_service_refuses_to_start_outside_dev_mode() -> None:
    with pytest.raises(ValueError, match="DRAFTLOOP_SECRET_KEY"):
        create_app(ServiceSettings(database_url="sqlite+aiosqlite:///unused.db"))
    with pytest.raises(ValueError, match="at least 32"):
        ServiceSettings.from_env({"DRAFTLOOP_SECRET_KEY": "too-short"})


async def test_draftloop_serve_without_a_secret_exits_with_the_reason(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DRAFTLOOP_DATA_DIR": str(tmp_path), "PORT": "1"}
    code, output = await run_cli("serve", env=env)
    assert code == 2, output
    assert "DRAFTLOOP_SECRET_KEY is not set" in output and "DRAFTLOOP_DEV_MODE=1" in output


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_draftloop_serve_and_worker_with_an_unusable_database_url_exit_2_naming_it(
        tmp_path: Path, command: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "DRAFTLOOP_DATA_DIR": str(tmp_path), "PORT": "1", "DRAFTLOOP_DEV_MODE": "1",
           "DATABASE_URL": "nonsense", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    code, output = await run_cli(command, env=env)
    assert code == 2, output
    assert output.startswith("draftloop: DATABASE_URL is not a database URL; use e.g. "), output
    assert "Traceback" not in output


async def test_draftloop_serve_refuses_the_worker_role_and_a_bad_worker_count(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DRAFTLOOP_DATA_DIR": str(tmp_path), "PORT": "1", "DRAFTLOOP_DEV_MODE": "1"}
    code, output = await run_cli("serve", env={**env, "DRAFTLOOP_ROLE": "worker"})
    assert code == 2 and "DRAFTLOOP_ROLE=worker is for `draftloop worker`" in output, output
    code, output = await run_cli("serve", "--workers", "65", env=env)
    assert code == 2 and "--workers must be between 0 and 64" in output, output


async def test_dev_mode_starts_on_a_random_secret_and_says_so(app_settings: ServiceSettings, logs: LogSink) -> None:
    async with serve_in_loop(create_app(replace(app_settings, secret_key="", dev_mode=True))) as client:
        # The test secret is not the one in use: its tokens are refused.
        response = await client.get("/api/tasks", headers=bearer(VIEWER_ID, "viewer"))
    assert response.status_code == 401
    assert "dev mode" in logs.text and "random per-process secret" in logs.text


async def test_first_run_without_users_says_how_to_create_an_admin(app_settings: ServiceSettings,
                                                                  logs: LogSink) -> None:
    async with serve_in_loop(create_app(app_settings)):
        pass
    assert FIRST_RUN_HINT in logs.text
    assert "draftloop create-user admin --role admin" in logs.text


async def test_no_first_run_hint_once_a_user_exists(api: httpx.AsyncClient, app_settings: ServiceSettings,
                                                    logs: LogSink) -> None:
    async with serve_in_loop(create_app(app_settings)):
        pass
    assert "serving with" in logs.text
    assert FIRST_RUN_HINT not in logs.text


# hardening ---------------------------------------------------------------------------------------


async def test_every_response_carries_the_security_headers(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/tasks", "/no/such/route", "/schema/openapi.json"):
        response = await api.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert "strict-transport-security" not in response.headers, path
    assert (await api.get("/health")).headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    # The docs pages run their UI from this origin only (it was loaded from a CDN, with no policy).
    docs_policy = (await api.get("/schema/swagger")).headers["content-security-policy"]
    assert docs_policy.startswith("default-src 'self'; script-src 'self' 'unsafe-inline'")


async def test_hsts_is_sent_only_when_configured(app_settings: ServiceSettings) -> None:
    async with serve_in_loop(create_app(replace(app_settings, hsts_seconds=31536000))) as client:
        response = await client.get("/health")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_metrics_can_be_made_private(app_settings: ServiceSettings, migrated_database_url: str) -> None:
    await ensure_user(migrated_database_url, name="viewer", role="viewer", user_id=VIEWER_ID)
    async with serve_in_loop(create_app(replace(app_settings, public_metrics=False))) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer(VIEWER_ID, "viewer"))).status_code == 200


async def test_secrets_never_reach_logs_or_error_bodies(app_settings: ServiceSettings, migrated_database_url: str,
                                                        logs: LogSink) -> None:
    await ensure_user(migrated_database_url, name="admin", role="admin", user_id=VIEWER_ID)
    bodies: list[str] = []
    async with serve_in_loop(create_app(app_settings)) as client:
        logs.attach()
        token = (await client.post("/api/auth/token", data={"username": "admin", "password": TEST_PASSWORD})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        task = (await client.post("/api/tasks", json=POST, headers=headers)).json()
        done = await wait_for_status(client_with(client, headers), task["id"], "completed", "failed")
        bodies.append(json.dumps(done))
        for response in (
            await client.post("/api/auth/token", data={"username": "admin", "password": TEST_PASSWORD + "x"}),
            # A password typed into the name field must not be logged as a name either.
            await client.post("/api/auth/token", data={"username": TEST_PASSWORD, "password": TEST_PASSWORD}),
            await client.post("/api/tasks", json={"request": 5}, headers=headers),
            await client.post("/api/tasks", content=b"{not json", headers={**headers, "content-type": "application/json"}),
            await client.get("/api/tasks", headers={"Authorization": f"Bearer {token['access_token']}x"}),
        ):
            bodies.append(response.text)
    assert done["status"] == "completed", done
    logged = logs.text
    # The capture works: the run and the failed logins were logged.
    assert "failed login for 'admin'" in logged and "failed login for an unknown user name" in logged
    for secret in (FAKE_SERPER_KEY, FAKE_PEXELS_KEY, TEST_PASSWORD, TEST_SECRET, token["access_token"]):
        assert secret not in logged, f"{secret[:6]}... in the logs"
        assert not any(secret in body for body in bodies), f"{secret[:6]}... in a response"


def client_with(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.AsyncClient:
    client.headers.update(headers)
    return client
