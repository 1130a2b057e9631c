"""create_app(): the Litestar service, with a lifespan that owns every shared resource."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.plugins.pydantic import PydanticPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api_keys import KeyUseRecorder
from app.audit_log import AuditLog, database_sink
from app.configuration import Configuration
from app.engine.services import open_run_services
from app.graph_runtime import open_graph_runtime
from app.http.api_keys import ApiKeyController
from app.http.assistant_routes import AssistantChangeController
from app.http.assistants import AssistantController, InfoController
from app.http.audit_middleware import audit_middleware
from app.http.audit_routes import AuditController
from app.http.auth import (
    AuthController,
    TokenOwnerCache,
    access_guard,
    authentication_middleware,
    security_headers,
)
from app.http.crons import CronController
from app.http.errors import EXCEPTION_HANDLERS
from app.http.input_guard import reject_unsafe_input
from app.http.ops import OpsController
from app.http.posts import PostController
from app.http.run_extras import RunExtrasController
from app.http.runs import RunController
from app.http.schema_docs import docs_page, openapi_config, openapi_json, schema_assets_router
from app.http.settings_routes import SettingsController
from app.http.store import StoreController
from app.http.tasks import TaskController
from app.http.thread_extras import ThreadExtrasController
from app.http.threads import ThreadController
from app.http.webhook_routes import WebhookController
from app.metrics import Metrics
from app.security import LoginRateLimiter, TokenService
from app.service_settings import ServiceSettings
from app.supervisor import WorkerSupervisor
from graph.configuration import PipelineSettings
from storage.engine import database_url_from_env
from storage.users import UserRepository

log = logging.getLogger("draftloop")


def _state(name: str) -> Any:
    async def provide(state: State) -> Any:
        return state[name]

    return Provide(provide)


def _value(value: Any) -> Provide:
    async def provide() -> Any:
        return value

    return Provide(provide)


async def _sessions(state: State) -> async_sessionmaker[AsyncSession]:
    return state["runtime"].sessions


async def _read_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    runtime = state["runtime"]
    return runtime.read_sessions or runtime.sessions


def timing_middleware(metrics: Metrics) -> Any:
    """Observes every HTTP request's latency by method, route template and status."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = {"code": 500}

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    # Streams (SSE) last as long as the client stays; their latency is time to headers.
                    observe()
                await send(message)

            observed = {"done": False}

            def observe() -> None:
                if observed["done"]:
                    return
                observed["done"] = True
                # The full template (/api/tasks/{task_id:str}); handler.paths lacks the controller's prefix.
                route = scope.get("path_template") or "unmatched"
                metrics.http_seconds.labels(scope["method"], route, str(status["code"])).observe(
                    time.perf_counter() - started)

            try:
                await app(scope, receive, capture)
            finally:
                observe()

        return middleware

    return factory


async def allow_private_network(message: Message, scope: Scope) -> None:
    """Answers Chrome's Private Network Access preflight: a page on a public origin (Studio)
    calling a server on localhost sends ``Access-Control-Request-Private-Network: true`` and
    needs ``Access-Control-Allow-Private-Network: true`` back besides the usual CORS headers.
    A before-send hook, because the CORS middleware answers preflights ahead of any route
    middleware."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    if any(name == b"access-control-request-private-network" and value.lower() == b"true"
           for name, value in scope.get("headers", [])):
        message["headers"] = [*message.get("headers", []), (b"access-control-allow-private-network", b"true")]


FIRST_RUN_HINT = ("no users yet: every API route needs a token. Create an admin with "
                  "`draftloop create-user admin --role admin` (it prompts for the password; in a script "
                  "add --password-stdin and pipe it in), then log in with POST /api/auth/token")


def resolve_secret(settings: ServiceSettings) -> ServiceSettings:
    """The settings with a signing secret, or ValueError: without DRAFTLOOP_SECRET_KEY only dev
    mode may start, on a random per-process secret (tokens die with the process)."""
    if settings.secret_key:
        return settings
    if not settings.dev_mode:
        raise ValueError("DRAFTLOOP_SECRET_KEY is not set (at least 32 characters, e.g. "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`); "
                         "or set DRAFTLOOP_DEV_MODE=1 to run with a random per-process secret")
    log.warning("dev mode: DRAFTLOOP_SECRET_KEY is not set, signing tokens with a random per-process "
                "secret; tokens stop working when this process exits and other processes refuse them")
    return replace(settings, secret_key=secrets.token_urlsafe(48))


def create_app(settings: ServiceSettings | None = None, pipeline: PipelineSettings | None = None) -> Litestar:
    """The service. `draftloop serve` hands over what app.configuration built; what is not handed
    over (an ASGI server importing this factory, tests) is read from the environment here, at
    the service's start-up."""
    if settings is None:
        config = Configuration.from_env(os.environ)
        settings, pipeline = config.service, pipeline or config.pipeline
    elif settings.database_url is None:
        settings = replace(settings, database_url=database_url_from_env(os.environ))
    settings = resolve_secret(settings)
    if pipeline is None:
        pipeline = PipelineSettings.from_env(os.environ)
    database_url = settings.database_url
    assert database_url is not None  # resolved above
    metrics = Metrics()
    tokens = TokenService(settings.secret_key, ttl_seconds=settings.token_ttl_seconds)
    login_limiter = LoginRateLimiter(settings.login_max_failures, settings.login_window_seconds)
    token_owners = TokenOwnerCache(settings.auth_cache_seconds)
    key_uses = KeyUseRecorder()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The audit log closes after the run services (so it flushes what they and the last
        # requests recorded) and before the runtime disposes of the engine it writes with.
        # API keys' last-use writes in flight end before the engine they write with is disposed.
        async with (open_graph_runtime(database_url, pipeline, settings.markdown_render_seconds) as runtime,
                    AuditLog(database_sink(runtime.sessions)) as audit, key_uses):
            async with runtime.sessions() as session:
                if await UserRepository(session).count() == 0:
                    log.warning(FIRST_RUN_HINT)
            workers = WorkerSupervisor(settings, runtime.database_url)
            # Entered after the run services, so that it stops (and its workers hand back their
            # runs) while this process's bus still wakes the followers.
            async with (open_run_services(runtime, settings, listener=metrics.observe_event,
                                          wake_others=workers.wake if workers.wake_pipe else None) as services,
                        workers):
                # Controllers get the narrow services (commands, run settings, running runs);
                # the dispatcher itself is for the shutdown signal (app/cli/serve.py).
                app.state.update(runtime=runtime, bus=services.bus, dispatcher=services.dispatcher,
                                 commands=services.commands, run_settings=services.run_settings,
                                 running=services.dispatcher, metrics=metrics, settings=settings, workers=workers,
                                 audit=audit, key_uses=key_uses)
                info = await runtime.deps.models.describe()
                log.info("serving with %s model %s on %s", info.provider, info.model,
                         runtime.database_url.split("@")[-1])
                yield

    return Litestar(
        route_handlers=[AuthController, ApiKeyController, TaskController, OpsController, InfoController,
                        AssistantController, AssistantChangeController, ThreadController, ThreadExtrasController,
                        RunController, RunExtrasController, CronController, AuditController, SettingsController,
                        PostController, StoreController, WebhookController, schema_assets_router(), openapi_json,
                        docs_page],
        lifespan=[lifespan],
        dependencies={
            "runtime": _state("runtime"),
            "bus": _state("bus"),
            "commands": _state("commands"),
            "run_settings": _state("run_settings"),
            "running": _state("running"),
            "metrics": _state("metrics"),
            "settings": _state("settings"),
            "workers": _state("workers"),
            "sessions": Provide(_sessions),
            "read_sessions": Provide(_read_sessions),
            "tokens": _value(tokens),
            "login_limiter": _value(login_limiter),
            "token_owners": _value(token_owners),
        },
        # App-level, so that every route, including any added later, is closed unless marked public.
        guards=[access_guard(settings.public_metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        # Strict: a JSON value of another type is refused, not coerced ("300" is no integer,
        # true is no 1). Here, because Litestar passes its own strict flag to model_validate,
        # which overrides the models' configuration.
        plugins=[PydanticPlugin(validate_strict=True)],
        middleware=[timing_middleware(metrics), authentication_middleware(tokens, token_owners, key_uses), audit_middleware()],
        before_send=[allow_private_network, security_headers(settings)],
        # Input that would fail below validation (text Postgres cannot store, JSON nested past
        # the decoders' recursion) is a 400 naming the field, on every route.
        before_request=reject_unsafe_input,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            # "*": a preflight from an allowed origin gets back the headers it asks for, which a
            # browser needs spelled out with credentials: Authorization, and X-Api-Key from a chat UI.
            allow_headers=["*"],
            # The SDK reads these to reconnect to a stream and to learn a new run's id.
            expose_headers=["Location", "Content-Location", "X-Pagination-Next", "X-Pagination-Total"],
            allow_credentials=True,
            max_age=600,
        ),
        openapi_config=openapi_config(),
        request_max_body_size=1_048_576,
        debug=False,
        # Logging is configured once by the CLI (text or JSON, with task ids); Litestar's default
        # config would replace those handlers.
        logging_config=None,
    )
