"""Accounts and revoked token ids.

Password hashing happens in the caller (app/security.py): this layer only ever sees hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import RevokedToken, User, utcnow


class UserExists(ValueError):
    """A user with that name is already there."""


@dataclass(frozen=True)
class TokenOwner:
    """What a request's token resolves to: the user as stored now, and whether it was revoked."""

    user_id: str
    name: str
    role: str
    revoked: bool


class UserRepository:
    """Accounts and revoked token ids. Password hashing happens in the caller (app/security.py):
    this layer only ever sees hashes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, password_hash: str, role: str) -> User:
        if await self.by_name(name) is not None:
            raise UserExists(f"user {name!r} already exists")
        user = User(name=name, password_hash=password_hash, role=role)
        self.session.add(user)
        await self.session.flush()
        return user

    async def by_name(self, name: str) -> User | None:
        return await self.session.scalar(select(User).where(User.name == name))

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(User)) or 0)

    async def token_owner(self, user_id: str, jti: str) -> TokenOwner | None:
        """One round trip per authenticated request: the user's current role (a role change or a
        deleted user takes effect at once) and whether this token was logged out."""
        revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
        row = (await self.session.execute(
            select(User.id, User.name, User.role, revoked).where(User.id == user_id))).first()
        if row is None:
            return None
        return TokenOwner(user_id=row[0], name=row[1], role=row[2], revoked=bool(row[3]))

    async def revoke(self, jti: str, user_id: str, expires_at: datetime) -> None:
        if await self.session.get(RevokedToken, jti) is None:
            self.session.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at))
        # Tokens past their expiry are refused on their exp claim anyway; their rows can go.
        await self.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
