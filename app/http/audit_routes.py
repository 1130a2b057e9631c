"""GET /api/audit: the audit trail, newest first, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import AuditFilter, AuditRepository
from storage.models import AuditEvent, Role


def _invalid(field: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{field}: {message}", extra=[{"key": field, "message": message}])


def audit_event_dict(event: AuditEvent) -> dict[str, Any]:
    actor = None if event.actor_id is None else {"id": event.actor_id, "name": event.actor_name, "role": event.actor_role}
    return {"id": event.id, "occurred_at": event.occurred_at.isoformat(), "actor": actor, "action": event.action,
            "resource": event.resource, "resource_id": event.resource_id, "summary": event.summary,
            "client": event.client, "method": event.method, "path": event.path, "status": event.status,
            "request_id": event.request_id}


class AuditController(Controller):
    path = "/api/audit"
    tags = ["admin"]

    @get("/", opt={"role": Role.ADMIN.value}, summary="The audit trail of every mutation, newest first")
    async def list_audit_events(
        self,
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        actor: str | None = Parameter(default=None, max_length=64, description="user name or id"),
        action: str | None = Parameter(default=None, max_length=64, description="e.g. task.create, auth.login_failed"),
        resource: str | None = Parameter(default=None, max_length=64, description="e.g. task, thread, post"),
        resource_id: str | None = Parameter(default=None, max_length=255),
        status: int | None = Parameter(default=None, ge=100, le=599, description="the response's HTTP status"),
        since: datetime | None = Parameter(default=None, description="inclusive, ISO 8601 with a timezone"),
        until: datetime | None = Parameter(default=None, description="exclusive, ISO 8601 with a timezone"),
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, max_length=512, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise _invalid(name, "timezone required, e.g. 2026-01-01T00:00:00Z")
        if since is not None and until is not None and since >= until:
            raise _invalid("until", "must be later than since")
        where = AuditFilter(actor=actor, action=action, resource=resource, resource_id=resource_id, status=status,
                            since=since, until=until)
        async with sessions() as session:
            try:
                page = await AuditRepository(session).list(where, limit=limit, cursor=cursor)
            except ValueError as exc:
                raise _invalid("cursor", str(exc)) from exc
        return {"items": [audit_event_dict(e) for e in page.items], "next_cursor": page.next_cursor}
