"""Refuses input that would fail below the validation layer, on every route, before any handler
or body parser sees it: a 400 naming the field instead of a 500.

- Text the database cannot store. PostgreSQL's text and jsonb hold neither NUL (U+0000) nor
  lone UTF-16 surrogates (which Python's json module accepts as ``"\\ud800"``); SQLite stores
  both. Left to the database such a value is a 500 on Postgres and a silently different result
  on SQLite, wherever it lands: a path id looked up, a query filter, a post title, metadata.
- JSON nested deeper than the decoders recurse. msgspec and the json module both raise
  RecursionError at roughly a thousand levels, which no route's validation catches.
- A body that is not UTF-8. JSON is UTF-8 (RFC 8259), and msgspec raises UnicodeDecodeError
  for bytes that are not, inside a string, which Litestar's decoder does not turn into a 400.
- A JSON integer past a signed 64-bit column, anywhere in a body (typed fields have their own
  bounds; this covers free-form ones such as metadata, which end up in queries: SQLite's driver
  raises OverflowError binding one). Unlike the others, this one is an ordinary validation
  error: the LangGraph routes answer it with their 422, as they answer their typed fields' bounds.

An app-level ``before_request`` hook, so a route added later is covered without anyone
remembering to.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.exceptions import ValidationException

from storage.models import MAX_ROW_ID
from storage.storable import unstorable

_UNSTORABLE = "must not contain NUL (U+0000) or unpaired surrogate characters"
# Far deeper than any real payload (LangGraph state is a few levels), far shallower than the
# decoders' recursion limits.
MAX_JSON_DEPTH = 100
_TOO_DEEP = f"nests JSON deeper than {MAX_JSON_DEPTH} levels"
# A cheap test that a body might hold unstorable text, so that most bodies are not parsed
# twice: a raw NUL, its JSON or form escape, or a JSON surrogate escape.
_SUSPECT_BODY = re.compile(rb"\x00|%00|\\u0000|\\u[dD][89a-fA-F]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# 2**63 has 19 digits: a body without such a run of digits holds no integer out of range.
_LONG_DIGITS = re.compile(rb"[0-9]{19,}")
_OUT_OF_RANGE = f"must be an integer from {-MAX_ROW_ID - 1} to {MAX_ROW_ID}"
_BRACKET = re.compile(rb"[\[\]{}]")


class UnsafeInput(ValidationException):
    """This guard's refusal: its own type, so that routes answering validation errors with
    another status (the LangGraph routes' 422) leave this one the 400 it is everywhere."""


def _refusal(field: str, message: str, kind: type[ValidationException] = UnsafeInput) -> ValidationException:
    field = _printable(field)
    return kind(detail=f"{field}: {message}", extra=[{"key": field, "message": message}])


def _printable(name: str) -> str:
    """A field name fit for an error body (the name itself may be the bad text)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def _bad_field(value: Any, path: str) -> str | None:
    """The dotted path of the first key or string in ``value`` the database cannot store."""
    if isinstance(value, str):
        return path if unstorable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if unstorable(str(key)):
                return child
            if found := _bad_field(item, child):
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _bad_field(item, f"{path}.{index}" if path else str(index)):
                return found
    return None


def _out_of_range(value: Any, path: str) -> str | None:
    """The dotted path of the first integer in ``value`` outside the signed 64-bit range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (path or "body") if not -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID else None
    if isinstance(value, dict):
        for key, item in value.items():
            if found := _out_of_range(item, f"{path}.{key}" if path else str(key)):
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _out_of_range(item, f"{path}.{index}" if path else str(index)):
                return found
    return None


def _too_deep(raw: bytes) -> bool:
    """Whether ``raw``, read as JSON, opens more than MAX_JSON_DEPTH brackets at once. A scan,
    not a parse: parsing is what overflows."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False  # the common case, at C speed
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _body_refusal(raw: bytes, content_type: str) -> ValidationException | None:
    if content_type.startswith("multipart/"):
        return None  # file parts may be binary; no route here takes multipart text fields
    if content_type == "application/x-www-form-urlencoded":
        if not _SUSPECT_BODY.search(raw):
            return None
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        key = next((key for key, value in pairs if unstorable(key) or unstorable(value)), None)
        return None if key is None else _refusal(key, _UNSTORABLE)
    # Any other content type may be JSON: the LangGraph routes read JSON sent as text/plain too.
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _refusal("body", f"is not valid UTF-8 (byte {exc.start} of the body)")
    if _too_deep(raw):
        return _refusal("body", _TOO_DEEP)
    suspect_text, long_digits = _SUSPECT_BODY.search(raw) is not None, _LONG_DIGITS.search(raw) is not None
    if not (suspect_text or long_digits):
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        # Not JSON: the route's own parser answers for that; a raw NUL is still refused here.
        return _refusal("body", _UNSTORABLE) if b"\x00" in raw else None
    if suspect_text and (field := _bad_field(parsed, "")):
        return _refusal(field, _UNSTORABLE)
    if long_digits and (field := _out_of_range(parsed, "")):
        return _refusal(field, _OUT_OF_RANGE, ValidationException)
    return None


async def reject_unsafe_input(request: Request[Any, Any, Any]) -> None:
    """Before-request hook: a 400 naming the first path, query or body field that holds text
    the database cannot store, or a body nested too deeply to decode or not UTF-8, or an
    integer past 64 bits (422 on the LangGraph routes); see the module docstring."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and unstorable(value):
            raise _refusal(name, _UNSTORABLE)
    for name, value in request.query_params.multi_items():
        if unstorable(name) or unstorable(value):
            raise _refusal(name, _UNSTORABLE)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        refusal = _body_refusal(await request.body(), request.content_type[0])
        if refusal is not None:
            raise refusal
