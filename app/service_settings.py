"""Service settings, read once at start-up from the environment and an optional `.env` file.

Graph, model and client settings keep their own `from_env` readers (graph/configuration.py,
tools/llm/settings.py, tools/serper.py, tools/pexels.py); this module holds what only the service uses.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graph.configuration import read_bool, read_float, read_int

MIN_SECRET_LENGTH = 32
# all: serve HTTP and run graphs in one process. api: HTTP only, the graph runs in worker
# processes (`draftloop worker`, or `serve --workers N`), so requests never wait behind graph
# steps on one event loop. worker: runs graphs only (set by `draftloop worker`).
ROLES = ("all", "api", "worker")


def load_dotenv(path: Path = Path(".env")) -> None:
    """KEY=VALUE lines into os.environ; variables already set win, so the shell overrides."""
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        os.environ.setdefault(key, value.strip().strip('"').strip("'"))


@dataclass(frozen=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # How many graph runs one process drives at once; the rest wait in the database queue.
    concurrency: int = 8
    role: str = "all"
    # Worker processes `draftloop serve` starts and supervises; > 0 makes the server itself api-only.
    workers: int = 0
    # Niceness `draftloop worker` gives itself: graph steps then yield the CPU to the API process,
    # whose requests are short bursts, instead of sharing it evenly (bench/RESULTS.md).
    worker_nice: int = 10
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    poll_seconds: float = 1.0
    sse_heartbeat_seconds: float = 15.0
    shutdown_grace_seconds: float = 10.0
    # How often a run may be resumed after it stopped without ending (its worker died, or its
    # lease ran out while the database was away) before its task is failed: a task that kills
    # every worker that runs it, or a database that never stays up, must not loop for ever.
    max_resumes: int = 3
    # How long an idle keep-alive connection stays open. Longer than the clients' and proxies'
    # own idle timeouts (httpx 5 s, load balancers often 60 s), so that the client, not the
    # server, closes it: when both close at about the same moment, a request the client just
    # sent on the connection is lost (uvicorn's default is also 5 s).
    keep_alive_seconds: int = 75
    log_format: str = "text"
    log_level: str = "INFO"
    worker_id: str = ""
    database_url: str | None = None
    # Browser origins allowed to call the API (LangGraph Studio runs in smith.langchain.com).
    cors_origins: tuple[str, ...] = ("https://smith.langchain.com",)
    # JWT signing secret (DRAFTLOOP_SECRET_KEY). repr=False: settings may be logged, this may not.
    secret_key: str = field(default="", repr=False)
    # DRAFTLOOP_DEV_MODE=1 allows starting without a secret: a random one is made per process.
    dev_mode: bool = False
    token_ttl_seconds: int = 3600
    # /metrics without a token (Prometheus scrapers); PUBLIC_METRICS=0 makes it need a viewer.
    public_metrics: bool = True
    login_max_failures: int = 5
    # How long a token's owner (role, revocation) is cached per process; 0 asks the database
    # on every request. Logouts in the same process apply at once.
    auth_cache_seconds: float = 2.0
    login_window_seconds: float = 60.0
    # Strict-Transport-Security max-age; 0 sends none (only turn on behind TLS).
    hsts_seconds: int = 0
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses, networks or *).
    # Empty: none are, so a client cannot pick the address the login limit and the audit trail
    # see by sending the header itself.
    forwarded_allow_ips: tuple[str, ...] = ()

    @property
    def runs_graphs(self) -> bool:
        """Whether this process claims and runs tasks (an api process leaves that to workers)."""
        return self.role != "api" and self.workers == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise ValueError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        secret = env.get("DRAFTLOOP_SECRET_KEY", "").strip()
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"DRAFTLOOP_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        heartbeat = read_float(env, "HEARTBEAT_SECONDS", 5.0, 0.05, 600)
        lease = read_float(env, "LEASE_SECONDS", 30.0, 0.2, 3600)
        if heartbeat >= lease:
            raise ValueError("HEARTBEAT_SECONDS must be shorter than LEASE_SECONDS")
        role = env.get("DRAFTLOOP_ROLE", "all").strip().lower() or "all"
        if role not in ROLES:
            raise ValueError(f"DRAFTLOOP_ROLE must be one of {', '.join(ROLES)}, got {role!r}")
        return cls(
            host=env.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
            port=read_int(env, "PORT", 8000, 0, 65535),
            concurrency=read_int(env, "WORKER_CONCURRENCY", 8, 1, 1000),
            role=role,
            workers=read_int(env, "WORKERS", 0, 0, 64),
            worker_nice=read_int(env, "WORKER_NICE", 10, 0, 19),
            lease_seconds=lease,
            heartbeat_seconds=heartbeat,
            poll_seconds=read_float(env, "QUEUE_POLL_SECONDS", 1.0, 0.01, 60),
            sse_heartbeat_seconds=read_float(env, "SSE_HEARTBEAT_SECONDS", 15.0, 0.05, 300),
            shutdown_grace_seconds=read_float(env, "SHUTDOWN_GRACE_SECONDS", 10.0, 0, 600),
            max_resumes=read_int(env, "MAX_RESUMES", 3, 0, 100),
            keep_alive_seconds=read_int(env, "KEEP_ALIVE_SECONDS", 75, 1, 3600),
            log_format=log_format,
            log_level=(env.get("LOG_LEVEL", "INFO").strip() or "INFO").upper(),
            worker_id=env.get("WORKER_ID", "").strip() or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            database_url=env.get("DATABASE_URL", "").strip() or None,
            cors_origins=tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
            or ("https://smith.langchain.com",),
            secret_key=secret,
            dev_mode=read_bool(env, "DRAFTLOOP_DEV_MODE", False),
            token_ttl_seconds=read_int(env, "TOKEN_TTL_SECONDS", 3600, 60, 7 * 24 * 3600),
            public_metrics=read_bool(env, "PUBLIC_METRICS", True),
            login_max_failures=read_int(env, "LOGIN_MAX_FAILURES", 5, 1, 1000),
            auth_cache_seconds=read_float(env, "AUTH_CACHE_SECONDS", 2.0, 0, 60),
            login_window_seconds=read_float(env, "LOGIN_WINDOW_SECONDS", 60.0, 1, 86400),
            hsts_seconds=read_int(env, "HSTS_SECONDS", 0, 0, 2 * 365 * 24 * 3600),
            forwarded_allow_ips=read_forwarded_allow_ips(env),
        )


def read_forwarded_allow_ips(env: Mapping[str, str]) -> tuple[str, ...]:
    """FORWARDED_ALLOW_IPS as a tuple of addresses or networks (or "*"); a typo is a ValueError
    naming it, because uvicorn would quietly trust nobody, or the wrong host."""
    entries = tuple(e.strip() for e in env.get("FORWARDED_ALLOW_IPS", "").split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"FORWARDED_ALLOW_IPS must list IP addresses, networks or *, got {entry!r}") from None
    return entries
