"""JSON containment filters (thread metadata, thread values), the same on SQLite, Postgres and in
Python.

What matches, as langgraph-api's thread search does: every key of the filter is in the document;
a filter value that is an object matches an object holding at least its keys (recursively); any
other value (string, number, boolean, null, list) must be equal. Postgres' ``@>`` alone would
also let a list match any list holding its items, so list values are compared whole there too.
SQLite has no containment operator: each leaf of the filter becomes a ``json_type`` and
``json_extract`` test on its path, which is why a filter's size and depth are bounded by the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

Path = tuple[str, ...]


def contains(document: Any, wanted: Mapping[str, Any]) -> bool:
    """Whether ``document`` holds ``wanted``, in Python (for values the database does not hold)."""
    if not isinstance(document, Mapping):
        return False
    for key, value in wanted.items():
        if key not in document:
            return False
        found = document[key]
        if isinstance(value, Mapping):
            if not contains(found, value):
                return False
        elif found != value or isinstance(found, bool) != isinstance(value, bool):
            return False
    return True


def leaves(wanted: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """(path, value) of every value of the filter that is not an object; an empty object is a
    leaf of its own (it asks for an object there)."""
    for key, value in wanted.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from leaves(value, path)
        else:
            yield path, value


def _sqlite_paths(path: Path) -> list[str]:
    """The JSON paths of a key path on SQLite, in quoted labels (a key may hold dots or
    brackets; the API refuses keys with a double quote). SQLite matches a label against the
    key's text as stored, escapes included, and the stored text escapes non-ASCII and control
    characters (json.dumps): such a key is looked up both as written and as escaped."""
    written = "$" + "".join(f'."{key}"' for key in path)
    escaped = "$" + "".join(f'."{json.dumps(key)[1:-1]}"' for key in path)
    return [written] if escaped == written else [written, escaped]


def _sqlite_leaf(column: Any, where: str, value: Any) -> ColumnElement[bool]:
    kind = func.json_type(column, literal(where))
    found = func.json_extract(column, literal(where))
    if value is None:
        return kind == "null"
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, (int, float)):
        return and_(kind.in_(("integer", "real")), found == value)
    if isinstance(value, str):
        return and_(kind == "text", found == value)
    if isinstance(value, Mapping):
        return kind == "object"
    # A list: json_extract gives it back as minified JSON text, which json() makes of ours too.
    return and_(kind == "array", found == func.json(json.dumps(value)))


def json_filter(column: Any, wanted: Mapping[str, Any], dialect: str) -> ColumnElement[bool]:
    """A WHERE clause: ``column`` (JSON on SQLite, JSONB on Postgres) holds ``wanted``."""
    if not wanted:
        return true()
    if dialect == "postgresql":
        document = type_coerce(column, JSONB)
        clauses = [document.contains(literal(dict(wanted), JSONB))]
        # @> lets ["a", "b"] hold ["a"]; a list filter value asks for that very list.
        clauses += [document[path] == literal(value, JSONB)
                    for path, value in leaves(wanted) if isinstance(value, list)]
        return and_(*clauses)
    return and_(*(or_(*(_sqlite_leaf(column, where, value) for where in _sqlite_paths(path)))
                  for path, value in leaves(wanted)))
