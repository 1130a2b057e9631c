"""The declarative base, column types and id/clock helpers every model module shares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, Numeric, Table, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names: Alembic needs them to alter or drop constraints later,
# and SQLite batch migrations cannot recreate unnamed ones.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on Postgres for indexable, compact storage; plain JSON (text) on SQLite.
# none_as_null: a Python None is SQL NULL (IS NULL works), not the JSON literal 'null'.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Eight decimals keep per-call prices of a few tokens exact (graph rounds to 8 too); floats
# are out because these get summed.
Money = Numeric(16, 8, asdecimal=False)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and hands back naive values; storing UTC and re-attaching the
    zone on read keeps comparisons and ordering correct everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}

    if TYPE_CHECKING:
        # Every model here maps one Table (none a join or a subquery), which is what Core's
        # insert() and the typed bind parameters take; DeclarativeBase says any FromClause.
        __table__: ClassVar[Table]


# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY; Postgres gets a
# 64-bit sequence because every token batch of every task takes an id.
EventId = BigInteger().with_variant(Integer(), "sqlite")
# The largest value a signed 64-bit column (BIGINT, SQLite's INTEGER) holds: an id, offset or
# count from a client past it cannot name a row, and the drivers raise instead of matching
# nothing, so the API refuses it first.
MAX_ROW_ID = 2**63 - 1
