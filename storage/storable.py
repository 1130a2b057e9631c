"""Text the database can store.

PostgreSQL's text and jsonb hold neither NUL (U+0000) nor lone UTF-16 surrogates (U+D800 to
U+DFFF without their pair, which Python's json module reads from ``"\\ud800"``). SQLite stores
both, and they then break what reads them back. The HTTP layer refuses such input
(app/http/input_guard.py), but a model's output and a search provider's results are not input
anyone can refuse: a stray NUL in a draft would fail the run at its very last step. So the
graph cleans such text where it enters the state (model replies in graph/model_calls.py, search
results and pages in graph/nodes/research.py), and every write of run output cleans what it
stores, whatever its origin: NUL is dropped, a lone surrogate becomes U+FFFD, the replacement
character.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar, cast

T = TypeVar("T")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same characters as json.dumps (ensure_ascii) writes them: NUL, a high surrogate not followed
# by a low one, a low one not preceded by a high one (a pair is how it writes an emoji). A literal
# backslash followed by "u0000" matches too, which only costs a needless clean.
_UNSTORABLE_ESCAPE = re.compile(r"\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                                r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a character the database cannot store."""
    return _UNSTORABLE.search(text) is not None


def storable_text(text: str) -> str:
    """``text`` without NUL, and with U+FFFD for each lone surrogate; ``text`` itself when clean."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(_replacement, text)


def storable(value: T) -> T:
    """``value`` with every string in it, dictionary keys included, made storable. Dicts, lists
    and tuples are copied; anything else is returned as it is."""
    # Each copy has the shape of ``value`` (a subclass comes back as its base type): the casts
    # say so, as mypy does not carry an isinstance check on a TypeVar over to the return type.
    if isinstance(value, str):
        return cast(T, storable_text(value))
    if isinstance(value, dict):
        return cast(T, {storable(key): storable(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(T, [storable(item) for item in value])
    if isinstance(value, tuple):
        return cast(T, tuple(storable(item) for item in value))
    return value


def storable_json(value: Any) -> str:
    """``json.dumps(value)`` of the storable ``value``; serialised once when it was clean."""
    text = json.dumps(value)
    if _UNSTORABLE_ESCAPE.search(text) is None:
        return text
    return json.dumps(storable(value))


def _replacement(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"
