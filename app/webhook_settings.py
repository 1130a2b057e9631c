"""Webhook settings: the signing secret, which hosts may be called over plain http or at private
addresses, retries and timeouts. Read once at start-up with the service's (app/service_settings.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.settings_reader import (
    Placement,
    Setting,
    bool_setting,
    declared,
    float_setting,
    int_setting,
    optional_str_setting,
    read_declared,
    str_setting,
)

MIN_WEBHOOK_SECRET_LENGTH = 32
_WEBHOOKS: Placement = {"section": "Webhooks", "read_by": "WebhookSettings"}

WEBHOOK_SECRET = optional_str_setting(
    "WEBHOOK_SECRET", f"The key (at least {MIN_WEBHOOK_SECRET_LENGTH} characters) every webhook is signed with "
    "(`X-Draftloop-Signature`); give it to the receivers. Unset: runs and tasks that ask for a webhook are refused "
    "with 422.", **_WEBHOOKS)
WEBHOOK_ALLOW_HOSTS = str_setting(
    "WEBHOOK_ALLOW_HOSTS", "", "Comma-separated host names or addresses a webhook may call over plain http and at a "
    "loopback or private address (a receiver inside your network, or a test's). Every other host must be https "
    "and resolve to public addresses only.", shown_default="none", **_WEBHOOKS)
WEBHOOK_MAX_ATTEMPTS = int_setting(
    "WEBHOOK_MAX_ATTEMPTS", 5, "Attempts (1–20) to deliver one webhook; a non-2xx answer or a transport error is "
    "retried after a delay that doubles each time.", low=1, high=20, **_WEBHOOKS)
WEBHOOK_BACKOFF_SECONDS = float_setting(
    "WEBHOOK_BACKOFF_SECONDS", 2.0, "The delay before the first retry; each later one doubles it.",
    low=0.01, high=3600, **_WEBHOOKS)
WEBHOOK_BACKOFF_MAX_SECONDS = float_setting(
    "WEBHOOK_BACKOFF_MAX_SECONDS", 300.0, "The longest delay between two attempts.", low=0.01, high=86400,
    **_WEBHOOKS)
WEBHOOK_TIMEOUT_SECONDS = float_setting(
    "WEBHOOK_TIMEOUT_SECONDS", 10.0, "How long one attempt (resolving the host, connecting, sending, the answer's "
    "headers) may take before it counts as failed.", low=0.1, high=120, **_WEBHOOKS)
WEBHOOK_POLL_SECONDS = float_setting(
    "WEBHOOK_POLL_SECONDS", 1.0, "How often a process that sends webhooks looks for deliveries that are due "
    "(runs that end in the same process wake it at once).", low=0.01, high=60, **_WEBHOOKS)
WEBHOOK_MAX_VALUES_BYTES = int_setting(
    "WEBHOOK_MAX_VALUES_BYTES", 262144, "The most bytes of JSON the thread's `values` may take in a webhook's body "
    "(0–16777216). Larger values lose their largest top-level keys until they fit; the body names the keys left out "
    "in `values_omitted`.", low=0, high=16 * 1024 * 1024, **_WEBHOOKS)
WEBHOOK_SEND = bool_setting(
    "WEBHOOK_SEND", True, "`false`: this process still records the deliveries of the runs it ends, but leaves "
    "sending them to the other processes (only processes that run graphs send).", **_WEBHOOKS)

WEBHOOK_SETTINGS: tuple[Setting[Any], ...] = (
    WEBHOOK_SECRET, WEBHOOK_ALLOW_HOSTS, WEBHOOK_MAX_ATTEMPTS, WEBHOOK_BACKOFF_SECONDS, WEBHOOK_BACKOFF_MAX_SECONDS,
    WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_POLL_SECONDS, WEBHOOK_MAX_VALUES_BYTES, WEBHOOK_SEND)


@dataclass(frozen=True)
class WebhookSettings:
    # repr=False: settings may be logged, the signing key may not.
    secret: str | None = field(default=None, repr=False)
    allow_hosts: tuple[str, ...] = ()
    max_attempts: int = declared(WEBHOOK_MAX_ATTEMPTS)
    backoff_seconds: float = declared(WEBHOOK_BACKOFF_SECONDS)
    backoff_max_seconds: float = declared(WEBHOOK_BACKOFF_MAX_SECONDS)
    timeout_seconds: float = declared(WEBHOOK_TIMEOUT_SECONDS)
    poll_seconds: float = declared(WEBHOOK_POLL_SECONDS)
    max_values_bytes: int = declared(WEBHOOK_MAX_VALUES_BYTES)
    send: bool = declared(WEBHOOK_SEND)

    @property
    def key(self) -> bytes | None:
        """The signing key; None when webhooks are off (no secret)."""
        return None if self.secret is None else self.secret.encode()

    def retry_delay(self, attempts_made: int) -> float:
        """Seconds before the next attempt, after ``attempts_made`` failed ones (1 or more)."""
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts_made - 1))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        secret = WEBHOOK_SECRET.read(env)
        if secret is not None and len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
            raise ValueError(f"WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters")
        hosts = tuple(h.strip() for h in WEBHOOK_ALLOW_HOSTS.read(env).split(",") if h.strip())
        return cls(**read_declared(cls, env), secret=secret, allow_hosts=hosts)
