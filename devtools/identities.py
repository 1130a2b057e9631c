"""Test identities: a known signing secret, users written straight into a test database, and
tokens minted with that secret, so that API tests authenticate without a login round trip."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from app.security import TokenService, hash_password
from storage.engine import create_engine, database_url_from_env, session_factory
from storage.models import User

TEST_SECRET = "draftloop-test-secret-0123456789abcdef0123456789"
TEST_ADMIN_ID = "00000000-0000-4000-8000-0000000000a1"
TEST_ADMIN_NAME = "test-admin"
TEST_PASSWORD = "correct horse battery staple"


def token_for(user_id: str, role: str, secret: str = TEST_SECRET, now: datetime | None = None,
              ttl_seconds: int = 3600) -> str:
    return TokenService(secret, ttl_seconds=ttl_seconds).issue(user_id, role, now or datetime.now(UTC))[0]


def bearer(user_id: str, role: str, secret: str = TEST_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user_id, role, secret)}"}


def admin_headers() -> dict[str, str]:
    """The test admin's header; valid wherever ``ensure_user`` created the test admin."""
    return bearer(TEST_ADMIN_ID, "admin")


# Hashing is slow on purpose (~0.2 s); hundreds of tests create the same users in fresh
# databases, so each password is hashed once per test session.
_password_hashes: dict[str, str] = {}


async def password_hash(password: str) -> str:
    if password not in _password_hashes:
        _password_hashes[password] = await hash_password(password)
    return _password_hashes[password]


async def ensure_user(database_url: str, name: str = TEST_ADMIN_NAME, role: str = "admin",
                      user_id: str = TEST_ADMIN_ID, password: str = TEST_PASSWORD) -> str:
    """The user, created if missing, in a migrated database; its id."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            if await session.get(User, user_id) is None:
                session.add(User(id=user_id, name=name, role=role, password_hash=await password_hash(password)))
    except IntegrityError:
        pass  # created meanwhile by another caller: what we wanted
    finally:
        await engine.dispose()
    return user_id


async def service_database_url(env: dict[str, str]) -> str:
    """The database a `draftloop serve` started with ``env`` uses, resolved as the server resolves
    it; a DRAFTLOOP_DATA_DIR in ``env`` must be absolute, since the server runs elsewhere."""
    return await asyncio.to_thread(database_url_from_env, env)
