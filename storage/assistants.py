"""LangGraph API assistants: the latest version of each in ``assistants``, every version in
``assistant_versions``. A change makes a new version; setting the latest copies one back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.affected_rows import affected_rows
from storage.json_filter import json_filter
from storage.models import Assistant, AssistantVersion, Cron, utcnow

# Names sort without regard to case, as langgraph-api sorts them.
SORT_COLUMNS: dict[str, Any] = {
    "assistant_id": Assistant.assistant_id, "graph_id": func.lower(Assistant.graph_id),
    "name": func.lower(Assistant.name), "created_at": Assistant.created_at, "updated_at": Assistant.updated_at,
}
# The fields a version holds, copied to the assistant's row when it becomes the latest.
VERSIONED = ("graph_id", "name", "description", "meta", "config", "context")


class AssistantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, assistant_id: str, *, for_update: bool = False) -> Assistant | None:
        return await self.session.get(Assistant, assistant_id, with_for_update=for_update)

    async def create(self, assistant_id: str, fields: Mapping[str, Any]) -> Assistant:
        """A new assistant at version 1; ``fields`` are VERSIONED's."""
        now = utcnow()
        values = {key: fields.get(key) for key in VERSIONED}
        assistant = Assistant(assistant_id=assistant_id, version=1, created_at=now, updated_at=now, **values)
        self.session.add(assistant)
        self.session.add(AssistantVersion(assistant_id=assistant_id, version=1, created_at=now, **values))
        await self.session.flush()
        return assistant

    async def ensure(self, assistant_id: str, fields: Mapping[str, Any], created_at: datetime) -> Assistant:
        """The assistant, made as ``fields`` say when it is missing (one made by another request
        meanwhile is taken as it is)."""
        existing = await self.get(assistant_id)
        if existing is not None:
            return existing
        values = {key: fields.get(key) for key in VERSIONED}
        try:
            async with self.session.begin_nested():
                assistant = Assistant(assistant_id=assistant_id, version=1, created_at=created_at,
                                      updated_at=created_at, **values)
                self.session.add(assistant)
                self.session.add(AssistantVersion(assistant_id=assistant_id, version=1, created_at=created_at,
                                                  **values))
        except IntegrityError:
            found = await self.get(assistant_id)
            assert found is not None  # the row that collided
            return found
        return assistant

    async def add_version(self, assistant: Assistant, fields: Mapping[str, Any]) -> Assistant:
        """A new version of ``assistant`` (locked by the caller) that becomes its latest."""
        latest = await self.session.scalar(
            select(func.max(AssistantVersion.version)).where(AssistantVersion.assistant_id == assistant.assistant_id))
        now = utcnow()
        values = {key: fields.get(key) for key in VERSIONED}
        version = int(latest or 0) + 1
        self.session.add(AssistantVersion(assistant_id=assistant.assistant_id, version=version, created_at=now,
                                          **values))
        for key, value in values.items():
            setattr(assistant, key, value)
        assistant.version = version
        assistant.updated_at = now
        await self.session.flush()
        return assistant

    async def set_latest(self, assistant: Assistant, version: int) -> Assistant | None:
        """``assistant`` (locked by the caller) as its ``version`` was; None when it has no such version."""
        stored = await self.session.get(AssistantVersion, (assistant.assistant_id, version))
        if stored is None:
            return None
        for key in VERSIONED:
            setattr(assistant, key, getattr(stored, key))
        assistant.version = version
        assistant.updated_at = utcnow()
        await self.session.flush()
        return assistant

    async def delete(self, assistant_id: str) -> bool:
        """The assistant, its versions and its crons (as langgraph-api deletes them: a cron of
        no assistant has nothing to run)."""
        # Versions first: SQLite enforces the cascade only with its foreign keys pragma on.
        await self.session.execute(delete(AssistantVersion).where(AssistantVersion.assistant_id == assistant_id))
        await self.session.execute(delete(Cron).where(Cron.assistant_id == assistant_id))
        return affected_rows(await self.session.execute(
            delete(Assistant).where(Assistant.assistant_id == assistant_id))) > 0

    def _filters(self, graph_id: str | None, name: str | None,
                 metadata: Mapping[str, Any] | None) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = []
        if graph_id is not None:
            filters.append(Assistant.graph_id == graph_id)
        if name:
            # A case-insensitive part of the name, as langgraph-api matches.
            filters.append(func.lower(Assistant.name).contains(name.lower(), autoescape=True))
        if metadata:
            filters.append(json_filter(Assistant.meta, metadata, self.session.get_bind().dialect.name))
        return filters

    async def search(self, *, graph_id: str | None = None, name: str | None = None,
                     metadata: Mapping[str, Any] | None = None, sort_by: str = "created_at",
                     descending: bool = True, limit: int = 10, offset: int = 0) -> list[Assistant]:
        column = SORT_COLUMNS[sort_by]
        stmt = (select(Assistant).where(*self._filters(graph_id, name, metadata))
                # assistant_id breaks ties the same way in both directions, so pages never overlap.
                .order_by(column.desc() if descending else column.asc(), Assistant.assistant_id)
                .offset(offset).limit(limit))
        return list(await self.session.scalars(stmt))

    async def count(self, *, graph_id: str | None = None, name: str | None = None,
                    metadata: Mapping[str, Any] | None = None) -> int:
        stmt = select(func.count()).select_from(Assistant).where(*self._filters(graph_id, name, metadata))
        return int(await self.session.scalar(stmt) or 0)

    async def versions(self, assistant_id: str, *, metadata: Mapping[str, Any] | None = None,
                       limit: int = 10, offset: int = 0) -> list[AssistantVersion]:
        """Newest version first."""
        stmt = select(AssistantVersion).where(AssistantVersion.assistant_id == assistant_id)
        if metadata:
            stmt = stmt.where(json_filter(AssistantVersion.meta, metadata, self.session.get_bind().dialect.name))
        stmt = stmt.order_by(AssistantVersion.version.desc()).offset(offset).limit(limit)
        return list(await self.session.scalars(stmt))
