"""Where a storage write goes: sessions, and on Postgres an engine in autocommit mode.

The writes that have a one-statement Postgres form (tasks.queue_new_task, leases.end_run,
task_events.append_events, outcomes.save_outcome) take one of these and pick their path
themselves: the one statement when ``one_statement`` gives an engine, else a transaction of
the session path (SQLite has no data-modifying CTEs). Callers never choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@dataclass(frozen=True, slots=True)
class WritePaths:
    sessions: async_sessionmaker[AsyncSession]
    # Postgres only (storage.engine.create_autocommit_engine): statements atomic on their own.
    # The session path uses it too, for what must not wait for its transaction (slug numbers).
    autocommit: AsyncEngine | None = None
    # False sends every write the session way, even on Postgres (the tests compare both paths).
    allow_one_statement: bool = True

    @property
    def one_statement(self) -> AsyncEngine | None:
        """The engine of the one-statement path, or None when writes take the session path."""
        return self.autocommit if self.allow_one_statement else None

    def session_only(self) -> WritePaths:
        """The same database with every write on the session path."""
        return WritePaths(self.sessions, self.autocommit, allow_one_statement=False)
