"""Opens everything a run needs — database, checkpointer, HTTP client, model provider — and
closes it again, so the CLI and the service set up the graph the same way."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.markdown_renderer import DEFAULT_BUDGET_SECONDS, MarkdownRenderer
from graph.builder import ContentGraph, build_graph
from graph.configuration import PipelineSettings
from graph.context import Dependencies, DraftloopContext, OutcomeSaver
from graph.post import draft_post_of
from storage.checkpoints import open_checkpointer
from storage.engine import (
    create_autocommit_engine,
    create_engine,
    read_session_factory,
    session_factory,
)
from storage.migrate import upgrade_database
from storage.outcomes import save_outcome, save_pending_approval
from storage.storable import storable
from storage.store import open_store
from storage.write_paths import WritePaths

log = logging.getLogger("draftloop")


@dataclass
class GraphRuntime:
    graph: ContentGraph
    deps: Dependencies
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    database_url: str
    # Renders post bodies off the event loop, for finalize and for the posts API.
    renderer: MarkdownRenderer
    # Transaction-less reads (storage.engine.read_session_factory); defaults to ``sessions``.
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    # Postgres only (storage.engine.create_autocommit_engine): statements atomic on their own.
    autocommit_engine: AsyncEngine | None = None

    def __post_init__(self) -> None:
        if self.read_sessions is None:
            self.read_sessions = self.sessions

    @property
    def writes(self) -> WritePaths:
        """Where storage writes go; each write picks its own path from these."""
        return WritePaths(self.sessions, self.autocommit_engine)

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        """The graph's saver: the service and the CLI always compile the graph with one."""
        saver = self.graph.checkpointer
        if not isinstance(saver, BaseCheckpointSaver):
            raise TypeError(f"the graph was compiled without a checkpointer ({saver!r})")
        return saver

    @property
    def store(self) -> BaseStore:
        """The graph's long-term memory (storage/store.py), also served at /store."""
        store = self.graph.store
        if store is None:
            raise TypeError("the graph was compiled without a store")
        return store

    @property
    def read_engine(self) -> AsyncEngine:
        """For single reads on a bare connection: autocommit on Postgres, the engine on SQLite."""
        return self.autocommit_engine or self.engine

    def context(self, **overrides: Any) -> DraftloopContext:
        return DraftloopContext(deps=self.deps, **overrides)


def outcome_saver(paths: WritePaths, renderer: MarkdownRenderer) -> OutcomeSaver:
    """The finalize node's writer (storage.outcomes.save_outcome, which picks its own path). The
    post's body is rendered here, before any transaction opens; a body past the render budget
    is stored as escaped text (nobody is there to be refused)."""

    async def save(outcome: dict[str, Any]) -> None:
        # The markdown as storage stores it (cleaned of what the database refuses), so that the
        # stored HTML is that markdown's.
        draft = draft_post_of(storable(outcome.get("result") or {}))
        rendered = await renderer.render_or_escape(draft.changes["markdown"]) if draft is not None else None
        await save_outcome(paths, **{**outcome, "draft": draft, "rendered": rendered})

    return save


def pending_saver(paths: WritePaths) -> OutcomeSaver:
    """The approval node's writer: the draft on offer and the attempts so far."""

    async def save(pending: dict[str, Any]) -> None:
        await save_pending_approval(paths, **pending)

    return save


@asynccontextmanager
async def open_graph_runtime(url: str, pipeline: PipelineSettings,
                             render_seconds: float = DEFAULT_BUDGET_SECONDS) -> AsyncIterator[GraphRuntime]:
    """``url`` as storage.engine.database_url_from_env resolved it (or a command's --database-url)."""
    await upgrade_database(url)
    engine = create_engine(url)
    autocommit_engine = create_autocommit_engine(url)
    sessions = session_factory(engine)
    paths = WritePaths(sessions, autocommit_engine)
    try:
        async with (httpx.AsyncClient() as http, open_checkpointer(url) as saver, open_store(url, saver) as store,
                    MarkdownRenderer(budget_seconds=render_seconds) as renderer):
            deps = Dependencies.from_settings(http, pipeline, save_outcome=outcome_saver(paths, renderer),
                                              save_pending=pending_saver(paths))
            try:
                info = await deps.models.describe()
                log.info("model provider: %s (%s) %s", info.provider, info.model, info.detail)
                yield GraphRuntime(build_graph(saver, store), deps, engine, sessions, url, renderer,
                                   read_session_factory(engine, autocommit_engine), autocommit_engine)
            finally:
                await deps.aclose()
    finally:
        if autocommit_engine is not None:
            await autocommit_engine.dispose()
        await engine.dispose()
