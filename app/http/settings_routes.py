"""The settings API (admin only): read, change, reset and roll back runtime settings.

Every change is stored together with its history row (who, when, old and new value). A change
applies to runs started after it, in this process at once and in the others sharing the
database within a second (app/engine/run_settings.py).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody, Parameter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import audit_change
from app.engine.run_settings import RunSettings
from app.http.auth import principal_of
from app.http.errors import ConflictError, NotFoundError
from app.settings_registry import (
    SPECS,
    InvalidSettingValue,
    Resolved,
    SettingSpec,
    UnknownSetting,
    environment_problem,
    resolve,
    spec_of,
)
from storage.models import MAX_ROW_ID, Role, Setting, SettingChange
from storage.settings_store import Actor, HistoryEntryNotFound, NothingToRollBack, SettingsRepository


class SettingUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: Any = Field(description="The new value; its type and bounds are in GET /api/settings/{key}")


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: int | None = Field(default=None, ge=1, le=MAX_ROW_ID,
                           description="a history entry id: restore the value it set; "
                                       "without it, the value before the latest change")


def _spec(key: str) -> SettingSpec:
    try:
        return spec_of(key)
    except UnknownSetting as exc:
        raise NotFoundError(detail=str(exc)) from None


def _invalid(exc: InvalidSettingValue | str) -> ValidationException:
    message = str(exc) if isinstance(exc, InvalidSettingValue) else exc
    return ValidationException(detail=message, status_code=422, extra=[{"key": "value", "message": message}])


def _source(value: Any) -> str:
    return "env" if value is None else "stored"


def setting_body(spec: SettingSpec, resolved: Resolved, row: Setting | None) -> dict[str, Any]:
    stored = row is not None and resolved.source == "stored"
    return {
        "key": spec.key,
        "value": resolved.value,
        "default": resolved.default,
        "source": resolved.source,
        **spec.schema(),
        "description": spec.description,
        "env": spec.env,
        "updated_at": row.updated_at.isoformat() if stored and row else None,
        "updated_by": {"id": row.updated_by, "name": row.updated_by_name} if stored and row else None,
    }


def change_body(change: SettingChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "key": change.key,
        "action": change.action,
        # null means "not stored": the environment's default applied.
        "old_value": change.old_value,
        "old_source": _source(change.old_value),
        "new_value": change.new_value,
        "new_source": _source(change.new_value),
        "user": {"id": change.user_id, "name": change.user_name},
        "at": change.created_at.isoformat(),
    }


async def _bodies(sessions: async_sessionmaker[AsyncSession], run_settings: RunSettings) -> dict[str, dict[str, Any]]:
    # Straight from the database, not the run cache: an admin reads what is stored right now.
    async with sessions() as session:
        rows = {row.key: row for row in await SettingsRepository(session).stored()}
    resolved = resolve(run_settings.env, {key: row.value for key, row in rows.items()})
    return {spec.key: setting_body(spec, resolved[spec.key], rows.get(spec.key)) for spec in SPECS}


def _actor(request: Request[Any, Any, Any]) -> Actor:
    principal = principal_of(request)
    return Actor(principal.user_id, principal.name)


def _audit_setting(request: Request[Any, Any, Any], change: SettingChange) -> None:
    # Keyed by the setting's name, so a secret-looking one is redacted like any other secret.
    audit_change(request, before={change.key: change.old_value}, after={change.key: change.new_value},
                 history_id=change.id)


class SettingsController(Controller):
    path = "/api/settings"
    tags = ["settings"]
    # Controller-wide, so a route added here later is admin-only too.
    opt = {"role": Role.ADMIN.value}

    @get("/", summary="Every runtime setting: value, default, source (env or stored), type, bounds")
    async def list_settings(self, sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            run_settings: NamedDependency[RunSettings]) -> dict[str, Any]:
        return {"items": list((await _bodies(sessions, run_settings)).values())}

    @get("/{key:str}", summary="One runtime setting")
    async def get_setting(self, key: FromPath[str], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          run_settings: NamedDependency[RunSettings]) -> dict[str, Any]:
        spec = _spec(key)
        return (await _bodies(sessions, run_settings))[spec.key]

    @put("/{key:str}", summary="Store a value; new runs use it (validated against the setting's type and bounds)")
    async def put_setting(self, key: FromPath[str], data: JSONBody[SettingUpdate], request: Request[Any, Any, Any],
                          sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                          run_settings: NamedDependency[RunSettings]) -> dict[str, Any]:
        spec = _spec(key)
        try:
            value = spec.validate(data.value)
        except InvalidSettingValue as exc:
            raise _invalid(exc) from None
        problem = environment_problem(key, value, run_settings.env)
        if problem:
            raise _invalid(problem)
        async with sessions.begin() as session:
            change = await SettingsRepository(session).write(key, value, _actor(request), "set")
        _audit_setting(request, change)
        run_settings.invalidate()
        return (await _bodies(sessions, run_settings))[key]

    @delete("/{key:str}", status_code=200, summary="Drop the stored value: back to the environment's default")
    async def reset_setting(self, key: FromPath[str], request: Request[Any, Any, Any],
                            sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                            run_settings: NamedDependency[RunSettings]) -> dict[str, Any]:
        _spec(key)
        async with sessions.begin() as session:
            repo = SettingsRepository(session)
            # Resetting what is not stored changes nothing, so it leaves no history either.
            if await repo.get(key) is not None:
                _audit_setting(request, await repo.write(key, None, _actor(request), "reset"))
        run_settings.invalidate()
        return (await _bodies(sessions, run_settings))[key]

    @get("/{key:str}/history", summary="Changes of one setting, newest first")
    async def history(
        self,
        key: FromPath[str],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        _spec(key)
        async with sessions() as session:
            try:
                page = await SettingsRepository(session).history(key, limit=limit, cursor=cursor)
            except ValueError as exc:
                raise ValidationException(detail=str(exc), extra=[{"key": "cursor", "message": str(exc)}]) from exc
        return {"items": [change_body(change) for change in page.items], "next_cursor": page.next_cursor}

    @post("/{key:str}/rollback", status_code=200,
          summary="Restore the value before the latest change, or the value a history entry set ({\"to\": id})")
    async def rollback(self, key: FromPath[str], request: Request[Any, Any, Any],
                       sessions: NamedDependency[async_sessionmaker[AsyncSession]], run_settings: NamedDependency[RunSettings],
                       data: JSONBody[Rollback | None] = None) -> dict[str, Any]:
        spec = _spec(key)
        to = data.to if data is not None else None
        async with sessions.begin() as session:
            repo = SettingsRepository(session)
            try:
                target = await repo.rollback_target(key, to)
            except NothingToRollBack as exc:
                raise ConflictError(detail=str(exc)) from None
            except HistoryEntryNotFound as exc:
                raise NotFoundError(detail=str(exc)) from None
            if target is not None:
                try:
                    target = spec.validate(target)
                except InvalidSettingValue as exc:
                    raise ConflictError(detail=f"the earlier value is no longer allowed: {exc}") from None
                problem = environment_problem(key, target, run_settings.env)
                if problem:
                    raise ConflictError(detail=f"the earlier value cannot be used here: {problem}")
            _audit_setting(request, await repo.write(key, target, _actor(request), "rollback"))
        run_settings.invalidate()
        return (await _bodies(sessions, run_settings))[key]
