"""API keys: their writes, listings and the per-request lookup.

Key generation and hashing happen in the caller (app/api_keys.py): this layer only ever sees the
key's SHA-256. Like the other repositories these flush but never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.affected_rows import affected_rows
from storage.models import ApiKey, User, utcnow


@dataclass(frozen=True)
class KeyOwner:
    """What a request's API key resolves to: the key's own state and its user as stored now."""

    key_id: str
    key_role: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: str
    user_name: str
    user_role: str


@dataclass(frozen=True)
class ListedKey:
    key: ApiKey
    user_name: str


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, *, user_id: str, name: str, role: str, prefix: str, key_hash: str,
                     expires_at: datetime | None) -> ApiKey:
        key = ApiKey(user_id=user_id, name=name, role=role, prefix=prefix, key_hash=key_hash, expires_at=expires_at)
        self.session.add(key)
        await self.session.flush()
        return key

    async def owner(self, key_hash: str) -> KeyOwner | None:
        """One indexed round trip per request: the key with its user's current role, so that a
        revocation, a role change or a deleted user takes effect at once in every process."""
        row = (await self.session.execute(
            select(ApiKey.id, ApiKey.role, ApiKey.expires_at, ApiKey.revoked_at, ApiKey.last_used_at,
                   User.id, User.name, User.role)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == key_hash))).first()
        if row is None:
            return None
        return KeyOwner(key_id=row[0], key_role=row[1], expires_at=row[2], revoked_at=row[3], last_used_at=row[4],
                        user_id=row[5], user_name=row[6], user_role=row[7])

    async def listed(self, user_id: str | None = None) -> list[ListedKey]:
        """Newest first; every user's keys when ``user_id`` is None."""
        query = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        rows = await self.session.execute(query.order_by(ApiKey.created_at.desc(), ApiKey.id))
        return [ListedKey(row[0], row[1]) for row in rows]

    async def get(self, key_id: str) -> ListedKey | None:
        row = (await self.session.execute(
            select(ApiKey, User.name).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id))).first()
        return None if row is None else ListedKey(row[0], row[1])

    async def revoke(self, key_id: str) -> ListedKey | None:
        """The key, revoked now unless it was already (its first revocation time stays)."""
        found = await self.get(key_id)
        if found is not None and found.key.revoked_at is None:
            found.key.revoked_at = utcnow()
            await self.session.flush()
        return found

    async def touch(self, key_id: str, now: datetime, every: timedelta) -> bool:
        """Record a use at ``now`` unless one was recorded within ``every``; True when written.
        The condition is in the UPDATE, so processes sharing the database do not each write."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - every))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False))
        return affected_rows(result) > 0
