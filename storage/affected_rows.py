"""How many rows an INSERT, UPDATE or DELETE changed."""

from __future__ import annotations

from typing import Any, Unpack, cast

from sqlalchemy import CursorResult, Result


def affected_rows(result: Result[Unpack[tuple[Any, ...]]]) -> int:
    """The ``rowcount`` of a data-changing statement's result. ``Session.execute`` types every
    result as a plain Result, but such a statement without RETURNING gives a CursorResult,
    which is the one that carries the count."""
    return cast(CursorResult[Unpack[tuple[Any, ...]]], result).rowcount
