"""The text of a chat message, whichever form a client sent it in.

Clients send a human turn as a plain string, as a list of content blocks
([{"type": "text", "text": ...}, {"type": "image_url", ...}]), as a LangChain message dict
({"role": "user", ...} or {"type": "human", ...}), or as a serialised message object
({"lc": 1, "type": "constructor", "id": [..., "HumanMessage"], "kwargs": {...}}). Every node and
the API read messages through this module, so routing, prompts and request checks see the same
text: never a Python repr of a block list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages

# Blocks whose text is read; every other block (image, image_url, file, audio, ...) is skipped.
TEXT_BLOCKS = frozenset({"text"})
# Serialised message classes -> the message types convert_to_messages takes. Named here rather
# than taken from langchain_core, whose mapping is private and newer than some installs.
_SERIALISED_TYPES = {
    "HumanMessage": "human", "HumanMessageChunk": "human",
    "AIMessage": "ai", "AIMessageChunk": "ai",
    "SystemMessage": "system", "SystemMessageChunk": "system",
    "ToolMessage": "tool", "ToolMessageChunk": "tool",
}


def _block_type(block: Any) -> str:
    return str(block.get("type") or "untyped") if isinstance(block, Mapping) else type(block).__name__


def content_text(content: Any) -> str:
    """A message content's text: a string as it is; the text blocks of a block list joined with
    newlines (BaseMessage.text joins them with nothing, running the last word of one block into
    the first of the next); anything else empty."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") in TEXT_BLOCKS:
            parts.append(str(block.get("text") or ""))
    return "\n".join(part for part in parts if part.strip())


def skipped_blocks(content: Any) -> list[str]:
    """The types of the blocks content_text skips (images, files, ...), each once, in order."""
    if not isinstance(content, list):
        return []
    skipped = [_block_type(block) for block in content
               if not isinstance(block, str) and not (isinstance(block, Mapping) and block.get("type") in TEXT_BLOCKS)]
    return list(dict.fromkeys(skipped))


def _unwrapped(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A serialised message object as the plain message dict it stands for; other dicts as they are."""
    ids, kwargs = raw.get("id"), raw.get("kwargs")
    if raw.get("lc") == 1 and raw.get("type") == "constructor" and isinstance(ids, list) and ids \
            and isinstance(kwargs, Mapping):
        kind = _SERIALISED_TYPES.get(str(ids[-1]))
        if kind is None:
            raise ValueError(f"a serialised {ids[-1]} is not a chat message")
        return {**kwargs, "type": kind}
    return raw


def as_message(raw: Any) -> BaseMessage:
    """A message from any form clients send. Raises ValueError (or langchain_core's
    NotImplementedError, TypeError, KeyError) for a shape that is no message."""
    if isinstance(raw, BaseMessage):
        return raw
    if isinstance(raw, Mapping):
        raw = dict(_unwrapped(raw))
    return convert_to_messages([raw])[0]


def message_text(message: Any) -> str:
    """The text of a message in any form; empty for a shape that is no message."""
    if isinstance(message, str):
        return message
    try:
        return content_text(as_message(message).content)
    except (ValueError, TypeError, KeyError, NotImplementedError):
        return ""


def is_human(message: Any) -> bool:
    try:
        return isinstance(as_message(message), HumanMessage)
    except (ValueError, TypeError, KeyError, NotImplementedError):
        return False


def skipped_content_warning(message: Any) -> str | None:
    """The warning a turn records when its message carried blocks that were not read."""
    try:
        skipped = skipped_blocks(as_message(message).content)
    except (ValueError, TypeError, KeyError, NotImplementedError):
        return None
    if not skipped:
        return None
    blocks = f"{', '.join(skipped)} blocks were" if len(skipped) > 1 else f"{skipped[0]} block was"
    return f"messages: the message's {blocks} ignored; Draftloop reads only text"
