"""API keys without HTTP in them: making one, checking one, and recording its use.

A key is ``dl_`` + an 8-character public id + ``_`` + 32 random bytes (base64url). Only its
SHA-256 is stored: a slow hash guards guessable passwords, and 256 random bits are not guessable,
so a request costs one hash and one indexed lookup. The first part (``dl_<id>``) is stored in
clear as the key's ``prefix``, so that a listing shows which key is which.

Nothing about a key's validity is cached: a revocation is seen by the next request in every
process. Its last use is recorded in the background, at most once a minute per key, so that a
busy client does not write on every request and a failed write never fails the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.api_keys import ApiKeyRepository, KeyOwner
from storage.models import ApiKey, Role, User, utcnow

log = logging.getLogger("draftloop.auth")

KEY_PREFIX = "dl_"
MAX_NAME_LENGTH = 100
MAX_EXPIRES_DAYS = 3650
DEFAULT_KEY_NAME = "api key"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_key(value: str) -> bool:
    """Whether a credential is meant as a Draftloop API key rather than a JWT."""
    return value.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    digest: str


def new_key() -> NewKey:
    prefix = KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=key_digest(key))


class KeyRoleTooHigh(ValueError):
    """A key asked for a role above what its user (or the caller) has."""


def key_role(requested: str | None, cap: Role, user_name: str) -> Role:
    """The role a new key gets: ``requested`` (default ``cap``), never above ``cap``."""
    role = Role(requested) if requested is not None else cap
    if role.rank > cap.rank:
        raise KeyRoleTooHigh(f"a key of {user_name!r} may have the {cap.value} role or a lower one, not {role.value}")
    return role


async def issue_key(session: AsyncSession, user: User, *, name: str, role: Role,
                    expires_days: int | None) -> tuple[ApiKey, str]:
    """A new key of ``user`` (role already checked against its cap), and the key itself: the
    only time it exists outside the client."""
    made = new_key()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days is not None else None
    row = await ApiKeyRepository(session).create(user_id=user.id, name=name, role=role.value, prefix=made.prefix,
                                                 key_hash=made.digest, expires_at=expires_at)
    return row, made.key


@dataclass(frozen=True)
class KeyCheck:
    """A usable key: owner, with ``role`` its effective role. Else error (safe to show)."""

    owner: KeyOwner | None = None
    role: Role | None = None
    error: str | None = None


def check_owner(owner: KeyOwner | None, now: datetime) -> KeyCheck:
    if owner is None:
        return KeyCheck(error="invalid API key")
    if owner.revoked_at is not None:
        return KeyCheck(error="API key revoked")
    if owner.expires_at is not None and owner.expires_at <= now:
        return KeyCheck(error="API key expired")
    granted, user_role = Role(owner.key_role), Role(owner.user_role)
    # The user's role as stored now caps the key: a demoted user's keys are demoted with them.
    role = granted if granted.rank <= user_role.rank else user_role
    return KeyCheck(owner=owner, role=role)


async def check_key(key: str, sessions: async_sessionmaker[AsyncSession],
                    uses: KeyUseRecorder | None = None) -> KeyCheck:
    async with sessions() as session:
        owner = await ApiKeyRepository(session).owner(key_digest(key))
    now = utcnow()
    checked = check_owner(owner, now)
    if checked.owner is not None and uses is not None:
        uses.used(checked.owner, now, sessions)
    return checked


class KeyUseRecorder:
    """Writes a key's last use in the background, at most once per ``every`` seconds per key.

    Throttled twice: by the last use the request's lookup read (no task at all when it is
    recent) and by what this process already scheduled (a burst before the write lands starts
    one). The UPDATE itself only writes when the stored time is older, so processes sharing the
    database do not each write either. Owned by the app's lifespan: leaving it waits for the
    writes in flight, before the engine is closed."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = timedelta(seconds=every)
        self._scheduled: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def used(self, owner: KeyOwner, now: datetime, sessions: async_sessionmaker[AsyncSession]) -> None:
        if owner.last_used_at is not None and now - owner.last_used_at < self.every:
            return
        clock = time.monotonic()
        last = self._scheduled.get(owner.key_id)
        if last is not None and clock - last < self.every.total_seconds():
            return
        if len(self._scheduled) > 10_000:  # bounded: old entries only save a conditional UPDATE
            self._scheduled.clear()
        self._scheduled[owner.key_id] = clock
        task = asyncio.create_task(self._write(owner.key_id, now, sessions), name="draftloop-key-last-used")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key_id: str, now: datetime, sessions: async_sessionmaker[AsyncSession]) -> None:
        try:
            async with sessions.begin() as session:
                await ApiKeyRepository(session).touch(key_id, now, self.every)
        except (SQLAlchemyError, OSError) as exc:
            # Only the type: a driver's message can quote parameters. The next use tries again.
            self._scheduled.pop(key_id, None)
            log.warning("could not record an API key's last use (%s)", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the writes in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> KeyUseRecorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.drain()
