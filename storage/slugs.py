"""Numbers for generated slugs: "x", then "x-2", "x-3"... for posts titled alike.

A counter row per base hands the numbers out. Looking for the smallest free number instead
meant reading every "x-N" under a lock held until the post's transaction committed, so posts
titled alike (every run of a recurring request) were saved one at a time: under load that lock
was the Postgres server's most waited-on thing (bench/ANALYSIS.md).

Given an autocommit engine (Postgres), the counter moves in a statement of its own that commits
at once, so no lock is held across the caller's transaction; a number drawn by a transaction
that then rolls back is skipped, never handed out twice. Without one (SQLite, whose writers
queue anyway, and the API's own post writes) the counter moves inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import bindparam, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from storage.models import Post, SlugCounter

# The bump's own commit need not wait for its WAL flush: it holds the counter row's lock until
# it ends, so a synchronous commit would make same-titled posts queue for one disk flush each.
# A bump lost in a crash is harmless: the post that used the number commits later with a flush,
# which writes out every WAL record before it, the bump included.
_BUMP_UNSYNCED = text(
    "INSERT INTO slug_counters (base, last) "
    "SELECT :base, 1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unsynced "
    "ON CONFLICT (base) DO UPDATE SET last = slug_counters.last + 1 "
    "RETURNING last"
)


def numbered(base: str, number: int) -> str:
    """The slug for ``number`` of ``base``: 1 is the base itself."""
    return base if number == 1 else f"{base}-{number}"


def slug_number(base: str, slug: str) -> int | None:
    """The number ``slug`` has among ``base``'s numbered slugs, or None if it is not one."""
    if slug == base:
        return 1
    prefix = f"{base}-"
    suffix = slug[len(prefix):]
    if slug.startswith(prefix) and suffix.isdigit() and not suffix.startswith("0"):
        return int(suffix)
    return None


def _bump(dialect: str) -> ReturningInsert[int]:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(SlugCounter).values(base=bindparam("base"), last=1)
    return statement.on_conflict_do_update(
        index_elements=[SlugCounter.base], set_={"last": SlugCounter.__table__.c.last + 1}
    ).returning(SlugCounter.last)


class SlugNumbers:
    """Draws numbers for slug bases; see the module docstring for which connection moves them."""

    def __init__(self, session: AsyncSession, autocommit_engine: AsyncEngine | None = None) -> None:
        self.session = session
        self.autocommit_engine = autocommit_engine

    async def draw(self, base: str) -> int:
        """The next number of ``base`` (1 the first time)."""
        if self.autocommit_engine is not None:
            async with self.autocommit_engine.connect() as connection:
                return int((await connection.execute(_BUMP_UNSYNCED, {"base": base})).scalar_one())
        statement = _bump(self.session.get_bind().dialect.name)
        return int((await self.session.execute(statement, {"base": base})).scalar_one())

    async def skip_taken(self, base: str, number: int) -> None:
        """``number`` of ``base`` turned out taken (by hand, or before counters existed): move
        the counter to just below the first number from there that no post holds."""
        slugs = await self.session.scalars(
            select(Post.slug).where((Post.slug == base) | Post.slug.like(f"{base}-%"))
        )
        taken = {slug_number(base, slug) for slug in slugs}
        while number in taken:
            number += 1
        statement = (
            update(SlugCounter)
            .where(SlugCounter.base == base)
            .values(last=case((SlugCounter.last < number - 1, number - 1), else_=SlugCounter.last))
        )
        if self.autocommit_engine is not None:
            async with self.autocommit_engine.connect() as connection:
                await connection.execute(statement)
        else:
            await self.session.execute(statement)
