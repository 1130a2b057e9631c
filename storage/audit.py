"""The audit trail's storage: batch inserts for the writer, filtered newest-first pages for readers.

Like the other repositories these flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MAX_ROW_ID, AuditEvent
from storage.pagination import decode_cursor, encode_keyset, older_than, page_limit


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row to write; field names are the table's columns."""

    occurred_at: datetime
    action: str
    resource: str
    method: str
    path: str
    status: int
    resource_id: str | None = None
    actor_id: str | None = None
    actor_name: str | None = None
    actor_role: str | None = None
    summary: dict[str, Any] | None = None
    client: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field narrows the result; None leaves it open. ``since`` is inclusive, ``until``
    exclusive, so adjacent windows never share an event."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    resource_id: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditEvent]
    next_cursor: str | None


def _cursor_position(cursor: str) -> tuple[datetime, int]:
    occurred_at, key = decode_cursor(cursor)
    try:
        position = int(key)
    except ValueError as exc:
        raise ValueError("invalid cursor") from exc
    # A forged id past the column's range would overflow the driver: no cursor of ours holds one.
    if not 0 <= position <= MAX_ROW_ID:
        raise ValueError("invalid cursor")
    return occurred_at, position


def _filtered(stmt: Select[AuditEvent], where: AuditFilter) -> Select[AuditEvent]:
    if where.actor is not None:
        # People know each other by name; scripts hold ids. Either finds the actor.
        stmt = stmt.where(or_(AuditEvent.actor_name == where.actor, AuditEvent.actor_id == where.actor))
    for column, value in ((AuditEvent.action, where.action), (AuditEvent.resource, where.resource),
                          (AuditEvent.resource_id, where.resource_id), (AuditEvent.status, where.status)):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < where.until)
    return stmt


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, records: Sequence[AuditRecord]) -> None:
        """One INSERT for the whole batch (SQLAlchemy sends it as multi-row VALUES)."""
        if records:
            await self.session.execute(insert(AuditEvent), [asdict(record) for record in records])

    async def list(self, where: AuditFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Newest first, keyset-paginated on (occurred_at, id); ValueError for a bad cursor.
        Pass ``next_cursor`` back unchanged with the same filters."""
        limit = page_limit(limit)
        stmt = _filtered(select(AuditEvent), where or AuditFilter())
        if cursor is not None:
            after_at, after_id = _cursor_position(cursor)
            stmt = stmt.where(older_than(AuditEvent.occurred_at, AuditEvent.id, after_at, after_id))
        stmt = stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
        rows = list(await self.session.scalars(stmt))
        items = rows[:limit]
        next_cursor = encode_keyset(items[-1].occurred_at, str(items[-1].id)) if len(rows) > limit else None
        return AuditPage(items=items, next_cursor=next_cursor)
