"""What the graph remembers across threads, in LangGraph's store (``runtime.store``): the pieces
a user has written (so a second post on a topic takes another angle) and their style guide.

Namespaces: ``("draftloop", <owner>, "topics")`` holds one item per thread (keyed by thread id,
so a follow-up turn replaces its thread's entry) with the topic, title and angle;
``("draftloop", <owner>, "style")`` holds the style guide (any item; its ``text`` value, or the
whole value as JSON). The owner is the run's user (``user_id`` in its config's metadata or
configurable, or langgraph-api's ``langgraph_auth_user_id``), else ``"default"``.

Without a store (the module-level graph under a runner that supplies none) nothing is recalled
or recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore

APP = "draftloop"
TOPICS = "topics"
STYLE = "style"
DEFAULT_OWNER = "default"
# How many past pieces are read to find related ones, and how many the prompt names.
RECALL_SCAN = 200
RECALL_SHOWN = 3
# Share of the smaller topic's content words the two topics must have in common.
RELATED_OVERLAP = 0.5
ANGLE_CHARS = 240
STYLE_CHARS = 2000
_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    "a an and are about for from how in into is of on or the to with why what your you our best guide".split())


@dataclass(frozen=True)
class Recollection:
    """What the next draft should know: the user's style guide and related past pieces."""

    style: str = ""
    written: tuple[Mapping[str, Any], ...] = ()


def owner_of(config: RunnableConfig | None) -> str:
    """The user whose memory a run reads and writes."""
    config = config or {}
    sections: tuple[Mapping[str, Any], ...] = (config.get("configurable") or {}, config.get("metadata") or {})
    for values in sections:
        # The server's own key first: Draftloop's API sets it from the signed-in user, over
        # anything a client sent, so a client cannot read or write another user's memory.
        for key in ("langgraph_auth_user_id", "user_id"):
            value = values.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return DEFAULT_OWNER


def topics_namespace(owner: str) -> tuple[str, ...]:
    return (APP, owner, TOPICS)


def style_namespace(owner: str) -> tuple[str, ...]:
    return (APP, owner, STYLE)


def topic_words(topic: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(topic.lower()) if w not in _STOP_WORDS and len(w) > 1)


def related(topic: str, other: str) -> bool:
    """Whether two topics are about the same thing: most content words of the shorter shared."""
    mine, theirs = topic_words(topic), topic_words(other)
    if not mine or not theirs:
        return False
    return len(mine & theirs) / min(len(mine), len(theirs)) >= RELATED_OVERLAP


def style_text(value: Mapping[str, Any]) -> str:
    text = value.get("text")
    return str(text) if isinstance(text, str) else json.dumps(value, ensure_ascii=False)


async def recall(store: BaseStore | None, owner: str, topic: str, thread_id: str) -> Recollection:
    """The style guide and the pieces on related topics, newest first; this thread's own piece
    is left out (a follow-up revises it rather than avoiding it)."""
    if store is None:
        return Recollection()
    styles = await store.asearch(style_namespace(owner), limit=1)
    style = style_text(styles[0].value)[:STYLE_CHARS] if styles else ""
    items = await store.asearch(topics_namespace(owner), limit=RECALL_SCAN)
    items.sort(key=lambda item: item.updated_at, reverse=True)
    written = tuple(item.value for item in items
                    if item.key != thread_id and related(topic, str(item.value.get("topic") or "")))
    return Recollection(style=style, written=written[:RECALL_SHOWN])


async def record_piece(store: BaseStore | None, owner: str, thread_id: str, topic: str, title: str,
                       angle: str) -> None:
    """Remember the piece a thread delivered, under its thread's key."""
    if store is None or not topic.strip() or not thread_id:
        return
    await store.aput(topics_namespace(owner), thread_id, {
        "topic": topic.strip(), "title": title.strip(), "angle": angle.strip()[:ANGLE_CHARS],
        "written_at": datetime.now(UTC).isoformat(),
    })
