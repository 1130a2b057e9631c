"""Passwords, tokens and the login rate limit: the parts of authentication with no HTTP in them.

Passwords are hashed with argon2id (argon2-cffi's defaults). Hashing is deliberately slow and
CPU-bound, so it always runs in a worker thread. Tokens are HS256 JWTs carrying exp, iat, jti,
iss, sub (the user id) and role; the role in a token is informational, the stored role decides.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storage.models import Role

ISSUER = "draftloop"
ALGORITHM = "HS256"
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verified against when the user name is unknown, so that a wrong name costs as long as a wrong
# password and login timing does not tell which names exist. The hash of a random password that
# was thrown away, written out: hashing one at import cost every process 0.2 s of start-up. It
# must carry the hasher's parameters to cost the same (tests/unit/test_security.py checks).
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$StIQJzOiM8ZUNVVWBN31hQ$t518A8gDfKA8lEmy0NuTO6KEPcAugs/wheay9Ysdu5Q"


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash or DUMMY_HASH, password, password_hash is not None)


def _verify(password_hash: str, password: str, known: bool) -> bool:
    try:
        return _hasher.verify(password_hash, password) and known
    except (VerificationError, InvalidHashError):
        return False


class InvalidToken(ValueError):
    """A token that is malformed, forged, expired, from another issuer or otherwise unusable.
    The message is safe to show to the client: it never contains the token."""


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    role: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenService:
    secret: str = field(repr=False)
    ttl_seconds: int = 3600
    issuer: str = ISSUER

    def issue(self, user_id: str, role: str, now: datetime | None = None) -> tuple[str, TokenClaims]:
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = issued + timedelta(seconds=self.ttl_seconds)
        claims = TokenClaims(sub=user_id, role=role, jti=uuid.uuid4().hex, expires_at=expires)
        payload = {"sub": user_id, "role": role, "jti": claims.jti, "iss": self.issuer,
                   "iat": int(issued.timestamp()), "exp": int(expires.timestamp())}
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM), claims

    def decode(self, token: str) -> TokenClaims:
        try:
            # algorithms pinned to HS256: a token claiming "none" or an asymmetric algorithm is refused.
            payload: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], issuer=self.issuer,
                options={"require": ["exp", "iat", "jti", "iss", "sub"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token from another issuer") from None
        except jwt.PyJWTError:
            raise InvalidToken("invalid token") from None
        role = payload.get("role")
        if role not in {r.value for r in Role} or not isinstance(payload["jti"], str):
            raise InvalidToken("invalid token")
        return TokenClaims(sub=str(payload["sub"]), role=str(role), jti=payload["jti"],
                           expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC))


class LoginRateLimiter:
    """At most ``max_failures`` failed logins per client address in a sliding ``window``.

    In memory, per process: several server processes each allow that many, and a restart
    forgets. Good enough against online guessing at argon2's cost per attempt; a shared store
    would be the next step.
    """

    def __init__(self, max_failures: int = 5, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds the client must wait before trying again; 0 when it may try now."""
        now = time.monotonic() if now is None else now
        failures = self._recent(client, now)
        if len(failures) < self.max_failures:
            return 0
        return max(1, int(failures[0] + self.window - now + 0.999))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._prune(now)
        failures = self._recent(client, now)
        failures.append(now)
        self._failures[client] = failures

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _prune(self, now: float) -> None:
        # Bounded memory under a spray from many addresses: drop clients with nothing recent,
        # then the oldest entries if that was not enough.
        for client in [c for c in self._failures if not self._recent(c, now)]:
            del self._failures[client]
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]
