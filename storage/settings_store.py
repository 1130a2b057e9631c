"""Stored runtime settings and their change history.

A key without a row uses its default (the environment); a row overrides it. Every write adds a
history row in the caller's transaction, so a value and the record of who set it commit (or
fail) together. Like the other repositories this one flushes and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MAX_ROW_ID, Setting, SettingChange, utcnow

MAX_HISTORY_PAGE = 200
# History ids fit a signed 64-bit column; anything larger cannot name a row (and would overflow
# the driver instead of matching nothing).
MAX_HISTORY_ID = MAX_ROW_ID
# First key of the two-key advisory lock that serialises writes of one setting on Postgres
# (the event log uses its own namespace, so the two cannot block each other).
_SETTINGS_LOCK_NAMESPACE = 0x646C7374  # "dlst"


class NothingToRollBack(LookupError):
    """The setting was never changed, so there is no earlier value to go back to."""

    def __init__(self, key: str) -> None:
        super().__init__(f"setting {key} has never been changed: there is no earlier value to roll back to")
        self.key = key


class HistoryEntryNotFound(LookupError):
    def __init__(self, key: str, entry_id: int) -> None:
        super().__init__(f"history entry {entry_id} of setting {key} not found")
        self.key = key
        self.entry_id = entry_id


@dataclass(frozen=True)
class Actor:
    """Who made a change; copied into the rows so that they outlive the account."""

    user_id: str | None
    name: str | None


@dataclass(frozen=True)
class HistoryPage:
    items: list[SettingChange]
    next_cursor: str | None


class SettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def values(self) -> dict[str, Any]:
        """Every stored value by key: the one query a run start (or its cache) makes."""
        rows = await self.session.execute(select(Setting.key, Setting.value))
        return {key: value for key, value in rows}

    async def get(self, key: str) -> Setting | None:
        return await self.session.get(Setting, key, populate_existing=True)

    async def stored(self) -> list[Setting]:
        return list(await self.session.scalars(select(Setting)))

    async def write(self, key: str, value: Any | None, actor: Actor, action: str) -> SettingChange:
        """Store ``value`` (None: drop the stored value, back to the default) and record the
        change with the value it replaced."""
        await self._lock(key)
        current = await self.get(key)
        old = current.value if current is not None else None
        now = utcnow()
        if value is None:
            if current is not None:
                await self.session.delete(current)
        elif current is None:
            self.session.add(Setting(key=key, value=value, updated_at=now, updated_by=actor.user_id,
                                     updated_by_name=actor.name))
        else:
            current.value = value
            current.updated_at = now
            current.updated_by = actor.user_id
            current.updated_by_name = actor.name
        change = SettingChange(key=key, action=action, old_value=old, new_value=value, user_id=actor.user_id,
                               user_name=actor.name, created_at=now)
        self.session.add(change)
        await self.session.flush()
        return change

    async def rollback_target(self, key: str, to: int | None = None) -> Any | None:
        """The value a rollback restores (None: the default). Without ``to``, the value before
        the latest change; with it, the value that history entry set."""
        await self._lock(key)
        if to is None:
            latest = await self.session.scalar(
                select(SettingChange).where(SettingChange.key == key).order_by(SettingChange.id.desc()).limit(1)
            )
            if latest is None:
                raise NothingToRollBack(key)
            return latest.old_value
        entry = await self.session.get(SettingChange, to) if 1 <= to <= MAX_HISTORY_ID else None
        if entry is None or entry.key != key:
            raise HistoryEntryNotFound(key, to)
        return entry.new_value

    async def history(self, key: str, *, limit: int = 50, cursor: str | None = None) -> HistoryPage:
        """A key's changes, newest first; ``cursor`` is the previous page's ``next_cursor``."""
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_HISTORY_PAGE}")
        query = select(SettingChange).where(SettingChange.key == key)
        if cursor is not None:
            before = int(cursor) if cursor.isascii() and cursor.isdigit() and len(cursor) <= 19 else 0
            if not 1 <= before <= MAX_HISTORY_ID:
                raise ValueError("cursor is not one this API returned")
            query = query.where(SettingChange.id < before)
        rows = list(await self.session.scalars(query.order_by(SettingChange.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        items = rows[:limit]
        return HistoryPage(items, str(items[-1].id) if more else None)

    async def _lock(self, key: str) -> None:
        """Writers of one key take turns, so each history row's old value is the value the
        previous row set. Postgres: a transaction-scoped advisory lock. SQLite: a no-op write
        takes the database write lock before anything is read (a deferred transaction would
        otherwise read first and let two writers record the same old value)."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                select(func.pg_advisory_xact_lock(_SETTINGS_LOCK_NAMESPACE, func.hashtext(key)))
            )
        else:
            await self.session.execute(
                update(Setting).where(Setting.key == key).values(key=Setting.key)
                .execution_options(synchronize_session=False)
            )
