"""/api/keys: a user's API keys, for programs that send ``X-Api-Key`` (SDK clients, chat UIs).

Anyone signed in manages their own keys; an admin manages everyone's and may create a key for
another user. A key never has a role above its user's, nor above the caller's own role on this
request (a viewer-scoped key of an admin cannot mint an admin key). The key is in the creation
response only: listings, logs and the audit trail show its prefix.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api_keys import (
    DEFAULT_KEY_NAME,
    MAX_EXPIRES_DAYS,
    MAX_NAME_LENGTH,
    KeyRoleTooHigh,
    issue_key,
    key_role,
)
from app.audit_log import audit_change
from app.http.auth import Principal, principal_of
from app.http.errors import NotFoundError
from app.http.lg_common import unprocessable
from storage.api_keys import ApiKeyRepository, ListedKey
from storage.models import ApiKey, Role
from storage.users import UserRepository

RoleName = Literal["viewer", "editor", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    name: str = Field(default=DEFAULT_KEY_NAME, min_length=1, max_length=MAX_NAME_LENGTH,
                      description="what the key is for, shown in listings")
    role: RoleName | None = Field(default=None, description="the key's role: the user's (default) or a lower one")
    expires_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRES_DAYS,
                                     description="days until the key stops working; without it, it does not expire")
    user: str | None = Field(default=None, min_length=1, max_length=64,
                             description="admins only: the name of the user the key is for (default: yourself)")


def key_body(key: ApiKey, user_name: str) -> dict[str, Any]:
    """A key as listings show it: never the key or its hash."""
    return {"id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix,
            "user": {"id": key.user_id, "name": user_name},
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}


def _audit_summary(key: ApiKey, user_name: str) -> dict[str, Any]:
    return {"name": key.name, "role": key.role, "prefix": key.prefix, "user": user_name,
            "expires_at": key.expires_at, "revoked_at": key.revoked_at}


def _is_admin(principal: Principal) -> bool:
    return principal.role is Role.ADMIN


async def _visible(session: AsyncSession, principal: Principal, key_id: str) -> ListedKey:
    """The key when the caller may manage it; 404 alike for a missing key and another's."""
    found = await ApiKeyRepository(session).get(key_id)
    if found is None or (found.key.user_id != principal.user_id and not _is_admin(principal)):
        raise NotFoundError(detail=f"no API key {key_id!r}")
    return found


class ApiKeyController(Controller):
    path = "/api/keys"
    tags = ["auth"]
    # Every signed-in user manages their own keys, viewers included.
    opt = {"role": Role.VIEWER.value}

    @post("/", status_code=201, opt={"audit_action": "api_key.create"},
          summary="Create an API key; the response is the only place the key is shown")
    async def create_key(self, request: Request[Any, Any, Any],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                         data: JSONBody[KeyCreate | None] = None) -> Response[dict[str, Any]]:
        principal = principal_of(request)
        data = data or KeyCreate()
        async with sessions.begin() as session:
            if data.user is None or data.user == principal.name:
                user = await UserRepository(session).by_name(principal.name)
                # The caller's role on this request, not only the stored one: it may be a key's.
                cap = principal.role
            elif not _is_admin(principal):
                raise PermissionDeniedException(detail="only an admin may create API keys for another user")
            else:
                user = await UserRepository(session).by_name(data.user)
                cap = Role(user.role) if user is not None else Role.VIEWER
            if user is None:
                raise unprocessable("user", f"no user named {data.user or principal.name!r}")
            try:
                role = key_role(data.role, cap, user.name)
            except KeyRoleTooHigh as exc:
                raise PermissionDeniedException(detail=str(exc)) from None
            row, key = await issue_key(session, user, name=data.name, role=role, expires_days=data.expires_days)
        body = key_body(row, user.name)
        audit_change(request, resource_id=row.id, after=_audit_summary(row, user.name))
        return Response({**body, "key": key}, status_code=201,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @get("/", summary="API keys: your own, or everyone's for an admin; never the keys themselves")
    async def list_keys(self, request: Request[Any, Any, Any],
                        sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        principal = principal_of(request)
        async with sessions() as session:
            keys = await ApiKeyRepository(session).listed(None if _is_admin(principal) else principal.user_id)
        return {"items": [key_body(found.key, found.user_name) for found in keys]}

    @get("/{key_id:str}", summary="One API key (never the key itself)")
    async def get_key(self, key_id: FromPath[str], request: Request[Any, Any, Any],
                      sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        async with sessions() as session:
            found = await _visible(session, principal_of(request), key_id)
        return key_body(found.key, found.user_name)

    @delete("/{key_id:str}", status_code=200, opt={"audit_action": "api_key.revoke"},
            summary="Revoke an API key: refused from the next request on, in every server process")
    async def revoke_key(self, key_id: FromPath[str], request: Request[Any, Any, Any],
                         sessions: NamedDependency[async_sessionmaker[AsyncSession]]) -> dict[str, Any]:
        principal = principal_of(request)
        async with sessions.begin() as session:
            found = await _visible(session, principal, key_id)
            before = _audit_summary(found.key, found.user_name)
            revoked = await ApiKeyRepository(session).revoke(key_id)
        assert revoked is not None  # _visible found it in this transaction
        audit_change(request, resource_id=key_id, before=before, after=_audit_summary(revoked.key, revoked.user_name))
        return key_body(revoked.key, revoked.user_name)
