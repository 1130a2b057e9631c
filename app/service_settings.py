"""Service settings: what only the service (HTTP, workers, security, post rendering) uses,
declared once and read through tools/settings_reader.py. app/configuration.py builds them at
start-up together with the graph's, the models' and the database's."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.markdown_renderer import DEFAULT_BUDGET_SECONDS
from app.webhook_settings import WebhookSettings
from tools.settings_reader import (
    Placement,
    Setting,
    bool_setting,
    choice_setting,
    declared,
    float_setting,
    int_setting,
    optional_str_setting,
    read_declared,
    str_setting,
)

MIN_SECRET_LENGTH = 32
# all: serve HTTP and run graphs in one process. api: HTTP only, the graph runs in worker
# processes (`draftloop worker`, or `serve --workers N`), so requests never wait behind graph
# steps on one event loop. worker: runs graphs only (set by `draftloop worker`).
ROLES = ("all", "api", "worker")
DEFAULT_CORS_ORIGIN = "https://smith.langchain.com"


_SERVICE: Placement = {"section": "Service", "read_by": "ServiceSettings"}
_RUNS: Placement = {"section": "Workers and runs", "read_by": "ServiceSettings"}
_SECURITY: Placement = {"section": "Security", "read_by": "ServiceSettings"}
HOST = str_setting("HOST", "127.0.0.1", "Address `draftloop serve` binds (`--host` overrides).", **_SERVICE)
PORT = int_setting("PORT", 8000, "Port `draftloop serve` binds (`--port` overrides).", low=0, high=65535, **_SERVICE)
KEEP_ALIVE_SECONDS = int_setting(
    "KEEP_ALIVE_SECONDS", 75, "How long an idle HTTP keep-alive connection stays open. Keep it above the idle "
    "timeout of the clients and proxies in front (httpx 5 s, load balancers often 60 s): when the server closes "
    "first, a request sent at that moment is lost.", low=1, high=3600, **_SERVICE)
SSE_HEARTBEAT_SECONDS = float_setting(
    "SSE_HEARTBEAT_SECONDS", 15.0, "Idle time before an SSE stream sends a heartbeat comment.", low=0.05, high=300,
    **_SERVICE)
LOG_FORMAT = choice_setting("LOG_FORMAT", "text", ("text", "json"),
                            "`text` or `json`; every record of a run carries its task id.", **_SERVICE)
LOG_LEVEL = str_setting("LOG_LEVEL", "INFO", "Python logging level.", **_SERVICE)

WORKER_CONCURRENCY = int_setting(
    "WORKER_CONCURRENCY", 8, "Graph runs one process drives at once; the rest wait in the database queue.",
    low=1, high=1000, **_RUNS)
WORKERS = int_setting(
    "WORKERS", 0, "Worker processes `draftloop serve` starts and supervises (`--workers`); more than 0 makes the "
    "server itself HTTP only. See [Worker processes](deployment.md#worker-processes).", low=0, high=64, **_RUNS)
WORKER_NICE = int_setting(
    "WORKER_NICE", 10, "Niceness a `draftloop worker` gives itself, so that on a shared machine the API process "
    "gets the CPU first for its short requests. `0` leaves it alone.", low=0, high=19, **_RUNS)
DRAFTLOOP_ROLE = choice_setting(
    "DRAFTLOOP_ROLE", "all", ROLES, "`api`: serve HTTP only and leave graph runs to separately started "
    "`draftloop worker` processes (`--role api`).", **_RUNS)
WORKER_ID = str_setting("WORKER_ID", "", "Lease owner name; must be unique among live processes.",
                        shown_default="host-pid-random", **_RUNS)
LEASE_SECONDS = float_setting(
    "LEASE_SECONDS", 30.0, "How long a claimed task stays owned without a heartbeat; after that another process "
    "may resume it.", low=0.2, high=3600, **_RUNS)
HEARTBEAT_SECONDS = float_setting(
    "HEARTBEAT_SECONDS", 5.0, "How often a worker renews its leases (must be shorter than `LEASE_SECONDS`).",
    low=0.05, high=600, **_RUNS)
MAX_RESUMES = int_setting(
    "MAX_RESUMES", 3, "How many times (0–100) a run that stopped without ending (its worker died, or it lost the "
    "database) is resumed. At the next takeover its task fails with an error that says so. Graceful hand-backs "
    "and approvals do not count.", low=0, high=100, **_RUNS)
QUEUE_POLL_SECONDS = float_setting(
    "QUEUE_POLL_SECONDS", 1.0, "How often a worker looks for queued tasks and SSE followers poll for events "
    "written by other processes. Tasks and events of the same process wake them at once, and on Postgres so do "
    "other processes' (`LISTEN`/`NOTIFY`); on SQLite, `serve --workers` wakes its own workers for queued tasks. "
    "Lower it on SQLite with workers.", low=0.01, high=60, **_RUNS)
CRON_POLL_SECONDS = float_setting(
    "CRON_POLL_SECONDS", 1.0, "How often a worker looks for scheduled runs (crons) whose tick is due. Each due "
    "tick is queued by exactly one process, however many share the database.", low=0.05, high=60, **_RUNS)
SHUTDOWN_GRACE_SECONDS = float_setting(
    "SHUTDOWN_GRACE_SECONDS", 10.0, "On shutdown, how long in-flight runs may finish their current node before "
    "they are stopped and handed back to the queue.", low=0, high=600, **_RUNS)

DRAFTLOOP_SECRET_KEY = str_setting(
    "DRAFTLOOP_SECRET_KEY", "", f"Token signing secret, at least {MIN_SECRET_LENGTH} characters. Required unless "
    "dev mode is on.", shown_default="none", **_SECURITY)
DRAFTLOOP_DEV_MODE = bool_setting(
    "DRAFTLOOP_DEV_MODE", False, "`true` lets the service start without a secret, on a random per-process one "
    "(`make run` sets it).", **_SECURITY)
TOKEN_TTL_SECONDS = int_setting("TOKEN_TTL_SECONDS", 3600, "Lifetime of an access token, in seconds.",
                                low=60, high=7 * 24 * 3600, **_SECURITY)
AUTH_CACHE_SECONDS = float_setting(
    "AUTH_CACHE_SECONDS", 2.0, "How long a process caches what a token resolves to (role, revoked). A logout "
    "applies at once in the process that took it and within this time in the others; `0` asks the database on "
    "every request.", low=0, high=60, **_SECURITY)
PUBLIC_METRICS = bool_setting("PUBLIC_METRICS", True, "`false` makes `/metrics` need a viewer token.", **_SECURITY)
LOGIN_MAX_FAILURES = int_setting(
    "LOGIN_MAX_FAILURES", 5, "Failed logins allowed per client address, and per user name, in "
    "`LOGIN_WINDOW_SECONDS` before 429; logins being checked count. See "
    "[Login rate limit](security.md#login-rate-limit).", low=1, high=1000, **_SECURITY)
LOGIN_WINDOW_SECONDS = float_setting(
    "LOGIN_WINDOW_SECONDS", 60.0, "The window, in seconds, in which `LOGIN_MAX_FAILURES` count.",
    low=1, high=86400, **_SECURITY)
FORWARDED_ALLOW_IPS = optional_str_setting(
    "FORWARDED_ALLOW_IPS", "Comma-separated addresses or networks of the reverse proxies whose `X-Forwarded-For` "
    "gives the client's address (for the login limit and the audit trail), e.g. `127.0.0.1`. Unset: the header "
    "is ignored and the connection's address counts. `*` trusts every client. See "
    "[Behind a proxy](security.md#behind-a-proxy).", **_SECURITY)
HSTS_SECONDS = int_setting(
    "HSTS_SECONDS", 0, "`Strict-Transport-Security` max-age; 0 sends none. Set it only behind TLS.",
    low=0, high=2 * 365 * 24 * 3600, **_SECURITY)
CORS_ORIGINS = str_setting(
    "CORS_ORIGINS", DEFAULT_CORS_ORIGIN, "Comma-separated browser origins allowed to call the API (Studio, a chat "
    "UI), e.g. `https://smith.langchain.com,http://localhost:3000`; they may send `Authorization` and `X-Api-Key`, "
    "and `Location` and `Content-Location` are exposed to them (see [Browsers and "
    "CORS](security.md#browsers-and-cors)).", **_SECURITY)

MARKDOWN_RENDER_SECONDS = float_setting(
    "MARKDOWN_RENDER_SECONDS", DEFAULT_BUDGET_SECONDS, "CPU seconds (0.01–60) a post body may take to render; past "
    "it a write is a 400 naming `markdown` (see [Posts](http-api.md#posts)). Rendering runs in up to two child "
    "processes per server or worker process.", low=0.01, high=60, section="Posts", read_by="ServiceSettings")

SERVICE_SETTINGS: tuple[Setting[Any], ...] = (
    HOST, PORT, KEEP_ALIVE_SECONDS, SSE_HEARTBEAT_SECONDS, LOG_FORMAT, LOG_LEVEL,
    WORKER_CONCURRENCY, WORKERS, WORKER_NICE, DRAFTLOOP_ROLE, WORKER_ID, LEASE_SECONDS, HEARTBEAT_SECONDS,
    MAX_RESUMES, QUEUE_POLL_SECONDS, CRON_POLL_SECONDS, SHUTDOWN_GRACE_SECONDS,
    DRAFTLOOP_SECRET_KEY, DRAFTLOOP_DEV_MODE, TOKEN_TTL_SECONDS, AUTH_CACHE_SECONDS, PUBLIC_METRICS,
    LOGIN_MAX_FAILURES, LOGIN_WINDOW_SECONDS, FORWARDED_ALLOW_IPS, HSTS_SECONDS, CORS_ORIGINS,
    MARKDOWN_RENDER_SECONDS)


@dataclass(frozen=True)
class ServiceSettings:
    host: str = declared(HOST)
    port: int = declared(PORT)
    # How many graph runs one process drives at once; the rest wait in the database queue.
    concurrency: int = declared(WORKER_CONCURRENCY)
    role: str = declared(DRAFTLOOP_ROLE)
    # Worker processes `draftloop serve` starts and supervises; > 0 makes the server itself api-only.
    workers: int = declared(WORKERS)
    # Niceness `draftloop worker` gives itself: graph steps then yield the CPU to the API process,
    # whose requests are short bursts, instead of sharing it evenly (bench/RESULTS.md).
    worker_nice: int = declared(WORKER_NICE)
    lease_seconds: float = declared(LEASE_SECONDS)
    heartbeat_seconds: float = declared(HEARTBEAT_SECONDS)
    poll_seconds: float = declared(QUEUE_POLL_SECONDS)
    cron_poll_seconds: float = declared(CRON_POLL_SECONDS)
    sse_heartbeat_seconds: float = declared(SSE_HEARTBEAT_SECONDS)
    shutdown_grace_seconds: float = declared(SHUTDOWN_GRACE_SECONDS)
    # How often a run may be resumed after it stopped without ending (its worker died, or its
    # lease ran out while the database was away) before its task is failed: a task that kills
    # every worker that runs it, or a database that never stays up, must not loop for ever.
    max_resumes: int = declared(MAX_RESUMES)
    # How long an idle keep-alive connection stays open. Longer than the clients' and proxies'
    # own idle timeouts (httpx 5 s, load balancers often 60 s), so that the client, not the
    # server, closes it: when both close at about the same moment, a request the client just
    # sent on the connection is lost (uvicorn's default is also 5 s).
    keep_alive_seconds: int = declared(KEEP_ALIVE_SECONDS)
    log_format: str = declared(LOG_FORMAT)
    # LOG_LEVEL, in upper case.
    log_level: str = LOG_LEVEL.default
    # WORKER_ID, or host-pid-random when it is unset.
    worker_id: str = ""
    # Resolved by storage.engine.database_url_from_env (app/configuration.py sets it).
    database_url: str | None = None
    # Browser origins allowed to call the API (LangGraph Studio runs in smith.langchain.com).
    cors_origins: tuple[str, ...] = (DEFAULT_CORS_ORIGIN,)
    # JWT signing secret (DRAFTLOOP_SECRET_KEY). repr=False: settings may be logged, this may not.
    secret_key: str = field(default="", repr=False)
    # DRAFTLOOP_DEV_MODE=1 allows starting without a secret: a random one is made per process.
    dev_mode: bool = declared(DRAFTLOOP_DEV_MODE)
    token_ttl_seconds: int = declared(TOKEN_TTL_SECONDS)
    # /metrics without a token (Prometheus scrapers); PUBLIC_METRICS=0 makes it need a viewer.
    public_metrics: bool = declared(PUBLIC_METRICS)
    login_max_failures: int = declared(LOGIN_MAX_FAILURES)
    # How long a token's owner (role, revocation) is cached per process; 0 asks the database
    # on every request. Logouts in the same process apply at once.
    auth_cache_seconds: float = declared(AUTH_CACHE_SECONDS)
    login_window_seconds: float = declared(LOGIN_WINDOW_SECONDS)
    # Strict-Transport-Security max-age; 0 sends none (only turn on behind TLS).
    hsts_seconds: int = declared(HSTS_SECONDS)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses, networks or *).
    # Empty: none are, so a client cannot pick the address the login limit and the audit trail
    # see by sending the header itself.
    forwarded_allow_ips: tuple[str, ...] = ()
    # CPU seconds a post body may take to render (app/markdown_renderer.py).
    markdown_render_seconds: float = declared(MARKDOWN_RENDER_SECONDS)
    # Signed webhooks of ended runs (app/webhook_settings.py).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @property
    def runs_graphs(self) -> bool:
        """Whether this process claims and runs tasks (an api process leaves that to workers)."""
        return self.role != "api" and self.workers == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceSettings:
        """Every setting but the database URL, which storage.engine.database_url_from_env resolves."""
        values = read_declared(cls, env)
        if values["heartbeat_seconds"] >= values["lease_seconds"]:
            raise ValueError("HEARTBEAT_SECONDS must be shorter than LEASE_SECONDS")
        secret = DRAFTLOOP_SECRET_KEY.read(env)
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"DRAFTLOOP_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        return cls(
            **values,
            log_level=LOG_LEVEL.read(env).upper(),
            worker_id=WORKER_ID.read(env) or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            cors_origins=tuple(o.strip().rstrip("/") for o in CORS_ORIGINS.read(env).split(",") if o.strip())
            or (DEFAULT_CORS_ORIGIN,),
            secret_key=secret,
            forwarded_allow_ips=parse_forwarded_allow_ips(FORWARDED_ALLOW_IPS.read(env) or ""),
            webhooks=WebhookSettings.from_env(env),
        )


def parse_forwarded_allow_ips(raw: str) -> tuple[str, ...]:
    """FORWARDED_ALLOW_IPS as a tuple of addresses or networks (or "*"); a typo is a ValueError
    naming it, because uvicorn would quietly trust nobody, or the wrong host."""
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"FORWARDED_ALLOW_IPS must list IP addresses, networks or *, got {entry!r}") from None
    return entries
