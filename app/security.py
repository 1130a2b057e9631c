"""Passwords, tokens and the login rate limit: the parts of authentication with no HTTP in them.

Passwords are hashed with argon2id (argon2-cffi's defaults). Hashing is deliberately slow and
CPU-bound, so it always runs in a worker thread. Tokens are HS256 JWTs carrying exp, iat, jti,
iss, sub (the user id) and role; the role in a token is informational, the stored role decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
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


class LoginRateLimited(Exception):
    """A login refused before its password is checked; ``retry_after`` in whole seconds (>= 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Failure:
    at: float
    client: str
    name: bytes


@dataclass(eq=False)
class LoginAttempt:
    """The slot one login holds from the limit check until its password check has an outcome.
    ``settled`` once it has been counted, cleared or released, so that only one of those happens."""

    client: str
    name: bytes
    settled: bool = False


_Key = tuple[str, str | bytes]


class LoginRateLimiter:
    """At most ``max_failures`` failed logins in a sliding ``window``, counted twice: per client
    address (whatever names it tries) and per user name (from whatever addresses).

    A login takes a slot under both counts before its password is hashed (``begin``) and turns it
    into a failure or gives it back after (``failed``, ``succeeded``, ``release``): the hash takes
    ~0.2 s, and counting only finished failures let any number of concurrent guesses through the
    check. A success clears only the failures of that same name from that same address, so that
    logging in to one's own account does not reset the count of guesses at another's.

    In memory, per process: several server processes each allow that many, and a restart
    forgets. Good enough against online guessing at argon2's cost per attempt; a shared store
    would be the next step. Names are kept as digests: the memory a name takes is bounded, and a
    password typed into the name field is not held in clear.
    """

    def __init__(self, max_failures: int = 5, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        # Bounds the keys (addresses and names) with failures on record, not only addresses.
        self.max_clients = max_clients
        self._failures: dict[_Key, deque[_Failure]] = {}
        self._in_flight: dict[_Key, int] = {}

    @staticmethod
    def _name(name: str) -> bytes:
        return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _recent(self, key: _Key, now: float) -> deque[_Failure]:
        failures = self._failures.get(key, deque())
        while failures and failures[0].at <= now - self.window:
            failures.popleft()
        return failures

    def _wait(self, key: _Key, now: float) -> int:
        """Seconds until one more attempt fits under ``key``'s limit; 0 when it fits now."""
        failures = self._recent(key, now)
        in_flight = self._in_flight.get(key, 0)
        excess = len(failures) + in_flight - self.max_failures + 1
        if excess <= 0:
            return 0
        if excess > len(failures):
            # Attempts in flight alone fill the limit: they end within a hash's time, so ask the
            # client to come back in a second (it then learns the wait their failures cost).
            return 1
        return max(1, math.ceil(failures[excess - 1].at + self.window - now))

    def retry_after(self, client: str, name: str | None = None, now: float | None = None) -> int:
        """Seconds the client must wait before trying again (as ``name``, when given); 0 when it
        may try now."""
        now = time.monotonic() if now is None else now
        wait = self._wait(("client", client), now)
        return max(wait, self._wait(("name", self._name(name)), now)) if name is not None else wait

    def begin(self, client: str, name: str, now: float | None = None) -> LoginAttempt:
        """A slot for one login of ``name`` from ``client``, or LoginRateLimited when either count
        is full. No await between the check and the reservation: concurrent logins in this
        process see each other's slots."""
        now = time.monotonic() if now is None else now
        attempt = LoginAttempt(client, self._name(name))
        keys = self._keys(attempt)
        wait = max(self._wait(key, now) for key in keys)
        if wait:
            raise LoginRateLimited(wait)
        for key in keys:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return attempt

    def failed(self, attempt: LoginAttempt, now: float | None = None) -> None:
        """The attempt's password was wrong (or its name unknown): its slot becomes a failure."""
        if not self._settle(attempt):
            return
        now = time.monotonic() if now is None else now
        failure = _Failure(now, attempt.client, attempt.name)
        for key in self._keys(attempt):
            if key not in self._failures and len(self._failures) >= self.max_clients:
                self._prune(now)
            failures = self._recent(key, now)
            failures.append(failure)
            self._failures[key] = failures

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The attempt logged in: its slot is freed, and the failures of this name from this
        address are forgotten (a user who mistyped is not held back by it). Failures of other
        names from the address, and of this name from other addresses, stay counted."""
        if not self._settle(attempt):
            return
        for key in self._keys(attempt):
            failures = self._failures.get(key)
            if failures is None:
                continue
            kept = deque(f for f in failures if not (f.client == attempt.client and f.name == attempt.name))
            if kept:
                self._failures[key] = kept
            else:
                del self._failures[key]

    def release(self, attempt: LoginAttempt) -> None:
        """Free the slot of an attempt that ended without an outcome (an error, a cancelled
        request); does nothing once the attempt was counted or cleared."""
        self._settle(attempt)

    @staticmethod
    def _keys(attempt: LoginAttempt) -> tuple[_Key, _Key]:
        return ("client", attempt.client), ("name", attempt.name)

    def _settle(self, attempt: LoginAttempt) -> bool:
        """Give back the attempt's in-flight slots; False when it was settled already."""
        if attempt.settled:
            return False
        attempt.settled = True
        for key in self._keys(attempt):
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
        return True

    def _prune(self, now: float) -> None:
        # Bounded memory under a spray from many addresses or names: drop keys with nothing
        # recent, then the oldest entries if that was not enough.
        for key in [k for k in self._failures if not self._recent(k, now)]:
            del self._failures[key]
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]
