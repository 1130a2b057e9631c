"""Newest-first keyset pages, shared by every listing (tasks, posts, the audit log).

A cursor is the (timestamp, key) of the last item of a page, base64url-encoded JSON: opaque to
clients, stable under inserts (an offset would skip or repeat rows as new ones arrive).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

MAX_PAGE_SIZE = 200


def page_limit(limit: int) -> int:
    """``limit`` capped at MAX_PAGE_SIZE; ValueError below 1."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return min(limit, MAX_PAGE_SIZE)


def encode_keyset(at: datetime, key: str) -> str:
    """An opaque cursor for newest-first (timestamp, key) pages; decode_cursor reads it back."""
    payload = json.dumps([at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, key) of an encode_keyset cursor; ValueError for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, key = json.loads(base64.urlsafe_b64decode(padded))
        parsed = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if parsed.tzinfo is None or not isinstance(key, str):
        raise ValueError("invalid cursor")
    return parsed, key


def older_than(at_column: Any, key_column: Any, at: datetime, key: Any) -> ColumnElement[bool]:
    """Rows after (at, key) in newest-first order: the page that follows a cursor."""
    return or_(at_column < at, and_(at_column == at, key_column < key))


def next_cursor(rows: list[Any], limit: int) -> str | None:
    """The cursor after a page fetched with ``limit + 1`` rows of (created_at, id); None on
    the last page."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_keyset(last.created_at, last.id)
